"""Typed results of a closed-loop evaluation: episode rows, run summaries, the whole report.

``report.json`` (and each shard file) is ``EvalReport.to_dict()``, frames left out;
``EvalReport.from_dict`` reads it back, reports written before these classes included (the
fields and their layout are unchanged).

Planning times: one plan call serves every episode of a batch (the ``num_envs`` environments
planned together), so a batch's plan times are stored once, on its first row, and its other
rows hold ``[]``. A summary pools the rows' lists, which counts every plan call once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from envs.goals import GoalSpec
from planners.eval_config import ClosedLoopConfig
from planners.planner_record import PlannerRecord

__all__ = ["RUNS", "EpisodeRow", "EvalReport", "RunSummary", "ShardInfo", "wilson_interval"]

RUNS = ("agent", "floor", "ceiling")


def _check_keys(d: dict[str, Any], known: set[str], what: str) -> None:
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {what} keys {sorted(unknown)}; known: {sorted(known)}")


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, round(centre + half, 12)))


@dataclass
class EpisodeRow:
    """One episode of one run.

    Attributes:
        seed: the episode's seed (``plan.eval.seed + i``): its ``reset`` seed for policy and
            sampler goals, the seed of its random streams for every source (a dataset pair
            resets with its dataset episode's seed; ``EvalReport.pairs`` names the episode).
        success: the goal-coordinate distance fell under the tolerance within the budget.
        steps: env steps to success, else to the env ending the episode, else the budget.
        final_distance, min_distance: the distance at the end, and the least one.
        distance: the distance at the start and after every step (rounded to 1e-5).
        plan_ms: the plan calls of this episode's batch in ms, on the batch's first row only
            (see the module docstring); ``[]`` on the others and for runs without a planner.
        frames: the ``uint8 (H, W, 3)`` frames of a recorded episode, else None (in memory only).
        goal_frame: ``uint8 (H, W, 3)`` (in memory only).
        outcome: how the episode ended, for envs that classify their episodes
            (``PixelEnv.episode_outcome``: "solved", "solved at start", or where a failed one
            stopped, e.g. "never reached the cube"); None for the others (left out of JSON).
    """

    seed: int
    success: bool
    steps: int
    final_distance: float
    min_distance: float
    distance: list[float]
    plan_ms: list[float] = field(default_factory=list)
    frames: list[np.ndarray] | None = field(default=None, repr=False, compare=False)
    goal_frame: np.ndarray | None = field(default=None, repr=False, compare=False)
    outcome: str | None = None

    _SAVED = ("seed", "success", "steps", "final_distance", "min_distance", "distance",
              "plan_ms", "outcome")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, without the frames (and without ``outcome`` when there is none)."""
        return {k: list(getattr(self, k)) if k in ("distance", "plan_ms") else getattr(self, k)
                for k in self._SAVED if k != "outcome" or self.outcome is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpisodeRow:
        _check_keys(d, set(cls._SAVED), "episode row")
        return cls(**{**d, "distance": list(d["distance"]), "plan_ms": list(d.get("plan_ms", []))})


@dataclass
class RunSummary:
    """One run (agent, random floor or true-simulator ceiling) over its episodes: success with
    its 95% Wilson interval, distances, steps, planning times and the rows themselves.

    ``skipped`` is why a run could not happen (a ceiling on an env that cannot be simulated);
    such a summary has no episodes and is written as ``{"skipped": reason}``.

    ``solved_at_start``: episodes whose start already met the goal test (success at step 0);
    ``unsolved_successes`` / ``unsolved_success_rate``: success over the others only (NaN when
    every start was solved). Reports written before these existed read them as None.
    ``outcomes``: episodes per ``EpisodeRow.outcome`` (the failure analysis), most frequent
    first; None when the env does not classify its episodes.
    """

    episodes: int
    successes: int
    success_rate: float
    success_ci95: tuple[float, float]
    final_distance_mean: float
    final_distance_median: float
    steps_mean: float
    plan_ms_median: float | None = None
    plan_ms_p90: float | None = None
    plan_calls: int | None = None
    rows: list[EpisodeRow] = field(default_factory=list)
    skipped: str | None = None
    solved_at_start: int | None = None
    unsolved_successes: int | None = None
    unsolved_success_rate: float | None = None
    outcomes: dict[str, int] | None = None

    @classmethod
    def from_rows(cls, rows: list[EpisodeRow]) -> RunSummary:
        """The summary of ``rows``; plan times pooled over them (each call counted once)."""
        n, k = len(rows), sum(r.success for r in rows)
        plan_ms = np.concatenate([r.plan_ms for r in rows]) if rows else np.zeros(0)
        final = np.array([r.final_distance for r in rows])
        timed = plan_ms.size > 0
        at_start = sum(r.success and r.steps == 0 for r in rows)
        labels = [r.outcome for r in rows if r.outcome is not None]
        outcomes = ({k: labels.count(k) for k in sorted(set(labels), key=lambda k: (
            -labels.count(k), k))} if labels else None)
        return cls(n, k, k / n if n else float("nan"), wilson_interval(k, n),
                   float(final.mean()), float(np.median(final)),
                   float(np.mean([r.steps for r in rows])),
                   float(np.median(plan_ms)) if timed else None,
                   float(np.percentile(plan_ms, 90)) if timed else None,
                   int(plan_ms.size) if timed else None, list(rows),
                   solved_at_start=at_start, unsolved_successes=k - at_start,
                   unsolved_success_rate=(k - at_start) / (n - at_start) if n > at_start
                   else float("nan"), outcomes=outcomes)

    @classmethod
    def skip(cls, reason: str) -> RunSummary:
        """A run that could not happen, and why."""
        nan = float("nan")
        return cls(0, 0, nan, (0.0, 1.0), nan, nan, nan, skipped=reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the numbers (plan times when timed), then the rows without frames."""
        if self.skipped is not None:
            return {"skipped": self.skipped}
        out: dict[str, Any] = {
            "episodes": self.episodes, "successes": self.successes,
            "success_rate": self.success_rate, "success_ci95": list(self.success_ci95),
            "final_distance_mean": self.final_distance_mean,
            "final_distance_median": self.final_distance_median, "steps_mean": self.steps_mean}
        if self.plan_calls is not None:
            out.update(plan_ms_median=self.plan_ms_median, plan_ms_p90=self.plan_ms_p90,
                       plan_calls=self.plan_calls)
        if self.solved_at_start is not None:
            out.update(solved_at_start=self.solved_at_start,
                       unsolved_successes=self.unsolved_successes,
                       unsolved_success_rate=self.unsolved_success_rate)
        if self.outcomes is not None:
            out["outcomes"] = dict(self.outcomes)
        out["rows"] = [row.to_dict() for row in self.rows]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSummary:
        if "skipped" in d:
            _check_keys(d, {"skipped"}, "skipped run")
            return cls.skip(d["skipped"])
        _check_keys(d, {f.name for f in fields(cls)} - {"skipped"}, "run summary")
        rows = [EpisodeRow.from_dict(r) for r in d.get("rows", [])]
        lo, hi = d["success_ci95"]
        return cls(**{**d, "success_ci95": (lo, hi), "rows": rows})


@dataclass
class ShardInfo:
    """Which part of a sharded evaluation a result is: shard ``index`` of ``count``, and the
    episode indices it ran."""

    index: int
    count: int
    episodes: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "episodes": list(self.episodes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardInfo:
        _check_keys(d, {"index", "count", "episodes"}, "shard")
        return cls(d["index"], d["count"], list(d["episodes"]))


@dataclass
class EvalReport:
    """A closed-loop evaluation (``report.json``): the protocol, the runs on the same pairs and,
    as ``plan.py`` fills them in, where the model came from and how it was planned.

    Attributes:
        goal, budget_env_steps, seeds: the env's goal spec, env steps per episode, the seeds.
        agent, floor, ceiling: the runs (``floor``/``ceiling`` None when not asked for).
        shard: this shard of a sharded evaluation, else None.
        env_id ... versions: added by ``plan.py`` (None until then): the env, the checkpoint
            path and SHA-256, the planner settings (and ``model_calls_per_plan``), the device,
            ``bf16``/``fp32``, wall time, the plan config and package versions.
        shards, process_seconds: a merge's shard count and the shards' summed wall time.
        goal_source: where starts and goals came from (``planners.goal_sources``).
        pairs: per episode, where its pair came from (dataset episode and frame, or task),
            when the source says.
    """

    goal: GoalSpec
    budget_env_steps: int
    seeds: list[int]
    agent: RunSummary
    floor: RunSummary | None = None
    ceiling: RunSummary | None = None
    shard: ShardInfo | None = None
    env_id: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    planner: PlannerRecord | None = None
    device: str | None = None
    precision: str | None = None
    wall_seconds: float | None = None
    config: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    shards: int | None = None
    process_seconds: float | None = None
    goal_source: str | None = None
    pairs: list[dict[str, Any] | None] | None = None

    def runs(self) -> list[tuple[str, RunSummary]]:
        """``(name, summary)`` of the runs present, in ``RUNS`` order."""
        return [(name, getattr(self, name)) for name in RUNS if getattr(self, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``report.json``'s layout); fields that are None are left out."""
        order = ["goal", "budget_env_steps", "seeds", "shard", *RUNS]
        order += [f.name for f in fields(self) if f.name not in order]
        out: dict[str, Any] = {}
        for name in order:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.to_dict() if hasattr(value, "to_dict") else value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        """Read ``report.json`` or a shard file (``json.load``'s dict)."""
        _check_keys(d, {f.name for f in fields(cls)}, "report")
        parsed = {**d, "goal": GoalSpec.from_dict(d["goal"]), "seeds": list(d["seeds"])}
        for name in RUNS:
            if d.get(name) is not None:
                parsed[name] = RunSummary.from_dict(d[name])
        if d.get("shard") is not None:
            parsed["shard"] = ShardInfo.from_dict(d["shard"])
        if d.get("planner") is not None:
            parsed["planner"] = PlannerRecord.from_dict(d["planner"])
        return cls(**parsed)

    @property
    def eval_settings(self) -> ClosedLoopConfig | None:
        """The evaluation settings ``plan.py`` ran with (``config["eval"]``), typed; None for a
        report written without a config."""
        section = (self.config or {}).get("eval")
        return ClosedLoopConfig.from_dict(section) if section is not None else None
