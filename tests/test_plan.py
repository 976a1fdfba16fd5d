"""End to end: collect -> train a few steps -> checkpoint -> plan.py -> report.json."""

import json
import math

from test_train_pixels import TINY

import plan
import train
from configs.loader import load_config

PLAN = ["plan.eval.episodes=2", "plan.eval.num_envs=2", "plan.eval.budget=6",
        "plan.eval.goal_offset=4", "plan.eval.videos=1", "plan.eval.progress=false",
        "plan.planner.samples=16", "plan.planner.elites=4", "plan.planner.iterations=2",
        "plan.planner.horizon=3"]


def test_plan_py_writes_a_report_with_floor_and_ceiling(tiny_dataset, tmp_path, capsys):
    overrides = [*TINY, f"output_dir={tmp_path}", f"data.path={tiny_dataset}",
                 "env.image_size=32"]
    result = train.train(load_config("reacher", overrides))
    assert plan.main(["--config", "reacher", *overrides, *PLAN]) == 0
    out = capsys.readouterr().out
    assert "random floor" in out and "true-sim ceiling" in out
    folder = result.run_dir / "plan-cem"
    report = json.loads((folder / "report.json").read_text())
    assert report["env_id"] == "wm/reacher-v0" and report["seeds"] == [0, 1]
    assert report["planner"]["model_calls_per_plan"] == 16 * 2 * 3
    assert len(report["checkpoint_sha256"]) == 64 and "torch" in report["versions"]
    for run in ("agent", "floor", "ceiling"):
        summary = report[run]
        assert summary["episodes"] == 2 and len(summary["rows"]) == 2
        assert 0.0 <= summary["success_rate"] <= 1.0
        lo, hi = summary["success_ci95"]
        assert 0.0 <= lo <= summary["success_rate"] <= hi <= 1.0
        for row in summary["rows"]:
            assert math.isfinite(row["final_distance"]) and 1 <= len(row["distance"]) <= 7
    assert report["agent"]["plan_ms_median"] > 0 and report["agent"]["plan_calls"] == 6
    assert (folder / "distance.png").stat().st_size > 0
    assert [p.name for p in (folder / "videos").iterdir()] == ["episode-00000.gif"]


def test_plan_py_without_a_checkpoint_says_how_to_make_one(tmp_path, capsys):
    assert plan.main(["--config", "reacher", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "python train.py" in err
