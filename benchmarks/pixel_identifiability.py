"""The paper's pixel experiment (SCIENCE.md section 4, "Pixels") on dm_control reacher, 64x64.

An encoder (the paper's: 4 x [conv k4 s2, BN, GELU] 32-64-128-256, pool, MLP to 2-D) is trained
with alignment + SIGReg (``JEPAModule``, identity predictor, through the Trainer of every run:
``worldmodel.app.trainer``) on frame pairs fed by a ``PairsDataModule``:
  * OU pairs: joint angles z ~ N(0, I) and z' = rho z + sqrt(1 - rho^2) eta, both rendered
    (target hidden, so the joint angles are the whole latent), rho in {0.5, 0.9, 0.99};
    scored by R²(h -> z) on fresh pairs;
  * trajectory pairs: consecutive frames of OU-policy episodes, scored per joint on the
    (sin, cos) of each angle (the joints turn freely along a trajectory) and in total.

Every encoder, and two snapshots taken early in its training (less identifiable), then runs the
paper's planning test and LQR check (``benchmarks.pixel_planning``): the latent straight-line
plan ratio J(latent) / J(theta line) on 40 start/goal pairs, as a box plot per encoder and as
mean ratio against R²(h -> theta), and the LQR value error in the encoder's coordinates.

    python -m benchmarks.pixel_identifiability           # < 45 min on 2 cores
    python -m benchmarks.pixel_identifiability --quick   # a few minutes, short training
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

import lightning as L
import numpy as np
import torch

from benchmarks import publish
from benchmarks.pixel_planning import (
    PlanningFrames,
    planning_metrics,
    planning_table,
    plot_planning,
)
from callbacks.state_probe import heldout_r2, probe_targets
from common.fileio import atomic_write_text
from configs.schema import TrainerConfig
from envs import make_pixel_env
from envs.collect import CollectConfig, EnvConfig, default_dataset_dir, ensure_dataset
from envs.dataset import PixelDataset
from worldmodel.app.trainer import build_trainer
from worldmodel.identifiability import r2_score
from worldmodel.module import JEPAModule, LossConfig, OptimConfig
from worldmodel.regularisers import RegulariserConfig
from worldmodel.streams import PairsDataModule
from worldmodel.utils import configure_threads, keep_freed_memory, native_bf16
from worldmodel.world_model import ModelConfig

OUT = ROOT / "benchmarks" / "results" / "pixel-identifiability"
HIDE_TARGET = {"invisible_geoms": ["target"]}
RHOS = (0.5, 0.9, 0.99)


def render_angles(theta: np.ndarray, image_size: int) -> np.ndarray:
    """Frames ``uint8 (N, H, W, 3)`` of reacher at rest at joint angles ``theta (N, 2)``."""
    env = make_pixel_env("wm/reacher-v0", image_size, env_kwargs=HIDE_TARGET)
    frames = np.empty((len(theta), image_size, image_size, 3), np.uint8)
    for i, angles in enumerate(theta):
        env.restore_state(angles)
        frames[i] = env.render_frame()
    env.close()
    return frames


class Snapshots(L.Callback):
    """Copies of the world model's weights after the given optimiser steps."""

    def __init__(self, steps: list[int]) -> None:
        self.steps, self.saved = set(steps), {}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step in self.steps:
            self.saved[trainer.global_step] = {k: v.detach().clone() for k, v in
                                               module.world_model.state_dict().items()}


def with_planning(row: dict[str, Any], module: JEPAModule, snapshots: Snapshots,
                  frames: PlanningFrames) -> dict[str, Any]:
    """``row`` plus the planning test and LQR check of the final encoder and its snapshots."""
    final = {k: v.clone() for k, v in module.world_model.state_dict().items()}
    row["snapshots"] = []
    for step, weights in sorted(snapshots.saved.items()):
        module.world_model.load_state_dict(weights)
        row["snapshots"].append({"step": step, **planning_metrics(
            lambda x: encode(module, x), frames)})
    module.world_model.load_state_dict(final)
    row["planning"] = planning_metrics(lambda x: encode(module, x), frames)
    return row


def render_ou_pairs(rho: float, n: int, image_size: int, seed: int) -> dict[str, torch.Tensor]:
    """``obs uint8 (n, 2, H, W, 3)`` rendered at OU joint-angle pairs ``states (n, 2, 2)``."""
    env = make_pixel_env("wm/reacher-v0", image_size, env_kwargs=HIDE_TARGET)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 2))
    z_next = rho * z + np.sqrt(1 - rho**2) * rng.standard_normal((n, 2))
    obs = np.empty((n, 2, image_size, image_size, 3), np.uint8)
    for i in range(n):
        for v, angles in enumerate((z[i], z_next[i])):
            env.restore_state(angles)  # at rest
            obs[i, v] = env.render_frame()
    env.close()
    state = np.stack([z, z_next], axis=1).astype(np.float32)
    return {"obs": torch.from_numpy(obs), "states": torch.from_numpy(state)}


def trajectory_pairs(dataset: PixelDataset, episodes: range) -> dict[str, torch.Tensor]:
    """Consecutive frames ``(t, t+1)`` of the given episodes, with their joint angles."""
    obs, state = [], []
    for e in episodes:
        ep = dataset.episode(e)
        obs.append(np.stack([ep["pixels"][:-1], ep["pixels"][1:]], axis=1))
        state.append(np.stack([ep["states"][:-1, :2], ep["states"][1:, :2]], axis=1))
    return {"obs": torch.from_numpy(np.concatenate(obs)),
            "states": torch.from_numpy(np.concatenate(state))}


@torch.no_grad()
def encode(module: JEPAModule, obs: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Latents ``(N, 2)`` of frames ``obs (N, H, W, 3)``, in eval mode."""
    model = module.world_model.eval()
    return torch.cat([model.encode(obs[i:i + batch, None])[:, 0].float()
                      for i in range(0, len(obs), batch)])


def train_encoder(pairs: dict[str, torch.Tensor], steps: int, lam: float, seed: int,
                  callbacks: list[L.Callback] = ()) -> JEPAModule:
    """``lam * SIGReg + (1 - lam) * alignment`` of the two frames of each pair, batch 128."""
    L.seed_everything(seed, verbose=False)
    data = PairsDataModule(pairs, batch_size=128, seed=seed)
    model = ModelConfig(encoder="deep_conv", feature_dim=256, projector="linear", latent_dim=2,
                        predictor="identity")
    loss = LossConfig(prediction_weight=(1 - lam) / 4, regulariser_weight=lam,
                      regulariser=RegulariserConfig(name="sigreg", pooled=True))
    module = JEPAModule.from_configs(model, loss, OptimConfig(lr=1e-3), data.model_meta, steps,
                                     cpu_bf16=False)  # the Trainer's bf16-mixed instead
    trainer_cfg = TrainerConfig(max_steps=steps, accelerator="cpu", devices=1, logger="none",
                                precision="bf16-mixed" if native_bf16("cpu") else "32-true")
    trainer = build_trainer(trainer_cfg, OUT / "lightning", list(callbacks),
                            enable_checkpointing=False,
                            limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    return module


def ou_lam(rho: float, scale: float) -> float:
    """SIGReg weight ``scale * (1 - rho)``: the alignment loss at the optimum is
    ``2 (1 - rho) n``, so this keeps the balance of the two terms the same for every rho."""
    return round(scale * (1 - rho), 6)


def ou_run(rho: float, args) -> dict[str, Any]:
    start = time.perf_counter()
    lam = ou_lam(rho, args.lam_scale)
    train_pairs = render_ou_pairs(rho, args.pairs, args.image_size, seed=1)
    test = render_ou_pairs(rho, args.test_pairs, args.image_size, seed=2)
    snapshots = Snapshots(args.snapshot_steps)
    module = train_encoder(train_pairs, args.steps, lam, seed=0, callbacks=[snapshots])
    h = encode(module, test["obs"][:, 0])
    fit = r2_score(h, test["states"][:, 0])
    row = {"data": f"OU pairs, rho={rho}", "rho": rho, "lam": lam, "r2": fit["r2"],
           "r2_per_joint": fit["r2_per_dim"], "seconds": time.perf_counter() - start}
    return with_planning(row, module, snapshots, args.planning_frames)


def trajectory_run(args) -> dict[str, Any]:
    start = time.perf_counter()
    env = EnvConfig(image_size=args.image_size, kwargs=HIDE_TARGET)
    collect = CollectConfig(episodes=args.episodes, episode_steps=100)
    path = ensure_dataset(default_dataset_dir(ROOT / "outputs" / "datasets", env, collect),
                          env, collect)
    data = PixelDataset(path)
    n_test = max(args.episodes // 10, 1)
    train_pairs = trajectory_pairs(data, range(args.episodes - n_test))
    test = trajectory_pairs(data, range(args.episodes - n_test, args.episodes))
    snapshots = Snapshots(args.snapshot_steps)
    module = train_encoder(train_pairs, args.steps, args.trajectory_lam, seed=0,
                           callbacks=[snapshots])
    h_fit, h = encode(module, train_pairs["obs"][::5, 0]), encode(module, test["obs"][:, 0])
    y_fit, groups = probe_targets(train_pairs["states"][::5, 0], angular={0, 1})
    y, _ = probe_targets(test["states"][:, 0], angular={0, 1})
    r = heldout_r2(h_fit, y_fit, h, y, groups)
    row = {"data": "policy trajectories (OU actions)", "rho": None,
           "lam": args.trajectory_lam, "r2": r["r2"],
           "r2_per_joint": r["r2_per_group"], "seconds": time.perf_counter() - start}
    return with_planning(row, module, snapshots, args.planning_frames)


def report(rows: list[dict[str, Any]], args) -> str:
    lines = [(f"# Pixel identifiability: reacher {args.image_size}x{args.image_size}, deep conv "
             f"encoder -> 2-D, {args.steps} steps, batch 128"), "",
             "| data | λ | R² total | R² shoulder | R² wrist | minutes |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['lam']:g} | {r['r2']:.3f} | "
                     f"{r['r2_per_joint'][0]:.3f} | {r['r2_per_joint'][1]:.3f} | "
                     f"{r['seconds'] / 60:.1f} |")
    lines += ["", ("OU pairs: affine fit h -> (shoulder, wrist) angles on fresh pairs. "
              "Trajectories: held-out episodes, each joint through (sin, cos)."), "",
              (f"## Planning test and LQR check ({len(rows[0]['planning']['plan_ratios'])} "
              "start/goal pairs per encoder)"), "", *planning_table(rows), "",
              ("J = sum |theta_t - theta_goal|^2 + sum |theta_{t+1} - theta_t|^2 of the latent "
               "straight line decoded by 5-NN, over that of the straight line in theta (ideal "
               "1). LQR: relative error of the value function solved in the encoder's "
               "push-forward coordinates, on 200 held-out points (0 for a rotation)."), "",
              "Snapshots during training (mean J ratio against R²(h→θ); planning_vs_r2.png):",
              "", "| encoder | step | R²(h→θ) | mean J ratio | LQR value error |",
              "|---|---|---|---|---|"]
    for r in rows:
        for snap in [*r["snapshots"], {"step": args.steps, **r["planning"]}]:
            lines.append(f"| {r['data']} | {snap['step']} | {snap['r2_h_to_theta']:.3f} | "
                         f"{snap['plan_ratio_mean']:.3f} | {snap['value_error_median']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--lam-scale", type=float, default=0.1,
                   help="OU pairs use lambda = lam_scale * (1 - rho)")
    p.add_argument("--trajectory-lam", type=float, default=0.001,
                   help="SIGReg weight of the trajectory encoder (at 0.05 it learned nothing "
                        "readable, README)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--fresh", action="store_true", help="ignore runs cached by an earlier call")
    p.add_argument("--only", nargs="*", default=None, metavar="KEY",
                   help="run only the runs whose key starts with one of these (e.g. ou-rho0.99 "
                        "trajectories); the report covers the runs done so far")
    args = p.parse_args(argv)
    args.steps = 300 if args.quick else 3000
    args.pairs, args.test_pairs = (4000, 1000) if args.quick else (30000, 4000)
    args.episodes = 60 if args.quick else 300
    args.snapshot_steps = [max(args.steps // 20, 1), max(args.steps // 5, 1)]
    configure_threads(0)
    keep_freed_memory()
    out = args.out.with_name(args.out.name + "-quick") if args.quick else args.out
    runs = [(f"ou-rho{rho}-lam{ou_lam(rho, args.lam_scale):g}", lambda rho=rho: ou_run(rho, args))
            for rho in RHOS]
    runs.append((f"trajectories-lam{args.trajectory_lam:g}", lambda: trajectory_run(args)))
    args.planning_frames = PlanningFrames(lambda theta: render_angles(theta, args.image_size),
                                          labelled=1500 if args.quick else 3000, pairs=40)
    rows = []
    for key, run in runs:  # one JSON per finished run: an interrupted benchmark resumes
        cached = out / "runs" / f"{key}.json"
        selected = not args.only or key.startswith(tuple(args.only))
        if cached.exists() and not (args.fresh and selected):
            row = json.loads(cached.read_text())
            if "planning" in row:  # runs from before the planning test are run again
                rows.append(row)
                continue
        if not selected:
            continue
        rows.append(run())
        atomic_write_text(cached, json.dumps(rows[-1], indent=2))
    plot_planning(rows, out)
    text = report(rows, args)
    publish(out, rows, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
