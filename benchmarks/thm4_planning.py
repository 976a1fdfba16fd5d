"""Theorem 4 on the learned, action-conditioned world model: does latent planning cost what
planning on the true simulator costs, and does it get there as the latent gets identifiable?

One training run of a pixel config (``reacher`` by default, or ``point_mass``) keeps
checkpoints at a few steps; at each, the held-out state probe (R² of the positions, the
orthogonality and Procrustes errors of SCIENCE.md section 3) is measured. Every checkpoint then
plans closed-loop on the same start/goal pairs (``plan.eval`` of the config), and so does the
same CEM on the true simulator with the true-state cost (the ceiling, planned once: it does not
depend on the model). Per pair, the control cost in **true** coordinates of the executed
episode is ``J = sum_t d_t^2``, ``d_t`` the goal-coordinate distance at the start and after each
step (to success or the budget; the goal's norm). The table gives ``J(latent plan) / J(true-sim plan)`` (ideal 1)
per checkpoint, median and IQR over the pairs not solved at the start, next to the probe.

    python -m benchmarks.thm4_planning [--config reacher|point_mass] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

import lightning as L
import numpy as np

from benchmarks import publish
from callbacks.state_probe import angle_orders, is_velocity, state_probe
from configs.loader import load_config
from envs.collect import ensure_dataset
from planners.evaluate import DatasetGoals, evaluate_closed_loop
from worldmodel.app import train
from worldmodel.app.agents import load_agent
from worldmodel.utils import configure_threads

OUT = ROOT / "benchmarks" / "results" / "thm4"


class CheckpointAt(L.Callback):
    """A checkpoint and the held-out state probe after each of the given optimiser steps."""

    def __init__(self, steps: list[int], folder: Path) -> None:
        self.steps, self.folder = sorted(set(steps)), folder
        self.saved: dict[int, dict[str, Any]] = {}

    def setup(self, trainer, module, stage) -> None:
        meta = trainer.datamodule.model_meta
        self.names, self.angular = meta.state_names, angle_orders(meta)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step not in self.steps or step in self.saved or not trainer.is_global_zero:
            return
        path = self.folder / f"step-{step:06d}.ckpt"
        trainer.save_checkpoint(path, weights_only=False)
        data = trainer.datamodule
        probe = state_probe(module.world_model, data.probe_dataloader("train"),
                            data.probe_dataloader("val"), self.names, self.angular)
        self.saved[step] = {"checkpoint": str(path),
                            **{k: v for k, v in probe.items() if isinstance(v, float)}}


def episode_cost(distance: list[float]) -> float:
    """``J = sum_t d_t^2`` over an episode's goal distances from the start to its last step
    (the sum includes the start, as the paper's planning cost does)."""
    return float(np.sum(np.square(distance)))


def cost_ratios(agent_rows, ceiling_rows, tolerance: float) -> tuple[list[float], int]:
    """``J(agent) / J(ceiling)`` per pair not solved at the start (rows matched by seed), and
    the number of pairs solved at the start (left out)."""
    ceiling = {r.seed: r for r in ceiling_rows}
    ratios, at_start = [], 0
    for row in agent_rows:
        if row.distance[0] <= tolerance:
            at_start += 1
            continue
        ratios.append(episode_cost(row.distance) / max(episode_cost(ceiling[row.seed].distance),
                                                      1e-12))
    return ratios, at_start


def _probe_positions(probe: dict[str, Any]) -> float:
    entries = [v for k, v in probe.items() if k.startswith("probe/r2_")
               and not is_velocity(k.removeprefix("probe/r2_"))]
    return float(np.mean(entries)) if entries else float("nan")


def run(config: str, steps: list[int], episodes: int, overrides: list[str], out: Path
        ) -> list[dict[str, Any]]:
    """Train once keeping checkpoints at ``steps``, then plan with each (runs and checkpoints
    under ``outputs/benchmarks/``; the dataset is the config's default one in ``outputs/``)."""
    default = load_config(config, overrides)
    dataset = ensure_dataset(train.dataset_path(default), default.env, default.collect)
    runs = ROOT / "outputs" / "benchmarks" / f"thm4-{out.name}"
    cfg = load_config(config, [*overrides, f"output_dir={runs}", f"data.path={dataset}",
                               "trainer.resume=false"])
    keeper = CheckpointAt(steps, runs / cfg.name / "snapshots")
    keeper.folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train.train(cfg, extra_callbacks=[keeper])
    train_s = time.perf_counter() - start
    p = cfg.plan
    protocol = replace(p.eval, episodes=episodes, floor=False, videos=0, progress=False)
    rows, ceiling = [], None
    for step, saved in sorted(keeper.saved.items()):
        loaded = load_agent(saved["checkpoint"], p.planner.name, "cpu", p.precision, None,
                            **asdict(p.planner.settings()), replan_every=protocol.replan_every,
                            objective=protocol.objective, hold=protocol.hold)
        t0 = time.perf_counter()
        report = evaluate_closed_loop(loaded.make_env, loaded.agent,
                                      replace(protocol, ceiling=ceiling is None), loaded.goal,
                                      DatasetGoals.from_meta(loaded.meta))
        ceiling = ceiling or report.ceiling
        ratios, at_start = cost_ratios(report.agent.rows, ceiling.rows, report.goal.tolerance)
        q1, median, q3 = np.percentile(ratios, [25, 50, 75])
        rows.append({"step": step, "r2_positions": _probe_positions(saved),
                     "orthogonality_error": saved["probe/orthogonality_error"],
                     "procrustes_error": saved["probe/procrustes_error"],
                     "scaled_orthogonality_error": saved.get("probe/scaled_orthogonality_error"),
                     "agent_success": report.agent.success_rate,
                     "ceiling_success": ceiling.success_rate,
                     "cost_ratio_median": float(median), "cost_ratio_iqr": [float(q1), float(q3)],
                     "cost_ratio_mean": float(np.mean(ratios)), "pairs": len(ratios),
                     "solved_at_start": at_start, "plan_seconds": time.perf_counter() - t0,
                     "env": loaded.env_config.id, "dataset": str(dataset),
                     "agent_distances": {r.seed: r.distance for r in report.agent.rows},
                     "ceiling_distances": {r.seed: r.distance for r in ceiling.rows}})
        print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith('distances')}),
              flush=True)
    rows[0]["train_seconds"] = train_s
    return rows


def report_md(rows: list[dict[str, Any]], config: str, command: str) -> str:
    lines = [f"# Theorem 4 on the learned world model: {rows[0]['env']} (`--config {config}`)",
             "", f"`{command}`", "",
             ("Per checkpoint of one training run: the held-out probe, closed-loop success, and "
              "J(latent plan) / J(true-sim plan) with J = sum_t d_t^2 in true coordinates "
              f"(ideal 1), over the {rows[0]['pairs']} pairs not solved at the start "
              f"({rows[0]['solved_at_start']} were). The true-sim ceiling (same CEM, true "
              f"state cost) succeeds on {rows[0]['ceiling_success']:.0%}."), "",
             ("Orthogonality error: fit of the latent on the standardised state (all entries); "
              "scale-free: the same on the entries a frame shows, with A divided by its RMS "
              "singular value (0 for any scaled rotation; – where not measured)."), "",
             ("| step | probe R² (positions) | orthogonality error | scale-free, positions | "
              "Procrustes error | success | J ratio median (IQR) | J ratio mean |"),
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        scaled = r.get("scaled_orthogonality_error")
        lines.append(f"| {r['step']} | {r['r2_positions']:.3f} | {r['orthogonality_error']:.3f} "
                     f"| {'–' if scaled is None else f'{scaled:.3f}'} "
                     f"| {r['procrustes_error']:.3f} | {r['agent_success']:.0%} | "
                     f"{r['cost_ratio_median']:.2f} ({r['cost_ratio_iqr'][0]:.2f}-"
                     f"{r['cost_ratio_iqr'][1]:.2f}) | {r['cost_ratio_mean']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="reacher", help="a pixel config (reacher, point_mass)")
    p.add_argument("--quick", action="store_true", help="300 steps, 10 episodes, CEM 64x5")
    p.add_argument("--episodes", type=int, default=None)
    p.add_argument("--steps", type=int, nargs="*", default=None,
                   help="checkpoint steps (default: 4 spread over the run, and its last)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = p.parse_args(argv)
    configure_threads(0)
    overrides = list(args.overrides)
    if args.quick:
        overrides = ["trainer.max_steps=300", "plan.planner.samples=64",
                     "plan.planner.iterations=5", "plan.planner.elites=8", *overrides]
    cfg = load_config(args.config, overrides)
    total = cfg.trainer.max_steps
    steps = args.steps or sorted({max(total // 30, 1), max(total // 10, 1), total // 3,
                                  total * 2 // 3, total})
    episodes = args.episodes or (10 if args.quick else 30)
    out = args.out or OUT / (f"{args.config}-quick" if args.quick else args.config)
    rows = run(args.config, steps, episodes, overrides, out)
    command = " ".join(["python -m benchmarks.thm4_planning", *(argv or sys.argv[1:])])
    text = report_md(rows, args.config, command)
    publish(out, rows, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
