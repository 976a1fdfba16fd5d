"""Evaluate a world model by planning: ``python plan.py [--config NAME|PATH] [key=value ...]``.

checkpoint -> env (from the checkpoint's dataset meta) -> planner -> MPC agent -> closed-loop
goal reaching with its random floor and true-simulator ceiling -> ``report.json``, GIFs and a
distance plot. With no arguments it evaluates the checkpoint the default ``train.py`` run wrote.
Settings live under ``plan.`` (``plan.planner.name=mppi``, ``plan.eval.episodes=20``).

Sharded: ``plan.eval.shard=i plan.eval.num_shards=n`` runs every n-th batch of episodes (array
tasks, parallel processes); the last shard to finish merges all into ``report.json``, with
the numbers of a single-process run. ``python plan.py --merge FOLDER`` merges again.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import OmegaConf

from configs.loader import ConfigError, load_config
from configs.schema import ExperimentConfig
from envs.collect import EnvConfig, make_env, package_versions
from envs.goals import GoalSpec
from planners import build_planner
from planners.agent import MPCAgent
from planners.evaluate import evaluate_closed_loop
from planners.objectives import fast_bf16
from planners.report import ShardError, merge_shards, write_report, write_shard
from worldmodel.utils import configure_threads
from worldmodel.world_module import WorldModelModule

log = logging.getLogger("plan")


def checkpoint_path(cfg: ExperimentConfig) -> Path:
    path = Path(cfg.plan.checkpoint or Path(cfg.output_dir) / cfg.name / "model.ckpt")
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}; train one first (python train.py"
                          f"{'' if cfg.name == 'reacher' else ' --config ' + cfg.name}) or set "
                          "plan.checkpoint=PATH")
    return path


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def plan(cfg: ExperimentConfig) -> tuple[dict, Path]:
    """Run the closed-loop evaluation of ``cfg.plan``; returns the result and report path."""
    p = cfg.plan
    path = checkpoint_path(cfg)
    device = _device(p.device)
    module = WorldModelModule.load_from_checkpoint(path, map_location=device, weights_only=True)
    model = module.world_model.eval()
    meta = module.hparams["data_meta"]
    env_cfg = EnvConfig(**{**meta["env"], "id": p.env_id or meta["env"]["id"]})
    goal = GoalSpec.from_dict(meta["goal"]) if meta.get("goal") else None
    if p.precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"plan.precision must be auto, bf16 or fp32, got {p.precision!r}")
    bf16 = p.precision == "bf16" or (p.precision == "auto" and fast_bf16(device))
    planner = build_planner(p.planner.name, p.planner.settings())
    agent = MPCAgent(model, planner, history=meta.get("history", 1),
                     frameskip=meta.get("frameskip", 1), replan_every=p.eval.replan_every,
                     objective=p.eval.objective, bf16=bf16, hold=p.eval.hold)
    start = time.perf_counter()
    result = evaluate_closed_loop(lambda: make_env(env_cfg), agent, p.eval,
                                  goal if p.env_id is None else None)
    result.update({
        "env_id": env_cfg.id, "checkpoint": str(path), "checkpoint_sha256": _sha256(path),
        "planner": {**asdict(p.planner), "model_calls_per_plan": p.planner.model_calls},
        "device": str(device), "precision": "bf16" if bf16 else "fp32",
        "wall_seconds": time.perf_counter() - start,
        "config": OmegaConf.to_container(OmegaConf.structured(cfg.plan)),
        "versions": package_versions()})
    out = Path(p.out or path.parent / f"plan-{p.planner.name}")
    if p.eval.num_shards == 1:
        return result, write_report(result, out)
    shard = write_shard(result, out)
    merged = merge_shards(out, p.eval.num_shards)  # the last shard to finish merges
    if merged is None:
        return result, shard
    return merged, write_report(merged, out)


def merge(folder: Path) -> tuple[dict, Path]:
    """``report.json`` of a sharded evaluation from its complete ``shards/`` folder."""
    merged = merge_shards(folder)
    if merged is None:
        done = sorted(p.name for p in (Path(folder) / "shards").glob("shard-*.json"))
        raise ConfigError(f"{folder} is missing shards (found {', '.join(done)}); run the "
                          "missing plan.eval.shard=... tasks, then merge again")
    return merged, write_report(merged, Path(folder))


def _line(name: str, run: dict) -> str:
    lo, hi = run["success_ci95"]
    text = (f"{name:<17} success {run['success_rate']:6.1%}  (95% CI {lo:.0%}-{hi:.0%}, "
            f"{run['successes']}/{run['episodes']})  final distance median "
            f"{run['final_distance_median']:.3f}")
    if "plan_ms_median" in run:
        text += f"  plan {run['plan_ms_median']:.0f} ms median, {run['plan_ms_p90']:.0f} p90"
    return text


def summary(result: dict, report: Path) -> str:
    p = result["planner"]
    head = (f"\n{result['env_id']}: {result['agent']['episodes']} episodes, budget "
            f"{result['budget_env_steps']} steps, {p['name']} {p['samples']}x{p['iterations']} "
            f"(horizon {p['horizon']}, {p['model_calls_per_plan']} model calls per plan)")
    if "shard" in result:
        head += (f"\nshard {result['shard']['index']} of {result['shard']['count']} "
                 "(the last shard to finish writes the merged report.json)")
    elif "shards" in result:
        head += f"\nmerged from {result['shards']} shards"
    lines = [head, _line("world model", result["agent"])]
    if "floor" in result:
        lines.append(_line("random floor", result["floor"]))
    ceiling = result.get("ceiling")
    if ceiling:
        lines.append(_line("true-sim ceiling", ceiling) if "skipped" not in ceiling
                     else f"true-sim ceiling  skipped: {ceiling['skipped']}")
    lines.append(f"report: {report}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="name in configs/ or a YAML path")
    parser.add_argument("--checkpoint", default=None, help="same as plan.checkpoint=PATH")
    parser.add_argument("--merge", default=None, metavar="FOLDER",
                        help="merge the shards of a sharded evaluation in FOLDER into report.json")
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. plan.planner.name=mppi")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    overrides = list(args.overrides) + ([f"plan.checkpoint={args.checkpoint}"]
                                        if args.checkpoint else [])
    try:
        if args.merge:
            result, report = merge(Path(args.merge))
        else:
            cfg = load_config(args.config, overrides)
            configure_threads(cfg.trainer.num_threads)
            result, report = plan(cfg)
    except (ConfigError, ShardError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(result, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
