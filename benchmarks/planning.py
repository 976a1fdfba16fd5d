"""Planning benchmarks: latency of a plan call against bare predictor passes, and success vs
planning budget with its random floor and true-simulator ceiling.

Latency (the default): CEM and MPPI at 64x10, 128x20 and 300x30 (samples x
iterations, horizon 5), batch 1 and 16 environments, on the default world model's predictor.
The floor, timed in the same run, is the same number of bare ``predictor.step`` calls on
batches of the same size (no sampling, sorting or refitting): goal overhead <= 1.2x. The default
model's 300x30 CEM plan at batch 1 has a goal of <= 150 ms on 2 cores.

Both precisions are timed where bf16 is native (``plan.precision=auto`` then picks bf16).

Success (``--success``): ``plan.py``'s evaluation of given checkpoints at each budget.

    python -m benchmarks.planning                      # latency
    python -m benchmarks.planning --success CKPT ... [--budgets 64x10 128x20] [--episodes 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch

from common.fileio import atomic_write_text
from configs.loader import load_config
from planners import build_planner
from planners.objectives import LatentGoalCost
from worldmodel.utils import configure_threads, native_bf16
from worldmodel.world_model import JEPAWorldModel

OUT = ROOT / "benchmarks" / "results" / "planning"
BUDGETS = ((64, 10), (128, 20), (300, 30))
HORIZON = 5
GOAL_OVERHEAD, GOAL_MS = 1.2, 150.0


def default_model(checkpoint: str | None) -> tuple[JEPAWorldModel, int]:
    """The default config's world model (trained weights when a checkpoint is given)."""
    if checkpoint:
        from worldmodel.checkpoint import load_world_model

        model, meta = load_world_model(checkpoint)
        return model, meta.history
    cfg = load_config("reacher")
    action_dim = 2 * cfg.data.frameskip  # reacher: 2 actuators
    side = cfg.env.image_size
    model = JEPAWorldModel(cfg.model, (side, side, 3), action_dim, cfg.data.history)
    return model.eval(), cfg.data.history


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.inference_mode()
def bare_predictor_ms(model: JEPAWorldModel, history: int, batch: int, samples: int,
                      iterations: int, repeats: int, bf16: bool) -> float:
    """``iterations x HORIZON`` predictor steps on ``batch * samples`` windows: the floor."""
    D, A = model.latent_dim, model.action_dim
    z = torch.randn(batch * samples, history, D)
    a = torch.randn(batch * samples, history, A)

    def run():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for _ in range(iterations * HORIZON):
                model.predictor.step(z, a)
    return _median_ms(run, repeats)


def planner_ms(model: JEPAWorldModel, history: int, name: str, batch: int, samples: int,
               iterations: int, repeats: int, bf16: bool) -> float:
    D, A = model.latent_dim, model.action_dim
    planner = build_planner(name, {"samples": samples, "iterations": iterations,
                                   "elites": max(2, samples // 10), "horizon": HORIZON})
    cost = LatentGoalCost(model, torch.randn(batch, history, D),
                          torch.zeros(batch, history - 1, A), torch.randn(batch, D), bf16=bf16)
    return _median_ms(lambda: planner.plan(cost, batch, A), repeats)


def latency(model: JEPAWorldModel, history: int, repeats: int) -> list[dict]:
    rows = []
    for precision in (["bf16"] if native_bf16("cpu") else []) + ["fp32"]:
        bf16 = precision == "bf16"
        for batch in (1, 16):
            for samples, iterations in BUDGETS:
                reps = max(3, repeats // (batch * samples * iterations // 640 + 1))
                floor = bare_predictor_ms(model, history, batch, samples, iterations, reps, bf16)
                for name in ("cem", "mppi"):
                    ms = planner_ms(model, history, name, batch, samples, iterations, reps, bf16)
                    rows.append({"planner": name, "precision": precision, "batch": batch,
                                 "samples": samples, "iterations": iterations,
                                 "horizon": HORIZON, "plan_ms": ms, "bare_predictor_ms": floor,
                                 "overhead": ms / floor})
                    print(f"{name:<5} {precision} B={batch:<3} {samples:>3}x{iterations:<3} plan "
                          f"{ms:9.1f} ms   bare predictor {floor:9.1f} ms   overhead "
                          f"{ms / floor:5.2f}x", flush=True)
    return rows


def success(config: str, checkpoints: list[str], episodes: int, budgets) -> list[dict]:
    """Closed-loop success of each checkpoint (training seed) at each budget; the floor and
    the true-simulator ceiling come from the first checkpoint's runs (they do not depend on
    the model)."""
    from worldmodel.app import plan

    rows = []
    for samples, iterations in budgets:
        for i, checkpoint in enumerate(checkpoints):
            name = f"{Path(checkpoint).parent.name}-{samples}x{iterations}"
            cfg = load_config(config, [
                f"plan.checkpoint={checkpoint}", f"plan.planner.samples={samples}",
                f"plan.planner.iterations={iterations}", f"plan.planner.elites={samples // 10}",
                f"plan.planner.horizon={HORIZON}", f"plan.eval.episodes={episodes}",
                f"plan.eval.floor={i == 0}", f"plan.eval.ceiling={i == 0}",
                "plan.eval.videos=0", f"plan.out={OUT / 'success' / name}"])
            report, _ = plan.plan(cfg)
            row = {"env": report.env_id, "checkpoint": checkpoint, "samples": samples,
                   "iterations": iterations, "elites": cfg.plan.planner.elites,
                   "horizon": HORIZON, "objective": cfg.plan.eval.objective,
                   "hold": cfg.plan.eval.hold, "episodes": episodes}
            for run_name, run in report.runs():
                if run.skipped is None:
                    row[run_name] = run.success_rate
                    row[f"{run_name}_ci95"] = list(run.success_ci95)
            row["plan_ms_median"] = report.agent.plan_ms_median
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("ci95")}),
                  flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="trained default model (else fresh)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="0: the free cores")
    parser.add_argument("--success", nargs="*", default=None, metavar="CKPT",
                        help="checkpoints (one per training seed) for success vs budget")
    parser.add_argument("--config", default="reacher", help="config of those checkpoints")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--budgets", nargs="*", default=[f"{s}x{i}" for s, i in BUDGETS],
                        help="samples x iterations, e.g. 64x10 128x20")
    args = parser.parse_args(argv)
    threads = configure_threads(args.threads)
    if args.success:
        budgets = [tuple(int(v) for v in b.split("x")) for b in args.budgets]
        rows = success(args.config, args.success, args.episodes, budgets)
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / f"success-{args.config}-{'-'.join(args.budgets)}.json"
        atomic_write_text(path, json.dumps(rows, indent=2))
        return 0
    model, history = default_model(args.checkpoint)
    print(f"predictor {model.cfg.predictor} (hidden {model.cfg.predictor_hidden}, "
          f"{model.cfg.predictor_layers} layers), latent {model.latent_dim}, history {history}, "
          f"{threads} threads")
    rows = latency(model, history, args.repeats)
    worst = max(r["overhead"] for r in rows)
    cem300 = next(r for r in rows if r["planner"] == "cem" and r["batch"] == 1
                  and r["samples"] == 300)  # the first precision: what plan.py uses
    summary = {"threads": threads, "rows": rows, "worst_overhead": worst,
               "goal_overhead": GOAL_OVERHEAD, "cem_300x30_batch1_ms": cem300["plan_ms"],
               "goal_cem_300x30_ms": GOAL_MS, "torch": torch.__version__}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_text(OUT / "latency.json", json.dumps(summary, indent=2))
    print(f"\nworst overhead {worst:.2f}x (goal <= {GOAL_OVERHEAD}x); CEM 300x30 batch 1: "
          f"{cem300['plan_ms']:.0f} ms (goal <= {GOAL_MS:.0f} ms)  -> {OUT / 'latency.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
