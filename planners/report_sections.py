"""What the pages of a closed-loop evaluation show, as plain strings: tables, setting, protocol.

One table row per run (agent, random floor, true-simulator ceiling), the failure analysis, the
setting in one sentence, the protocol, the planner, the checkpoint, the plan config and package
versions, and each episode GIF's caption; ``planners.report_html`` renders them as
``report.html`` and ``report.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from planners.results import EvalReport, RunSummary

__all__ = ["COLUMNS", "episode_caption", "outcome_table", "page_sections", "run_cells"]

LABELS = {"agent": "world model (agent)", "floor": "random floor",
          "ceiling": "true-sim ceiling"}
COLUMNS = ("run", "success", "95% CI", "successes / episodes", "solved at start",
           "success on unsolved", "final distance (median)", "plan ms (median)")
DASH = "–"
OUTCOME_NOTE = ("Episodes per outcome: solved at start, solved, or where the env says a "
                "failed episode stopped.")
TABLE_NOTE = ("95% CI: Wilson score interval. Solved at start: starts that already met the goal "
              "test; success on unsolved counts the other episodes only.")


def _number(x: float | None, spec: str) -> str:
    return DASH if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def run_cells(name: str, run: RunSummary) -> list[str]:
    """The table row of one run, as plain strings (``COLUMNS``); a skipped run says why."""
    if run.skipped is not None:
        return [LABELS.get(name, name), f"skipped: {run.skipped}"]
    lo, hi = run.success_ci95
    at_start = run.solved_at_start
    unsolved = DASH
    if at_start is not None:
        unsolved = (f"{_number(run.unsolved_success_rate, '.1%')} "
                    f"({run.unsolved_successes}/{run.episodes - at_start})")
    plan = DASH
    if run.plan_ms_median is not None:
        plan = f"{run.plan_ms_median:.0f} (p90 {run.plan_ms_p90:.0f}, {run.plan_calls} calls)"
    return [LABELS.get(name, name), _number(run.success_rate, ".1%"), f"{lo:.0%} – {hi:.0%}",
            f"{run.successes}/{run.episodes}",
            DASH if at_start is None else f"{at_start}/{run.episodes}", unsolved,
            _number(run.final_distance_median, ".3f"), plan]


def outcome_table(report: EvalReport) -> tuple[list[str], list[list[str]]] | None:
    """The failure analysis as a table, where the env classifies its episodes: one row per run,
    one column per outcome (every outcome any run saw, the agent's most frequent first);
    ``None`` when no run has outcomes."""
    runs = [(name, run) for name, run in report.runs()
            if run.skipped is None and run.outcomes]
    if not runs:
        return None
    labels: list[str] = []
    for _, run in runs:
        labels += [k for k in run.outcomes if k not in labels]
    rows = [[LABELS.get(name, name), *(str(run.outcomes.get(k, 0)) for k in labels)]
            for name, run in runs]
    return ["run", *labels], rows


def _setting(report: EvalReport) -> str:
    """One sentence: episodes, goal source, budget, planner, device, time."""
    parts = [f"{report.agent.episodes} episodes",
             f"{report.goal_source or report.goal.source} goals",
             f"budget {report.budget_env_steps} env steps"]
    p = report.planner
    if p is not None:
        parts.append(f"{p.name} {p.samples}×{p.iterations} (horizon {p.horizon}, "
                     f"{p.model_calls_per_plan} model calls per plan)")
    if report.device:
        parts.append(f"{report.device}, {report.precision}")
    if report.wall_seconds is not None:
        parts.append(f"{report.wall_seconds:.1f} s wall")
    if report.shards is not None:
        parts.append(f"merged from {report.shards} shards ({report.process_seconds:.1f} s "
                     "summed)")
    if report.shard is not None:
        parts.append(f"shard {report.shard.index} of {report.shard.count}")
    return " · ".join(parts)


def _protocol(report: EvalReport) -> list[tuple[str, str]]:
    """The goal test and budget; ``plan.eval`` values where set, else the env's goal spec."""
    g, evalcfg = report.goal, (report.config or {}).get("eval") or {}
    source = report.goal_source or evalcfg.get("goal_source") or g.source
    rows = [("goal source", source),
            ("goal state entries", ", ".join(map(str, g.indices))),
            ("success", f"{g.norm} distance < {g.tolerance:g}"
                        + (" (angles wrap)" if any(g.angular) else ""))]
    if source in ("policy", "dataset"):
        offset = evalcfg.get("goal_offset") or g.goal_offset
        rows.append(("goal offset", f"{offset} control steps"))
    rows.append(("budget", f"{report.budget_env_steps} env steps"))
    if "replan_every" in evalcfg:
        every = evalcfg["replan_every"]
        steps = "control step" if every == 1 else f"{every} control steps"
        rows.append(("replanning", f"every {steps}, objective {evalcfg.get('objective')}"))
    if report.ceiling is not None and report.ceiling.skipped is None and (
            evalcfg.get("ceiling_samples") or evalcfg.get("ceiling_iterations")):
        p = report.planner
        samples = evalcfg.get("ceiling_samples") or (p.samples if p else None)
        iterations = evalcfg.get("ceiling_iterations") or (p.iterations if p else None)
        rows.append(("ceiling planner", f"{samples}×{iterations}"))
    return rows


def _flatten(config: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``plan.eval.budget``-style dotted keys of a nested config, in its order; values as in
    an override (``null``, ``true``)."""
    out = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value if isinstance(value, str) else json.dumps(value)))
    return out


def episode_caption(report: EvalReport, video: Path) -> tuple[str, bool | None]:
    """Which episode a GIF shows (its name carries the seed) and, if the report knows, how it
    ended: the caption and the success (None when unknown)."""
    seed = int(video.stem.rsplit("-", 1)[-1]) if video.stem[-1:].isdigit() else None
    rows = {row.seed: row for row in report.agent.rows}
    if seed not in rows:
        return video.name, None
    row = rows[seed]
    where = f"episode {report.seeds.index(seed)} (seed {seed})" if seed in report.seeds else (
        f"seed {seed}")
    if row.success:
        end = f"reached the goal in {row.steps} steps"
    else:
        end = f"not reached: final distance {row.final_distance:.3f}"
        if row.outcome:
            end += f" ({row.outcome})"
    return f"{where}: {'success' if row.success else 'failure'}, {end}", row.success


def page_sections(report: EvalReport) -> dict[str, Any]:
    """What both pages show, as plain strings."""
    return {
        "title": f"Closed-loop evaluation: {report.env_id or 'unknown env'}",
        "setting": _setting(report),
        "protocol": _protocol(report),
        "runs": [run_cells(name, run) for name, run in report.runs()],
        "outcomes": outcome_table(report),
        "planner": [(k, str(v)) for k, v in
                    (report.planner.to_dict() if report.planner else {}).items()],
        "model": [("checkpoint", report.checkpoint or DASH),
                  ("sha256", report.checkpoint_sha256 or DASH)],
        "config": _flatten(report.config or {}, "plan."),
        "versions": sorted((report.versions or {}).items()),
    }
