"""Collection and data-loading throughput against raw MuJoCo step+render speed, in one run.

Measures, each in a fresh process (one renderer per process):
  1. raw: the env's own ``step`` + fast-camera ``render`` loop, one process (the reference);
  2. the collector (``envs.collect``) with 1 and with 2 workers, whole call (start-up, policy,
     shard writes included);
  3. the data module's training windows/s, against the training step's samples/s of the
     default pixel world model (``configs/reacher.yaml``) on the same machine.

    python -m benchmarks.collect            # ~2 min on 2 cores; the 2-worker run is 1000 episodes
    python -m benchmarks.collect --quick    # ~20 s, fewer frames (noisier)
    python -m benchmarks.collect --env wm/cube-single-v0 --policy ogbench_plan
        # the cube scene: also its full-mesh rendering and raw reacher, same run (~3 min)

With a policy other than OU, the collector's reference is the pixel env driven by that policy
in one process (an oracle's own cost is not the collector's overhead). For an env other than
reacher, the bare env's rate (random actions) is checked against an absolute goal
(``GOAL_RAW``, cube: 500 step+render frames/s per process at 64 px) and reported next to raw
reacher measured in the same run; the data-loading part is reacher's and is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "benchmarks" / "results" / "collect"
GOAL_EFFICIENCY = 0.8  # collector >= 0.8 x raw x workers
GOAL_FPS_2_WORKERS = 1500
GOAL_LOADING_HEADROOM = 10  # windows/s >= 10 x training samples/s
GOAL_RAW = {"wm/cube-single-v0": 500}  # step + render frames/s per process, 64 px


def raw_fps(env_id: str, image_size: int, frames: int, episode_steps: int,
            env_kwargs: dict | None = None) -> float:
    """Step + render of the env underneath the PixelEnv layer, random actions, one process."""
    import numpy as np

    from envs import make_pixel_env

    inner = make_pixel_env(env_id, image_size, env_kwargs=env_kwargs).env  # what PixelEnv wraps
    rng = np.random.default_rng(0)
    low, high = inner.action_space.low, inner.action_space.high
    inner.reset(seed=0)
    inner.render()
    for _ in range(50):  # warm-up
        inner.step(rng.uniform(low, high))
        inner.render()
    start = time.perf_counter()
    for t in range(frames):
        if t % episode_steps == 0:
            inner.reset(seed=t)
        inner.step(rng.uniform(low, high))
        inner.render()
    seconds = time.perf_counter() - start
    inner.close()
    return frames / seconds


def policy_fps(env_id: str, image_size: int, frames: int, episode_steps: int,
               policy: str) -> float:
    """The pixel env driven by a collection policy, one process: the collector's reference
    when the policy costs time of its own (OGBench's oracles), nothing stored."""
    from envs import make_pixel_env
    from envs.policies import make_policy

    env = make_pixel_env(env_id, image_size)
    actor = make_policy(policy, env.action_space.shape[0], env=env)
    start, t = time.perf_counter(), 0
    while t < frames:
        frame, info = env.reset(seed=t)
        actor.reset(t)
        for _ in range(min(episode_steps, frames - t)):
            frame, _, _, _, info = env.step(actor.act(frame, info))
            t += 1
    seconds = time.perf_counter() - start
    env.close()
    return frames / seconds


def collector_fps(env_id: str, image_size: int, episodes: int, episode_steps: int,
                  workers: int, out: str, policy: str = "ou") -> dict[str, float]:
    from envs.collect import CollectConfig, EnvConfig, collect_rollouts

    start = time.perf_counter()
    per_shard = max(1, min(10, episodes // (2 * workers)))
    result = collect_rollouts(out, EnvConfig(id=env_id, image_size=image_size),
                              CollectConfig(episodes=episodes, episode_steps=episode_steps,
                                            workers=workers, episodes_per_shard=per_shard,
                                            policy=policy),
                              progress=False)
    seconds = time.perf_counter() - start  # the whole call, as a user waits for it
    return {"frames": result.frames, "seconds": seconds, "fps": result.frames / seconds}


def loading_and_training(dataset: str, batches: int) -> dict[str, float]:
    """Windows/s of the train loader, and samples/s of the default model's training step."""
    from benchmarks.train_throughput import bare_loop
    from configs.loader import load_config
    from worldmodel.data import PixelDataModule
    from worldmodel.utils import configure_threads, keep_freed_memory

    configure_threads(0)
    keep_freed_memory()
    cfg = load_config("reacher")
    data = PixelDataModule(dataset, cfg.data, cfg.trainer.batch_size, seed=0)
    loader = data.train_dataloader()
    n, start = 0, time.perf_counter()
    for i, batch in enumerate(loader):
        n += len(batch["obs"])
        if i + 1 >= batches:
            break
    windows_per_s = n / (time.perf_counter() - start)

    train_per_s = bare_loop(cfg, Path(dataset), steps=12, warmup=3) * cfg.trainer.batch_size
    return {"windows_per_s": windows_per_s, "train_samples_per_s": train_per_s,
            "batch_size": cfg.trainer.batch_size, "window_frames": cfg.data.window,
            "bf16": bool(cfg.trainer.cpu_bf16)}


def _call_and_send(fn, args, results) -> None:
    results.put(fn(*args))


def _in_fresh_process(fn, *args) -> Any:
    """``fn(*args)`` in a new (non-daemonic: it may start workers) spawned process."""
    ctx = get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_call_and_send, args=(fn, args, results))
    proc.start()
    try:
        value = results.get(timeout=1800)
    finally:
        proc.join()
    if proc.exitcode:
        raise RuntimeError(f"{fn.__name__} failed in its process (exit code {proc.exitcode})")
    return value


def _extra_measurements(env_id: str, image_size: int, frames_per_worker: int,
                        episode_steps: int, policy: str, dataset: str) -> dict[str, Any]:
    """Reacher: the data loading of the 2-worker ``dataset`` against training. Another env:
    the bare env (random actions), with its full meshes, and raw reacher."""
    if env_id == "wm/reacher-v0":
        return _in_fresh_process(loading_and_training, dataset, 200)
    extra: dict[str, Any] = {}
    if policy != "ou":
        extra["raw_fps_random"] = _in_fresh_process(
            raw_fps, env_id, image_size, frames_per_worker, episode_steps)
    extra["raw_fps_full_meshes"] = _in_fresh_process(
        raw_fps, env_id, image_size, 200, episode_steps, {"mesh_cell": 0.0})
    extra["raw_fps_reacher"] = _in_fresh_process(
        raw_fps, "wm/reacher-v0", image_size, frames_per_worker, 100)
    return extra


def run(env_id: str, image_size: int, frames_per_worker: int, episode_steps: int,
        policy: str = "ou") -> dict[str, Any]:
    episodes = max(frames_per_worker // (episode_steps + 1), 2)
    reacher = env_id == "wm/reacher-v0"
    reference = raw_fps if policy == "ou" else policy_fps  # OU costs nothing to speak of
    ref_args = () if policy == "ou" else (policy,)
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as tmp:
        raw_before = _in_fresh_process(reference, env_id, image_size, frames_per_worker,
                                       episode_steps, *ref_args)
        one = _in_fresh_process(collector_fps, env_id, image_size, episodes, episode_steps, 1,
                                f"{tmp}/one", policy)
        two = _in_fresh_process(collector_fps, env_id, image_size, 2 * episodes,
                                episode_steps, 2, f"{tmp}/two", policy)
        raw_after = _in_fresh_process(reference, env_id, image_size, frames_per_worker,
                                      episode_steps, *ref_args)
        extra = _extra_measurements(env_id, image_size, frames_per_worker, episode_steps,
                                    policy, f"{tmp}/two")
    raw = (raw_before + raw_after) / 2  # the reference drifts with machine load; average it
    results = {
        "env": env_id, "image_size": image_size, "episode_steps": episode_steps,
        "policy": policy, "raw_fps": raw, "raw_fps_runs": [raw_before, raw_after],
        "collector_1_worker": one, "collector_2_workers": two,
        "efficiency_1_worker": one["fps"] / raw, "efficiency_2_workers": two["fps"] / (2 * raw),
        **extra, "cores": os.cpu_count(),
    }
    checks = {
        f"collector, 1 worker >= {GOAL_EFFICIENCY} x raw": results["efficiency_1_worker"]
        >= GOAL_EFFICIENCY,
        f"collector, 2 workers >= {GOAL_EFFICIENCY} x 2 x raw": results["efficiency_2_workers"]
        >= GOAL_EFFICIENCY,
    }
    if reacher:
        results["loading_headroom"] = extra["windows_per_s"] / extra["train_samples_per_s"]
        checks[f"collector, 2 workers >= {GOAL_FPS_2_WORKERS} frames/s"] = (
            two["fps"] >= GOAL_FPS_2_WORKERS)
        checks[f"windows/s >= {GOAL_LOADING_HEADROOM} x training samples/s"] = (
            results["loading_headroom"] >= GOAL_LOADING_HEADROOM)
    elif env_id in GOAL_RAW:
        bare = results.get("raw_fps_random", raw)
        checks[f"raw step + render >= {GOAL_RAW[env_id]} frames/s"] = bare >= GOAL_RAW[env_id]
    results["checks"] = checks
    return results


def report(r: dict[str, Any]) -> str:
    one, two = r["collector_1_worker"], r["collector_2_workers"]
    lines = [
        (f"# Collection benchmark: {r['env']} at {r['image_size']}x{r['image_size']}, "
         f"{r['cores']} cores, policy {r.get('policy', 'ou')}, episodes of "
         f"{r['episode_steps']} steps"),
        "",
        "| measurement | frames/s | ratio |",
        "|---|---|---|",
        (f"| {'raw step + render' if r.get('policy', 'ou') == 'ou' else 'env + policy'}, "
         f"1 process (reference; runs {r['raw_fps_runs'][0]:.0f}, "
         f"{r['raw_fps_runs'][1]:.0f}) | {r['raw_fps']:.0f} | 1.00 |"),
        (f"| collector, 1 worker ({one['frames']} frames, {one['seconds']:.1f} s) | "
         f"{one['fps']:.0f} | {r['efficiency_1_worker']:.2f} x raw |"),
        (f"| collector, 2 workers ({two['frames']} frames, {two['seconds']:.1f} s) | "
         f"{two['fps']:.0f} | {r['efficiency_2_workers']:.2f} x (2 x raw) |"),
    ]
    if "raw_fps_random" in r:
        lines.append(f"| raw step + render, random actions (the bare env) | "
                     f"{r['raw_fps_random']:.0f} | {r['raw_fps_random'] / r['raw_fps']:.2f} x "
                     "reference |")
    if "raw_fps_full_meshes" in r:
        lines += [
            (f"| raw step + render with the full meshes (mesh_cell=0) | "
             f"{r['raw_fps_full_meshes']:.0f} | {r['raw_fps_full_meshes'] / r['raw_fps']:.3f} "
             "x raw |"),
            (f"| raw step + render of wm/reacher-v0, same run | {r['raw_fps_reacher']:.0f} | "
             f"{r['raw_fps_reacher'] / r['raw_fps']:.2f} x raw |")]
    if "windows_per_s" in r:
        lines += [
            "",
            "| data loading vs training | samples/s |",
            "|---|---|",
            (f"| train loader, windows of {r['window_frames']} frames, batch "
             f"{r['batch_size']} | {r['windows_per_s']:.0f} |"),
            (f"| training step of the default world model (bf16 {r['bf16']}) | "
             f"{r['train_samples_per_s']:.0f} |"),
            f"| headroom | {r['loading_headroom']:.0f} x |"]
    lines.append("")
    lines += [f"- [{'x' if ok else ' '}] {name}" for name, ok in r["checks"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer frames: faster, noisier")
    p.add_argument("--env", default="wm/reacher-v0")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--policy", default="ou", help="collection policy (ogbench_plan for cubes)")
    p.add_argument("--episode-steps", type=int, default=100)
    p.add_argument("--frames", type=int, default=None, help="frames per worker")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    # full: 2 workers collect 1000 episodes of 100 steps
    frames = args.frames or (4000 if args.quick else 50500)
    results = run(args.env, args.image_size, frames, args.episode_steps, args.policy)
    text = report(results)
    print(text)
    if not args.quick:
        from common.fileio import atomic_write_text

        tag = "" if args.env == "wm/reacher-v0" else "-" + args.env.split("/")[-1]
        atomic_write_text(args.out / f"results{tag}.json", json.dumps(results, indent=2))
        atomic_write_text(args.out / f"report{tag}.md", text)
        print(f"wrote {args.out / f'report{tag}.md'}")
    return 0 if all(results["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
