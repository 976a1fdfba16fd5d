"""Rollouts into shards: one episode, one shard, the workers (configs in ``envs.config``).

``envs.collect`` orchestrates these (dataset checks, resume, the CLI); the functions here are
what each worker process runs: one env and one renderer for its life, whole shards written
straight from the episode buffers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from envs.config import CollectConfig, EnvConfig
from envs.dataset_write import write_dataset_shard
from envs.policies import make_policy

__all__ = ["CollectConfig", "EnvConfig", "EpisodeEnd", "WorkerPool", "collect_episode",
           "collect_shard", "episode_buffers", "episode_seeds", "episodes_of", "make_env",
           "physics_dim", "run_episode", "run_in_process"]


def make_env(cfg: EnvConfig):
    """The ``PixelEnv`` of an ``EnvConfig``."""
    from envs.registry import make_pixel_env

    return make_pixel_env(cfg.id, cfg.image_size, cfg.action_repeat, cfg.kwargs, cfg.state,
                          cfg.goal)


def episode_seeds(seed: int, episode: int) -> tuple[int, int]:
    """(env reset seed, policy seed) of an episode, from the dataset seed alone."""
    env_seed, policy_seed = np.random.SeedSequence([seed, episode]).generate_state(2)
    return int(env_seed), int(policy_seed)


def physics_dim(env) -> int | None:
    """Size of the env's full physics state, or None when it has none (not MuJoCo)."""
    return None if env.mujoco_model_data() is None else int(env.physics_state().shape[0])


def episode_buffers(env, frames: int) -> dict[str, np.ndarray]:
    """Empty arrays for ``frames`` rows of the env's pixels, actions, states and rewards, and
    of its full physics states where it has them."""
    size, a_dim = env.observation_space.shape, env.action_space.shape[0]
    out = {"pixels": np.empty((frames, *size), np.uint8),
           "actions": np.full((frames, a_dim), np.nan, np.float32),
           "states": np.empty((frames, env.state_dim), np.float32),
           "rewards": np.full(frames, np.nan, np.float32)}
    if (dim := physics_dim(env)) is not None:
        out["physics"] = np.empty((frames, dim), np.float64)
    return out


class EpisodeEnd(NamedTuple):
    """How a collected episode ended: its frames, and Gymnasium's two end flags."""

    length: int
    terminated: bool  # the env reached a terminal state
    truncated: bool  # cut short: by the env's time limit or by the ``steps`` limit


def collect_episode(env, policy, seed: int, episode: int, steps: int,
                    out: dict[str, np.ndarray] | None = None) -> int:
    """Run one episode of at most ``steps`` actions into ``out`` (rows from 0); its length.

    ``out`` defaults to fresh ``episode_buffers(env, steps + 1)``; the episode fills rows
    ``[0, L)`` with ``L <= steps + 1`` frames, and its last action and reward stay NaN.
    ``run_episode`` does the same and also says how the episode ended.
    """
    return run_episode(env, policy, seed, episode, steps, out).length


def run_episode(env, policy, seed: int, episode: int, steps: int,
                out: dict[str, np.ndarray] | None = None) -> EpisodeEnd:
    """``collect_episode``, returning the length and the [terminated, truncated] flags; an
    episode still running after ``steps`` actions counts as truncated."""
    out = episode_buffers(env, steps + 1) if out is None else out
    env_seed, policy_seed = episode_seeds(seed, episode)
    physics = out.get("physics")
    pixels, info = env.reset(seed=env_seed)
    policy.reset(policy_seed)
    out["pixels"][0], out["states"][0] = pixels, info["state"]
    if physics is not None:
        physics[0] = env.physics_state()
    length, terminated, truncated = 1, False, False
    for t in range(steps):
        action = np.asarray(policy.act(pixels, info), np.float32)
        pixels, reward, terminated, truncated, info = env.step(action)
        out["actions"][t], out["rewards"][t] = action, reward
        out["pixels"][t + 1], out["states"][t + 1] = pixels, info["state"]
        if physics is not None:
            physics[t + 1] = env.physics_state()
        length += 1
        if terminated or truncated:
            break
    terminated = bool(terminated)
    return EpisodeEnd(length, terminated, bool(truncated) or not terminated)


def episodes_of(shard: int, collect: CollectConfig) -> range:
    first = shard * collect.episodes_per_shard
    return range(first, min(first + collect.episodes_per_shard, collect.episodes))


def collect_shard(env, policy, root: Path, shard: int, collect: CollectConfig, report) -> None:
    episodes = episodes_of(shard, collect)
    arrays = episode_buffers(env, len(episodes) * (collect.episode_steps + 1))  # shard-sized
    table, ends, row = [], [], 0
    for e in episodes:  # each episode writes straight into its rows of the shard
        view = {k: v[row:] for k, v in arrays.items()}
        n, terminated, truncated = run_episode(env, policy, collect.seed, e,
                                               collect.episode_steps, view)
        table.append((e, row, n))
        ends.append((terminated, truncated))
        row += n
        report("frames", n)
    arrays = {k: v[:row] for k, v in arrays.items()}
    arrays["episodes"] = np.asarray(table, np.int64)
    arrays["episode_ends"] = np.asarray(ends, bool).reshape(-1, 2)
    write_dataset_shard(root, shard, arrays)
    report("shard", shard)


def _exit_with_parent() -> None:
    """Exit this worker soon after the process that started it is gone (killed with -9, or
    with SIGTERM before it could stop its workers): orphans would collect on for nothing."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)  # a shard being written stays a temporary folder, never a complete shard

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _worker(job: dict[str, Any], tasks, events) -> None:
    """Worker process: one env and one renderer for its life, shards from ``tasks``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the collector's to handle
    _exit_with_parent()
    try:
        os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker, also for resizing
        env_cfg, collect = EnvConfig(**job["env"]), CollectConfig(**job["collect"])
        env = make_env(env_cfg)
        policy = make_policy(collect.policy, env.action_space.shape[0], collect.policy_kwargs,
                             env)
        while (shard := tasks.get()) is not None:  # None: no more shards
            collect_shard(env, policy, Path(job["root"]), shard, collect,
                           lambda kind, value: events.put((kind, value)))
        env.close()
        events.put(("done", None))
    except Exception:  # noqa: BLE001  (reported to the main process, which stops the rest)
        events.put(("error", traceback.format_exc()))


def run_in_process(job: dict[str, Any], todo: list[int], report) -> None:
    """Collect the shards ``todo`` in this process (one worker: no start-up or hand-off cost)."""
    env_cfg, collect = EnvConfig(**job["env"]), CollectConfig(**job["collect"])
    env = make_env(env_cfg)
    policy = make_policy(collect.policy, env.action_space.shape[0], collect.policy_kwargs, env)
    try:
        for k in todo:
            collect_shard(env, policy, Path(job["root"]), k, collect, report)
    finally:
        env.close()


class WorkerPool:
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
