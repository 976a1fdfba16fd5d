"""Collect pixel rollouts into a dataset directory (the ``wml collect`` command).

Episodes are split into shards of ``episodes_per_shard``; worker processes (one env, one
renderer each) take shards from a queue and write them atomically, so the main process only
draws the progress bar. Episode ``e`` is seeded from ``(seed, e)`` alone: the data does not
depend on the number of workers, and a rerun skips complete shards (resume). ``--shard i/n``
makes this job write only shards ``k`` with ``k % n == i``, for cluster array jobs.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from common.fileio import (
    FolderLock,
    atomic_write_text,
    available_cores,
    check_writable,
    is_launch_rank_zero,
)
from envs.config import CollectConfig, EnvConfig
from envs.dataset import META, DatasetError, PixelDataset, read_meta, shard_name
from envs.dataset_meta import build_meta, differences, open_dataset, package_versions
from envs.rollouts import WorkerPool, episode_seeds, episodes_of, make_env, run_in_process

log = logging.getLogger(__name__)

__all__ = [
    "CollectConfig",
    "CollectResult",
    "EnvConfig",
    "array_task_shard",
    "collect_rollouts",
    "default_dataset_dir",
    "ensure_dataset",
    "episode_seeds",
    "make_env",
    "package_versions",
]

@dataclass
class CollectResult:
    """What a collection call did."""

    path: Path
    frames: int  # frames written by this call
    seconds: float
    shards_written: list[int]
    shards_skipped: list[int]
    complete: bool  # every shard of the dataset exists now

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def _check_config(collect: CollectConfig, shard: tuple[int, int]) -> None:
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
    for name in ("episodes", "episode_steps", "episodes_per_shard"):
        if getattr(collect, name) < 1:
            raise ValueError(f"collect.{name} must be >= 1, got {getattr(collect, name)}")
    if collect.workers < 0:
        raise ValueError(f"collect.workers must be >= 0 (0 = one per core), got {collect.workers}")


def _finalise(root: Path) -> bool:
    """Record totals in meta.json once every shard exists; True when complete."""
    meta = read_meta(root)
    shards = [root / shard_name(k) for k in range(meta.num_shards)]
    if not all(p.is_dir() for p in shards):
        return False
    infos = [json.loads((p / "shard.json").read_text()) for p in shards]
    meta = replace(meta, complete=True, num_frames=sum(i["num_frames"] for i in infos),
                   num_episodes_written=sum(i["num_episodes"] for i in infos))
    atomic_write_text(root / META, json.dumps(meta.to_dict(), indent=2))
    return True


def collect_rollouts(out: str | Path, env: EnvConfig | None = None,
                     collect: CollectConfig | None = None, shard: tuple[int, int] = (0, 1),
                     progress: bool = True) -> CollectResult:
    """Collect (or resume collecting) a dataset into ``out``.

    Args:
        out: the dataset directory (created if needed).
        env: the pixel env; default ``wm/reacher-v0`` at 64x64.
        collect: episodes, length, policy, seed, workers, shard size.
        shard: ``(i, n)``: write only shards ``k`` with ``k % n == i``.
        progress: show a progress bar with frames/s.

    Raises:
        DatasetError: ``out`` holds a dataset collected with other settings.
    """
    env, collect = env or EnvConfig(), collect or CollectConfig()
    _check_config(collect, shard)
    start = time.perf_counter()
    root = check_writable(out, "the dataset folder (--out)")
    num_shards = -(-collect.episodes // collect.episodes_per_shard)
    planned = [k for k in range(num_shards) if k % shard[1] == shard[0]]
    pending = [k for k in planned if not (root / shard_name(k)).is_dir()]
    workers = min(collect.workers or available_cores(), max(len(pending), 1))
    job = {"root": str(root), "env": asdict(env), "collect": asdict(collect)}
    # one collector per set of shards (array tasks write disjoint sets of one dataset)
    lock = FolderLock(root / f".collect-{shard[0]}-of-{shard[1]}.lock",
                      f"{root} (shards {shard[0]}/{shard[1]})")
    with lock:
        return _collect_locked(root, env, collect, job, planned, pending, workers, progress,
                               start)


def _collect_locked(root: Path, env: EnvConfig, collect: CollectConfig, job: dict,
                    planned: list[int], pending: list[int], workers: int, progress: bool,
                    start: float) -> CollectResult:
    # workers boot (imports, env, renderer) while this process checks the dataset
    pool = WorkerPool(job, workers) if workers > 1 and pending else None
    try:
        open_dataset(root, build_meta(env, collect))
        for k in planned:  # leftovers of a killed run of this job
            for stale in root.glob(f".{shard_name(k)}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
        todo = [k for k in planned if not (root / shard_name(k)).is_dir()]
        if len(todo) < len(planned):  # resuming: the shards kept must be sound
            kept = PixelDataset(root, allow_incomplete=True)
            for s in kept.shards:
                if int(s.info["index"]) in planned:
                    s.verify_once()
        total = sum(len(episodes_of(k, collect)) for k in todo) * (collect.episode_steps + 1)
        frames = _run_workers(job, todo, pool, total, progress, env.id)
    finally:
        if pool is not None:
            pool.close()
    seconds = time.perf_counter() - start  # the whole call: start-up and checks included
    skipped = [k for k in planned if k not in todo]
    return CollectResult(root, frames, seconds, todo, skipped, _finalise(root))


def _run_workers(job: dict[str, Any], todo: list[int], pool: WorkerPool | None, total: int,
                 progress: bool, label: str) -> int:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="frame", desc=f"collect {label}", disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    try:
        if not todo:
            return 0
        if pool is not None:
            return pool.run(todo, bar)
        frames = 0

        def report(kind: str, value: int) -> None:
            nonlocal frames
            if kind == "frames":
                frames += value
                bar.update(value)

        run_in_process(job, todo, report)
        return frames
    finally:
        bar.close()


def default_dataset_dir(base: str | Path, env: EnvConfig, collect: CollectConfig) -> Path:
    """``base/<env>-<size>px-<policy>-<episodes>x<steps>-seed<seed>-<hash>``: one per setting."""
    spec = json.dumps({"env": asdict(env), "collect": {k: v for k, v in asdict(collect).items()
                                                        if k != "workers"}}, sort_keys=True)
    digest = zlib.crc32(spec.encode()) & 0xFFFFFFFF
    name = (f"{env.id}-{env.image_size}px-{collect.policy.split(':')[-1]}-"
            f"{collect.episodes}x{collect.episode_steps}-seed{collect.seed}-{digest:08x}")
    # one folder below base whatever the names hold ('/', '..', ':'): anything else becomes '-'
    return Path(base) / re.sub(r"[^A-Za-z0-9._-]", "-", name)


def ensure_dataset(path: str | Path, env: EnvConfig, collect: CollectConfig,
                   progress: bool = True, poll_seconds: float = 5.0) -> Path:
    """Collect the dataset at ``path`` unless it is complete there already (resumes a partial one).

    Under ``torchrun``, ``srun`` or Lightning's own launcher only global rank 0 collects (on a
    shared filesystem, one writer); the other ranks wait until the dataset is complete.
    """
    path = Path(path)

    def complete() -> bool:
        return (path / META).exists() and read_meta(path).complete

    if not complete():
        if is_launch_rank_zero():
            collect_rollouts(path, env, collect, progress=progress)
        else:
            log.info("waiting for rank 0 to collect %s", path)
            while not complete():
                time.sleep(poll_seconds)
    _check_matches(path, env, collect)
    return path


def _check_matches(path: Path, env: EnvConfig, collect: CollectConfig) -> None:
    """Refuse a complete dataset at ``path`` that was collected with other settings."""
    wanted = {"env": asdict(env), "policy": {"name": collect.policy,
                                             "kwargs": dict(collect.policy_kwargs)},
              "seed": collect.seed, "num_episodes": collect.episodes,
              "episode_steps": collect.episode_steps,
              "episodes_per_shard": collect.episodes_per_shard}
    details = differences(read_meta(path).to_dict(), wanted)
    if details:
        raise DatasetError(f"{path} holds a dataset collected with other settings ({details}); "
                           "use another path or delete it")


def array_task_shard() -> tuple[int, int]:
    """``(i, n)`` of this SLURM array task (``--array=0-7`` gives i = 0..7, n = 8), else (0, 1)."""
    if "SLURM_ARRAY_TASK_ID" not in os.environ:
        return 0, 1
    task = int(os.environ["SLURM_ARRAY_TASK_ID"]) - int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    return task, int(os.environ.get("SLURM_ARRAY_TASK_COUNT", "1"))
