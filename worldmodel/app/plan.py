"""Evaluate a world model by planning: ``wml plan [--config NAME|PATH] [key=value ...]``.

``python plan.py`` is the same command.

checkpoint -> env (from the checkpoint's dataset meta) -> planner -> MPC agent -> closed-loop
goal reaching with its random floor and true-simulator ceiling -> ``report.json``, GIFs and a
distance plot. With no arguments it evaluates the checkpoint the default ``train.py`` run wrote.
Settings live under ``plan.`` (``plan.planner.name=mppi``, ``plan.eval.episodes=20``).

Sharded: ``plan.eval.shard=i plan.eval.num_shards=n`` runs every n-th batch of episodes (array
tasks, parallel processes); the last shard to finish merges all into ``report.json``, with
the numbers of a single-process run. ``python plan.py --merge FOLDER`` merges again.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from common.fileio import check_writable, file_sha256
from configs.loader import HOME_VARIABLE, ConfigError, load_config, output_home, print_config
from configs.schema import ExperimentConfig
from envs.dataset import DatasetError
from envs.dataset_meta import package_versions
from envs.meta import ModelMeta
from planners.action_prior import action_prior_for
from planners.evaluate import DatasetGoals, evaluate_closed_loop
from planners.planner_record import PlannerRecord
from planners.protocols import WorldModel
from planners.report import ShardError, merge_shards, write_eval_shard, write_report
from planners.results import EvalReport, RunSummary
from planners.temporal_distance import temporal_distance_for
from worldmodel.app.agents import PRECISIONS, load_agent
from worldmodel.app.cli import config_parser
from worldmodel.utils import configure_threads

log = logging.getLogger("plan")


def checkpoint_path(cfg: ExperimentConfig) -> Path:
    if cfg.plan.checkpoint:
        path = Path(cfg.plan.checkpoint)
        where = f"plan.checkpoint is taken from the current folder, {Path.cwd()}"
    else:
        path = Path(cfg.output_dir) / cfg.name / "model.ckpt"
        where = (f"the default under output_dir; a relative output_dir is taken from "
                 f"{HOME_VARIABLE} or the project folder, here {output_home()}")
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path.resolve()} ({where}); train one first "
                          f"(python train.py"
                          f"{'' if cfg.name == 'reacher' else ' --config ' + cfg.name}) or set "
                          "plan.checkpoint=PATH")
    return path


def cost_heads(cfg: ExperimentConfig, checkpoint: Path, model: WorldModel, meta: ModelMeta,
               device: torch.device) -> dict[str, Any]:
    """The heads on frozen latents ``plan.eval`` asks for, as ``MPCAgent`` arguments: the
    temporal distance (``cost=temporal``) and the action prior (``prior.weight > 0``). Each is
    fitted once per checkpoint and cached beside it."""
    e, heads = cfg.plan.eval, {}
    if e.cost == "temporal":
        heads["distance"] = temporal_distance_for(checkpoint, model, meta, e.temporal, device,
                                                  e.progress)
    if e.prior.weight > 0:
        heads.update(prior=action_prior_for(checkpoint, model, meta, e.prior, device,
                                            e.progress),
                     prior_weight=e.prior.weight, prior_init=e.prior.init)
    return heads


def plan(cfg: ExperimentConfig) -> tuple[EvalReport, Path]:
    """Run the closed-loop evaluation of ``cfg.plan``; returns the report and its path."""
    p = cfg.plan
    if cfg.mode != "pixels":
        raise ConfigError(f"plan.py evaluates pixel world models; this config has "
                          f"mode={cfg.mode} (synthetic-world encoders do not plan)")
    path = checkpoint_path(cfg)
    if p.precision not in PRECISIONS:
        raise ConfigError(f"plan.precision must be auto, bf16 or fp32, got {p.precision!r}")
    loaded = load_agent(path, p.planner.name, p.device, p.precision, p.env_id,
                        cost_heads=partial(cost_heads, cfg, path), trusted_env_ids=(cfg.env.id,),
                        **asdict(p.planner.settings()), replan_every=p.eval.replan_every,
                        objective=p.eval.objective, hold=p.eval.hold)
    dataset = DatasetGoals.from_meta(loaded.meta)  # read only for goal source "dataset"
    out = check_writable(p.out or path.parent / f"plan-{p.planner.name}", "plan.out")
    start = time.perf_counter()
    report = evaluate_closed_loop(loaded.make_env, loaded.agent, p.eval, loaded.goal, dataset)
    agent = loaded.agent
    planner = PlannerRecord.of(
        loaded.planner, loaded.planner_config,
        temporal_distance_fit=asdict(agent.distance.fit) if agent.distance is not None else None,
        action_prior_fit=asdict(agent.prior.fit) if agent.prior is not None else None)
    report = replace(
        report, env_id=loaded.env_config.id, checkpoint=str(path),
        checkpoint_sha256=file_sha256(path), planner=planner, device=str(loaded.device),
        precision="bf16" if loaded.bf16 else "fp32", wall_seconds=time.perf_counter() - start,
        config=OmegaConf.to_container(OmegaConf.structured(cfg.plan)),
        versions=package_versions())
    if p.eval.num_shards == 1:
        return report, _write_safely(report, out)
    shard = write_eval_shard(report, out)
    merged = merge_shards(out, p.eval.num_shards)  # the last shard to finish merges
    if merged is None:
        return report, shard
    return merged, write_report(merged, out)


def _write_safely(report: EvalReport, out: Path) -> Path:
    """``write_report``; if ``out`` fails now (it was writable when the run started), the
    report goes to a fresh temporary folder instead, which the log names."""
    try:
        return write_report(report, out)
    except OSError as err:
        safe = Path(tempfile.mkdtemp(prefix="plan-report-"))
        log.warning("could not write the report to %s (%s); wrote it to %s instead", out,
                    err, safe)
        return write_report(report, safe)


def merge(folder: Path) -> tuple[EvalReport, Path]:
    """``report.json`` of a sharded evaluation from its complete ``shards/`` folder."""
    merged = merge_shards(folder)
    if merged is None:
        done = sorted(p.name for p in (Path(folder) / "shards").glob("shard-*.json"))
        raise ConfigError(f"{folder} is missing shards (found {', '.join(done)}); run the "
                          "missing plan.eval.shard=... tasks, then merge again")
    return merged, write_report(merged, Path(folder))


LABELS = {"agent": "world model", "floor": "random floor", "ceiling": "true-sim ceiling"}


def _line(name: str, run: RunSummary) -> str:
    if run.skipped is not None:
        return f"{name:<17} skipped: {run.skipped}"
    lo, hi = run.success_ci95
    text = (f"{name:<17} success {run.success_rate:6.1%}  (95% CI {lo:.0%}-{hi:.0%}, "
            f"{run.successes}/{run.episodes})  final distance median "
            f"{run.final_distance_median:.3f}")
    if run.plan_ms_median is not None:
        text += f"  plan {run.plan_ms_median:.0f} ms median, {run.plan_ms_p90:.0f} p90"
    if run.solved_at_start:
        unsolved = run.episodes - run.solved_at_start
        text += (f"\n{'':<17} {run.solved_at_start} of {run.episodes} solved at the start; on the "
                 f"other {unsolved}: {run.unsolved_success_rate:.1%} "
                 f"({run.unsolved_successes}/{unsolved})")
    if run.outcomes:
        text += f"\n{'':<17} outcomes: " + ", ".join(f"{k} {n}" for k, n in run.outcomes.items())
    return text


def summary(report: EvalReport, path: Path) -> str:
    """What ``plan.py`` prints: the setting, then one line per run."""
    p, e = report.planner, report.eval_settings
    head = (f"\n{report.env_id}: {report.agent.episodes} episodes ({report.goal_source or 'env'} "
            "goals), budget "
            f"{report.budget_env_steps} steps, {p.name} {p.samples}x{p.iterations} "
            f"(horizon {p.horizon}, {p.model_calls_per_plan} model calls per plan)")
    if report.shard is not None:
        head += (f"\nshard {report.shard.index} of {report.shard.count} "
                 "(the last shard to finish writes the merged report.json)")
    elif report.shards is not None:
        head += f"\nmerged from {report.shards} shards"
    fit = p.temporal_distance_fit
    if fit:
        where = "held-out" if fit["held_out_episodes"] else "in-sample (too few episodes)"
        head += (f"\ncost: learned temporal distance, {where} error "
                 f"{fit['held_out_mae_blocks']:.2f} blocks (always the mean: "
                 f"{fit['mean_label_mae_blocks']:.2f})")
    prior = p.action_prior_fit
    if prior:
        where = "held-out" if prior["held_out_episodes"] else "in-sample (too few episodes)"
        head += (f"\naction prior (weight {e.prior.weight}): {where} R² {prior['held_out_r2']:.3f} of "
                 "the data's action blocks")
    lines = [head, *(_line(LABELS[name], run) for name, run in report.runs())]
    if report.ceiling is not None and report.ceiling.skipped is None and (
            e.ceiling_samples or e.ceiling_iterations):
        lines.append(f"{'':<17} (the ceiling planned with "
                     f"{e.ceiling_samples or p.samples}x{e.ceiling_iterations or p.iterations})")
    lines.append(f"report: {path}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = config_parser(prog, __doc__.splitlines()[0])
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
            if args.print_config:
                print_config(cfg)
                return 0
            configure_threads(cfg.trainer.num_threads)
            result, report = plan(cfg)
    except (ConfigError, ShardError, ValueError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: no report was written; rerun the same command to evaluate "
              "again (fitted heads cached beside the checkpoint are kept)", file=sys.stderr)
        return 130
    print(summary(result, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
