"""``wml collect``: the command line of ``envs.collect.collect_rollouts``.

``--shard i/n`` makes a job write only shards ``k`` with ``k % n == i``, for cluster array
jobs; ``auto`` takes the SLURM array task.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from envs.collect import array_task_shard, collect_rollouts
from envs.config import CollectConfig, EnvConfig
from envs.dataset import DatasetError

__all__ = ["main"]


def _parse_shard(text: str) -> tuple[int, int]:
    if text == "auto":
        return array_task_shard()
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


def main(argv: list[str] | None = None, prog: str = "wml collect") -> int:
    d_env, d_col = EnvConfig(), CollectConfig()
    p = argparse.ArgumentParser(prog=prog, description="Collect pixel rollouts into a dataset directory.")
    p.add_argument("--out", required=True, help="dataset directory (created or resumed)")
    p.add_argument("--env", default=d_env.id, help="wm/ id, Gymnasium id or module:Env-v0")
    p.add_argument("--env-kwargs", type=_json_dict, default={}, help="JSON object for gym.make")
    p.add_argument("--image-size", type=int, default=d_env.image_size)
    p.add_argument("--action-repeat", type=int, default=d_env.action_repeat)
    p.add_argument("--episodes", type=int, default=d_col.episodes)
    p.add_argument("--episode-steps", "--steps", dest="steps", type=int,
                   default=d_col.episode_steps, help="actions per episode")
    p.add_argument("--policy", default=d_col.policy,
                   help="random, ou, ogbench_plan, ogbench_markov (cubes) or module:Class")
    p.add_argument("--policy-kwargs", type=_json_dict, default={})
    p.add_argument("--seed", type=int, default=d_col.seed)
    p.add_argument("--workers", type=int, default=d_col.workers, help="0 = one per core")
    p.add_argument("--episodes-per-shard", type=int, default=d_col.episodes_per_shard)
    p.add_argument("--shard", type=_parse_shard, default="auto",
                   help="i/n: write shards k with k %% n == i (array jobs); default auto = "
                        "the SLURM array task (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT), "
                        "else 0/1")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        env = EnvConfig(id=args.env, image_size=args.image_size,
                        action_repeat=args.action_repeat, kwargs=args.env_kwargs)
        collect = CollectConfig(episodes=args.episodes, episode_steps=args.steps,
                                policy=args.policy, policy_kwargs=args.policy_kwargs,
                                seed=args.seed, workers=args.workers,
                                episodes_per_shard=args.episodes_per_shard)
        result = collect_rollouts(args.out, env, collect, args.shard, not args.no_progress)
    except (DatasetError, ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the workers ignore Ctrl-C; closing the pool stopped them
        print(f"\ninterrupted: complete shards are kept in {args.out}; rerun the same command "
              "to resume", file=sys.stderr)
        return 130
    state = "complete" if result.complete else "incomplete (other shards pending)"
    print(f"{result.path}: wrote {len(result.shards_written)} shards, skipped "
          f"{len(result.shards_skipped)} complete ones; {result.frames} frames in "
          f"{result.seconds:.1f} s ({result.frames_per_second:.0f} frames/s); dataset {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
