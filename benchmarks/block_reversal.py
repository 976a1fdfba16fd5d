"""Does a world model know what reversing the action inside a block does? (README, point_mass)

From random starts at rest, the env runs ``--blocks`` action blocks of one corner action held
for every step, and the same blocks with the last step of each block reversed. The model rolls
out both from the encoded first frame. Progress along the push is read from the goal
coordinates: true from the env, predicted through a linear read-out of the latent fitted on
frames rendered at states drawn from the env's state sampler box (no training data needed; its
R² is reported on held-out frames).

A model trained on smooth actions (OU) has not seen in-block reversals; when it predicts more
progress for them than for held blocks, while the physics gives less, a planner searching whole
blocks will exploit it, and ``plan.eval.hold=true`` is the remedy.

    python -m benchmarks.block_reversal outputs/point_mass_seed1/model.ckpt [--starts 16]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import numpy as np
import torch

from common.fileio import atomic_write_text
from envs.collect import make_env
from envs.goals import GoalSpec
from planners.evaluate import place_at_rest
from worldmodel.checkpoint import load_world_model
from worldmodel.utils import configure_threads

OUT = ROOT / "benchmarks" / "results" / "planning"


def _place(env, goal: GoalSpec, coords: np.ndarray) -> np.ndarray:
    """Put the goal coordinates of ``env`` at ``coords`` (at rest); the rendered frame."""
    return place_at_rest(env, goal.indices, coords)[0]


def _fit_readout(model, env, goal: GoalSpec, coords: np.ndarray) -> tuple[np.ndarray, float]:
    """A linear read-out of the goal coordinates from the latent (with a bias), fitted on
    frames rendered with the goal coordinates at ``coords``: fitted on the first three
    quarters, its R² on the rest."""
    frames = np.stack([_place(env, goal, c) for c in coords])
    z = model.encode(torch.from_numpy(frames)[None])[0].double().numpy()
    features = np.c_[z, np.ones(len(z))]
    fit_n = 3 * len(coords) // 4  # fit on three quarters, R² on the rest
    readout = np.linalg.lstsq(features[:fit_n], coords[:fit_n], rcond=None)[0]
    held_out = coords[fit_n:]
    r2 = 1 - ((features[fit_n:] @ readout - held_out) ** 2).sum() / \
        ((held_out - held_out.mean(0)) ** 2).sum()
    return readout, r2


def _progress(model, meta, env, readout: np.ndarray, origin: np.ndarray, push: np.ndarray,
              reversed_last: bool, blocks: int, reset_seed: int) -> tuple[float, float]:
    """True and predicted progress along ``push`` over ``blocks`` blocks of it held from
    ``origin`` at rest (``reversed_last``: the last step of each block reversed)."""
    k, history, goal = meta.frameskip, meta.history, meta.goal
    A = env.action_space.shape[0]
    env.reset(seed=reset_seed)
    first = _place(env, goal, origin)
    block = np.tile(push, (k, 1))
    if reversed_last:
        block[-1] = -push
    for _ in range(blocks):
        for action in block:
            _, _, _, _, info = env.step(action)
    end = goal.coordinates(info["state"])
    z0 = model.encode(torch.from_numpy(first)[None, None])  # (1, 1, D)
    actions = torch.zeros(1, history - 1 + blocks, k * A)
    actions[0, history - 1:] = torch.as_tensor(block.reshape(-1), dtype=torch.float32)
    rollout = model.rollout(z0.expand(1, history, -1), actions)[0]  # (h + blocks, D)
    direction = push / np.linalg.norm(push)
    ends = torch.stack([rollout[0], rollout[-1]]).double().numpy()
    p0, p1 = np.c_[ends, np.ones(len(ends))] @ readout
    return float((end - origin) @ direction), float((p1 - p0) @ direction)


@torch.inference_mode()
def measure(checkpoint: str, starts: int = 16, blocks: int = 5, grid: int = 400,
            seed: int = 0) -> dict:
    model, meta = load_world_model(checkpoint)
    k = meta.frameskip
    if k < 2:
        raise SystemExit(f"{checkpoint}: frameskip {k}; a block of one step has no inside")
    goal = meta.goal
    env = make_env(meta.env)
    env.reset(seed=seed)
    if not env.can_restore_state or goal.sample_low is None:
        raise SystemExit(f"{meta.env.id}: needs an env that sets its state and a goal "
                         "state-sampler box (goal.sample_low / sample_high)")
    rng = np.random.default_rng(seed)
    low, high = np.asarray(goal.sample_low), np.asarray(goal.sample_high)
    coords = rng.uniform(low, high, (grid, len(goal.indices)))
    readout, r2 = _fit_readout(model, env, goal, coords)
    A = env.action_space.shape[0]
    result = {"checkpoint": checkpoint, "env_id": meta.env.id, "frameskip": k,
              "blocks": blocks, "starts": starts, "readout_r2": float(r2)}
    origins = rng.uniform(low / 2, high / 2, (starts, len(goal.indices)))
    pushes = rng.choice([-1.0, 1.0], (starts, A))  # corners of the action box
    for pattern in ("held", "last_step_reversed"):  # the same starts and pushes for both
        true, predicted = [], []
        for i, (origin, push) in enumerate(zip(origins, pushes)):
            moved, predicted_move = _progress(model, meta, env, readout, origin, push,
                                              pattern == "last_step_reversed", blocks,
                                              seed + 1 + i)
            true.append(moved)
            predicted.append(predicted_move)
        result[pattern] = {"true": float(np.mean(true)), "predicted": float(np.mean(predicted))}
        print(f"{pattern:<19} progress along the push over {blocks} blocks: true "
              f"{np.mean(true):.4f}, predicted {np.mean(predicted):.4f}", flush=True)
    env.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--starts", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="0: the free cores")
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    result = measure(args.checkpoint, args.starts, args.blocks)
    print(f"latent -> goal coordinates read-out R2 {result['readout_r2']:.4f} (held-out frames)")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"block_reversal-{Path(args.checkpoint).parent.name}.json"
    atomic_write_text(path, json.dumps(result, indent=2))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
