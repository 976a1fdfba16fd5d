"""Collect pixel rollouts into a dataset directory: ``python -m envs.collect --help``.

Episodes are split into shards of ``episodes_per_shard``; worker processes (one env, one
renderer each) take shards from a queue and write them atomically, so the main process only
draws the progress bar. Episode ``e`` is seeded from ``(seed, e)`` alone: the data does not
depend on the number of workers, and a rerun skips complete shards (resume). ``--shard i/n``
makes this job write only shards ``k`` with ``k % n == i``, for cluster array jobs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import shutil
import sys
import time
import traceback
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.dataset import FORMAT_VERSION, META, DatasetError, read_meta, shard_name, write_shard
from envs.fileio import atomic_write_text, available_cores
from envs.policies import make_policy

__all__ = ["CollectConfig", "CollectResult", "EnvConfig", "collect_rollouts", "default_dataset_dir",
           "ensure_dataset", "main"]

# meta.json keys that must agree between a dataset on disk and a collector resuming it
_IDENTITY = ("format_version", "env", "policy", "seed", "num_episodes", "episode_steps",
             "episodes_per_shard", "action_dim", "state_dim")


@dataclass
class EnvConfig:
    """Which pixel env, at what size (DESIGN.md section 3).

    ``id`` is a ``wm/`` id, a Gymnasium id, or ``"module:EnvName-v0"`` for a plug-in;
    ``goal`` (a ``GoalSpec`` dict) declares goal coordinates and tolerance for plug-ins.
    """

    id: str = "wm/reacher-v0"
    image_size: int = 64
    action_repeat: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)
    state: str = "auto"
    goal: dict[str, Any] | None = None


@dataclass
class CollectConfig:
    """How many episodes, how long, with which policy; ``workers = 0`` means one per core."""

    episodes: int = 1000
    episode_steps: int = 100
    policy: str = "ou"
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    workers: int = 0
    episodes_per_shard: int = 50


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


def make_env(cfg: EnvConfig):
    """The ``PixelEnv`` of an ``EnvConfig``."""
    from envs.pixel_env import make_pixel_env

    return make_pixel_env(cfg.id, cfg.image_size, cfg.action_repeat, cfg.kwargs, cfg.state,
                          cfg.goal)


def episode_seeds(seed: int, episode: int) -> tuple[int, int]:
    """(env reset seed, policy seed) of an episode, from the dataset seed alone."""
    env_seed, policy_seed = np.random.SeedSequence([seed, episode]).generate_state(2)
    return int(env_seed), int(policy_seed)


def episode_buffers(env, frames: int) -> dict[str, np.ndarray]:
    """Empty arrays for ``frames`` rows of the env's pixels, actions, states and rewards."""
    size, a_dim = env.observation_space.shape, env.action_space.shape[0]
    return {"pixels": np.empty((frames, *size), np.uint8),
            "actions": np.full((frames, a_dim), np.nan, np.float32),
            "states": np.empty((frames, env.state_dim), np.float32),
            "rewards": np.full(frames, np.nan, np.float32)}


def collect_episode(env, policy, seed: int, episode: int, steps: int,
                    out: dict[str, np.ndarray] | None = None) -> int:
    """Run one episode of at most ``steps`` actions into ``out`` (rows from 0); its length.

    ``out`` defaults to fresh ``episode_buffers(env, steps + 1)``; the episode fills rows
    ``[0, L)`` with ``L <= steps + 1`` frames, and its last action and reward stay NaN.
    """
    out = episode_buffers(env, steps + 1) if out is None else out
    env_seed, policy_seed = episode_seeds(seed, episode)
    pixels, info = env.reset(seed=env_seed)
    policy.reset(policy_seed)
    out["pixels"][0], out["states"][0] = pixels, info["state"]
    length = 1
    for t in range(steps):
        action = np.asarray(policy.act(pixels, info), np.float32)
        pixels, reward, terminated, truncated, info = env.step(action)
        out["actions"][t], out["rewards"][t] = action, reward
        out["pixels"][t + 1], out["states"][t + 1] = pixels, info["state"]
        length += 1
        if terminated or truncated:
            break
    return length


def _episodes_of(shard: int, collect: CollectConfig) -> range:
    first = shard * collect.episodes_per_shard
    return range(first, min(first + collect.episodes_per_shard, collect.episodes))


def _collect_shard(env, policy, root: Path, shard: int, collect: CollectConfig, report) -> None:
    episodes = _episodes_of(shard, collect)
    arrays = episode_buffers(env, len(episodes) * (collect.episode_steps + 1))  # shard-sized
    table, row = [], 0
    for e in episodes:  # each episode writes straight into its rows of the shard
        view = {k: v[row:] for k, v in arrays.items()}
        n = collect_episode(env, policy, collect.seed, e, collect.episode_steps, view)
        table.append((e, row, n))
        row += n
        report("frames", n)
    arrays = {k: v[:row] for k, v in arrays.items()}
    arrays["episodes"] = np.asarray(table, np.int64)
    write_shard(root, shard, arrays)
    report("shard", shard)


def _worker(job: dict[str, Any], tasks, events) -> None:
    """Worker process: one env and one renderer for its life, shards from ``tasks``."""
    try:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker, also for resizing
        env_cfg, collect = EnvConfig(**job["env"]), CollectConfig(**job["collect"])
        env = make_env(env_cfg)
        policy = make_policy(collect.policy, env.action_space.shape[0], collect.policy_kwargs)
        while (shard := tasks.get()) is not None:  # None: no more shards
            _collect_shard(env, policy, Path(job["root"]), shard, collect,
                           lambda kind, value: events.put((kind, value)))
        env.close()
        events.put(("done", None))
    except Exception:  # noqa: BLE001  (reported to the main process, which stops the rest)
        events.put(("error", traceback.format_exc()))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "mujoco", "dm-control", "gymnasium", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _build_meta(env_cfg: EnvConfig, collect: CollectConfig) -> dict[str, Any]:
    env = make_env(env_cfg)
    try:
        goal = env.goal.to_dict() if env.goal is not None else None
        meta = {
            "format_version": FORMAT_VERSION,
            "env": asdict(env_cfg),
            "goal": goal,
            "action_dim": int(env.action_space.shape[0]),
            "state_dim": int(env.state_dim),
            "state_names": list(env.state_names),
            "render_fps": env.metadata.get("render_fps"),
            "policy": {"name": collect.policy, "kwargs": dict(collect.policy_kwargs)},
            "seed": collect.seed,
            "num_episodes": collect.episodes,
            "episode_steps": collect.episode_steps,
            "episodes_per_shard": collect.episodes_per_shard,
            "num_shards": -(-collect.episodes // collect.episodes_per_shard),
            "versions": _versions(),
        }
    finally:
        env.close()
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"env kwargs, goal and policy kwargs must be plain JSON values: {err}"
                         ) from None
    return meta


def _check_config(collect: CollectConfig, shard: tuple[int, int]) -> None:
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {i}/{n}")
    for name in ("episodes", "episode_steps", "episodes_per_shard"):
        if getattr(collect, name) < 1:
            raise ValueError(f"collect.{name} must be >= 1, got {getattr(collect, name)}")
    if collect.workers < 0:
        raise ValueError(f"collect.workers must be >= 0 (0 = one per core), got {collect.workers}")


def _open_dataset(root: Path, meta: dict[str, Any]) -> None:
    """Create ``root`` with ``meta``, or check the dataset there was collected the same way."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / META).exists():
        if any(p.name.startswith("shard-") for p in root.iterdir()):
            raise DatasetError(f"{root} holds shards but no {META}; it is not a dataset this "
                               "collector can resume: use an empty --out directory")
        atomic_write_text(root / META, json.dumps(meta, indent=2))
        return
    old = read_meta(root)
    diff = [k for k in _IDENTITY if json.dumps(old.get(k), sort_keys=True)
            != json.dumps(meta.get(k), sort_keys=True)]
    if diff:
        details = "; ".join(f"{k}: on disk {old.get(k)!r}, requested {meta.get(k)!r}"
                            for k in diff)
        raise DatasetError(f"{root} was collected with other settings ({details}); choose "
                           "another --out directory, or delete this one to start over")


def _finalise(root: Path) -> bool:
    """Record totals in meta.json once every shard exists; True when complete."""
    meta = read_meta(root)
    shards = [root / shard_name(k) for k in range(meta["num_shards"])]
    if not all(p.is_dir() for p in shards):
        return False
    infos = [json.loads((p / "shard.json").read_text()) for p in shards]
    meta.update(complete=True, num_frames=sum(i["num_frames"] for i in infos),
                num_episodes_written=sum(i["num_episodes"] for i in infos))
    atomic_write_text(root / META, json.dumps(meta, indent=2))
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
    root = Path(out)
    num_shards = -(-collect.episodes // collect.episodes_per_shard)
    planned = [k for k in range(num_shards) if k % shard[1] == shard[0]]
    pending = [k for k in planned if not (root / shard_name(k)).is_dir()]
    workers = min(collect.workers or available_cores(), max(len(pending), 1))
    job = {"root": str(root), "env": asdict(env), "collect": asdict(collect)}
    # workers boot (imports, env, renderer) while this process checks the dataset
    pool = _WorkerPool(job, workers) if workers > 1 and pending else None
    try:
        _open_dataset(root, _build_meta(env, collect))
        for k in planned:  # leftovers of a killed run of this job
            for stale in root.glob(f".{shard_name(k)}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
        todo = [k for k in planned if not (root / shard_name(k)).is_dir()]
        total = sum(len(_episodes_of(k, collect)) for k in todo) * (collect.episode_steps + 1)
        frames = _run_workers(job, todo, pool, total, progress, env.id)
    finally:
        if pool is not None:
            pool.close()
    seconds = time.perf_counter() - start  # the whole call: start-up and checks included
    skipped = [k for k in planned if k not in todo]
    return CollectResult(root, frames, seconds, todo, skipped, _finalise(root))


def _run_workers(job: dict[str, Any], todo: list[int], pool: _WorkerPool | None, total: int,
                 progress: bool, label: str) -> int:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="frame", desc=f"collect {label}", disable=not progress,
               dynamic_ncols=True, smoothing=0.1)
    try:
        if not todo:
            return 0
        if pool is not None:
            return pool.run(todo, bar)
        frames = 0  # one worker: in this process, no start-up or hand-off cost

        def report(kind: str, value: int) -> None:
            nonlocal frames
            if kind == "frames":
                frames += value
                bar.update(value)

        env_cfg, collect = EnvConfig(**job["env"]), CollectConfig(**job["collect"])
        env = make_env(env_cfg)
        policy = make_policy(collect.policy, env.action_space.shape[0], collect.policy_kwargs)
        try:
            for k in todo:
                _collect_shard(env, policy, Path(job["root"]), k, collect, report)
        finally:
            env.close()
        return frames
    finally:
        bar.close()


class _WorkerPool:
    """Spawned collection workers; they start booting at construction and wait for shards."""

    def __init__(self, job: dict[str, Any], workers: int) -> None:
        ctx = mp.get_context("spawn")  # fork after GL / torch initialisation is unsafe
        self.tasks, self.events = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=_worker, args=(job, self.tasks, self.events),
                                  daemon=True) for _ in range(workers)]
        for p in self.procs:
            p.start()
        self._released = False

    def _release(self) -> None:
        if not self._released:
            self._released = True
            for _ in self.procs:
                self.tasks.put(None)

    def run(self, todo: list[int], bar) -> int:
        """Hand out ``todo`` and follow progress until every worker is done; frames written."""
        for k in todo:
            self.tasks.put(k)
        self._release()
        frames, running = 0, len(self.procs)
        while running:
            try:
                kind, value = self.events.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in self.procs):
                    codes = [p.exitcode for p in self.procs]
                    raise RuntimeError(f"collection workers exited without reporting (exit codes "
                                       f"{codes}); rerun the same command to resume") from None
                continue
            if kind == "frames":
                frames += value
                bar.update(value)
            elif kind == "done":
                running -= 1
            elif kind == "error":
                raise RuntimeError(f"a collection worker failed:\n{value}")
        return frames

    def close(self) -> None:
        """Stop the workers (terminating any still busy after an error)."""
        self._release()
        for p in self.procs:
            p.join(timeout=0.5 if p.is_alive() else None)
            if p.is_alive():
                p.terminate()
                p.join()


def default_dataset_dir(base: str | Path, env: EnvConfig, collect: CollectConfig) -> Path:
    """``base/<env>-<size>px-<policy>-<episodes>x<steps>-seed<seed>-<hash>``: one per setting."""
    spec = json.dumps({"env": asdict(env), "collect": {k: v for k, v in asdict(collect).items()
                                                        if k != "workers"}}, sort_keys=True)
    digest = zlib.crc32(spec.encode()) & 0xFFFFFFFF
    name = (f"{env.id.replace('/', '-').replace(':', '-')}-{env.image_size}px-"
            f"{collect.policy.split(':')[-1]}-{collect.episodes}x{collect.episode_steps}-"
            f"seed{collect.seed}-{digest:08x}")
    return Path(base) / name


def ensure_dataset(path: str | Path, env: EnvConfig, collect: CollectConfig,
                   progress: bool = True) -> Path:
    """Collect the dataset at ``path`` unless it is complete there already (resumes a partial one).

    Under ``torchrun``/SLURM only local rank 0 collects; the other ranks wait for it.
    """
    path = Path(path)
    if (path / META).exists() and read_meta(path).get("complete"):
        return path
    if int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))) == 0:
        collect_rollouts(path, env, collect, progress=progress)
    else:
        while not ((path / META).exists() and read_meta(path).get("complete")):
            time.sleep(5.0)
    return path


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must look like i/n, got {text!r}") from None
    return i, n


def _json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    d_env, d_col = EnvConfig(), CollectConfig()
    p = argparse.ArgumentParser(prog="python -m envs.collect", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="dataset directory (created or resumed)")
    p.add_argument("--env", default=d_env.id, help="wm/ id, Gymnasium id or module:Env-v0")
    p.add_argument("--env-kwargs", type=_json_dict, default={}, help="JSON object for gym.make")
    p.add_argument("--image-size", type=int, default=d_env.image_size)
    p.add_argument("--action-repeat", type=int, default=d_env.action_repeat)
    p.add_argument("--episodes", type=int, default=d_col.episodes)
    p.add_argument("--steps", type=int, default=d_col.episode_steps, help="actions per episode")
    p.add_argument("--policy", default=d_col.policy, help="random, ou or module:factory")
    p.add_argument("--policy-kwargs", type=_json_dict, default={})
    p.add_argument("--seed", type=int, default=d_col.seed)
    p.add_argument("--workers", type=int, default=d_col.workers, help="0 = one per core")
    p.add_argument("--episodes-per-shard", type=int, default=d_col.episodes_per_shard)
    p.add_argument("--shard", type=_parse_shard, default=(0, 1), help="i/n for array jobs")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    env = EnvConfig(id=args.env, image_size=args.image_size, action_repeat=args.action_repeat,
                    kwargs=args.env_kwargs)
    collect = CollectConfig(episodes=args.episodes, episode_steps=args.steps,
                            policy=args.policy, policy_kwargs=args.policy_kwargs,
                            seed=args.seed, workers=args.workers,
                            episodes_per_shard=args.episodes_per_shard)
    try:
        result = collect_rollouts(args.out, env, collect, args.shard, not args.no_progress)
    except (DatasetError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    state = "complete" if result.complete else "incomplete (other shards pending)"
    print(f"{result.path}: wrote {len(result.shards_written)} shards, skipped "
          f"{len(result.shards_skipped)} complete ones; {result.frames} frames in "
          f"{result.seconds:.1f} s ({result.frames_per_second:.0f} frames/s); dataset {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
