"""Typed evaluation results: report.json's layout, old reports, plan-time summaries."""

import json

import numpy as np
import pytest

from envs.goals import GoalSpec
from planners.results import EpisodeRow, EvalReport, RunSummary

GOAL = {"indices": [0, 1], "tolerance": 0.05, "angular": [True, True], "norm": "max",
        "source": "policy", "goal_offset": 25, "budget": 50, "sample_low": None,
        "sample_high": None}


def _row(seed, success, plan_ms):
    return {"seed": seed, "success": success, "steps": 2 if success else 3,
            "final_distance": 0.01 if success else 0.4, "min_distance": 0.01 if success else 0.3,
            "distance": [0.5, 0.2, 0.01] if success else [0.5, 0.3, 0.35, 0.4],
            "plan_ms": plan_ms}


# report.json as plan.py wrote it before the typed results: batches of 2 envs, so the plan
# times of episodes 0-1 sit on row 0 and those of episode 2 on row 2; no ceiling possible
OLD_REPORT = {
    "goal": GOAL, "budget_env_steps": 3, "seeds": [0, 1, 2],
    "agent": {"episodes": 3, "successes": 2, "success_rate": 2 / 3,
              "success_ci95": [0.2076596593, 0.9385081484], "final_distance_mean": 0.14,
              "final_distance_median": 0.01, "steps_mean": 7 / 3, "plan_ms_median": 12.0,
              "plan_ms_p90": 26.0, "plan_calls": 5,
              "rows": [_row(0, True, [10.0, 12.0, 30.0]), _row(1, True, []),
                       _row(2, False, [11.0, 20.0])]},
    "floor": {"episodes": 3, "successes": 0, "success_rate": 0.0,
              "success_ci95": [0.0, 0.5614970317], "final_distance_mean": 0.4,
              "final_distance_median": 0.4, "steps_mean": 3.0,
              "rows": [_row(0, False, []), _row(1, False, []), _row(2, False, [])]},
    "ceiling": {"skipped": "my-env cannot be simulated from a snapshot"},
    "env_id": "wm/reacher-v0", "checkpoint": "outputs/reacher/model.ckpt",
    "checkpoint_sha256": "ab" * 32,
    "planner": {"samples": 16, "iterations": 2, "elites": 4, "horizon": 3, "name": "cem",
                "model_calls_per_plan": 96},
    "device": "cpu", "precision": "fp32", "wall_seconds": 3.5,
    "config": {"checkpoint": None, "eval": {"episodes": 3, "num_envs": 2, "shard": 0}},
    "versions": {"python": "3.11.9", "torch": "2.5.1"},
}


def test_an_old_report_reads_into_typed_results_and_writes_back_unchanged():
    report = EvalReport.from_dict(json.loads(json.dumps(OLD_REPORT)))
    assert report.goal == GoalSpec(indices=(0, 1), tolerance=0.05, angular=(True, True))
    assert [name for name, _ in report.runs()] == ["agent", "floor", "ceiling"]
    assert report.agent.rows[0] == EpisodeRow(0, True, 2, 0.01, 0.01, [0.5, 0.2, 0.01],
                                              [10.0, 12.0, 30.0])
    assert report.floor.plan_calls is None and report.ceiling.skipped.startswith("my-env")
    assert report.shard is None and report.shards is None
    assert report.planner.name == "cem" and report.planner.model_calls_per_plan == 96
    assert report.eval_settings.num_envs == 2 and report.eval_settings.videos == 2  # a default
    # same fields, same values, same order of keys; the planner record is completed with the
    # settings the old report did not list, at their defaults (the code then had no others)
    written = report.to_dict()
    assert written["planner"] == {**written["planner"], **OLD_REPORT["planner"]}
    assert written["planner"]["noise_beta"] == 0.0
    assert json.dumps({**written, "planner": None}) == json.dumps({**OLD_REPORT, "planner": None})


def test_summaries_count_each_plan_call_of_a_batch_once():
    report = EvalReport.from_dict(OLD_REPORT)
    again = RunSummary.from_rows(report.agent.rows)
    assert again.plan_calls == 5 and again.plan_ms_median == 12.0 and again.plan_ms_p90 == 26.0
    for key in ("episodes", "successes", "success_rate", "final_distance_mean",
                "final_distance_median", "steps_mean"):
        assert getattr(again, key) == pytest.approx(getattr(report.agent, key)), key
    assert again.success_ci95 == pytest.approx(report.agent.success_ci95)
    untimed = RunSummary.from_rows(report.floor.rows)
    assert untimed.plan_calls is None and "plan_ms_median" not in untimed.to_dict()


def test_a_merged_old_report_reads_back():
    merged = {k: v for k, v in OLD_REPORT.items() if k not in ("agent", "floor", "ceiling",
                                                               "seeds")}
    merged.update(seeds=[0, 1, 2], agent=OLD_REPORT["agent"], floor=OLD_REPORT["floor"],
                  ceiling=OLD_REPORT["ceiling"], process_seconds=6.0, shards=2)
    report = EvalReport.from_dict(merged)
    assert report.shards == 2 and report.process_seconds == 6.0
    assert {**report.to_dict(), "planner": None} == {**merged, "planner": None}


def test_frames_stay_in_memory_and_unknown_keys_are_refused():
    frame = np.zeros((4, 4, 3), np.uint8)
    row = EpisodeRow(3, False, 1, 0.2, 0.1, [0.1, 0.2], [], frames=[frame], goal_frame=frame)
    assert set(row.to_dict()) == {"seed", "success", "steps", "final_distance",
                                  "min_distance", "distance", "plan_ms"}
    assert EpisodeRow.from_dict(row.to_dict()) == row  # frames are not compared
    shard = {**OLD_REPORT, "shard": {"index": 1, "count": 2, "episodes": [2]}}
    assert EvalReport.from_dict(shard).shard.episodes == [2]
    assert list(EvalReport.from_dict(shard).to_dict())[:5] == [
        "goal", "budget_env_steps", "seeds", "shard", "agent"]
    with pytest.raises(ValueError, match=r"unknown report keys \['agnet'\]"):
        EvalReport.from_dict({**OLD_REPORT, "agnet": {}})
    with pytest.raises(ValueError, match="unknown episode row keys"):
        EpisodeRow.from_dict({**row.to_dict(), "frames": []})
