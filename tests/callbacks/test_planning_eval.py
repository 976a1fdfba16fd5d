"""Closed-loop planning during training: plan/success and plan/distance reach the logger."""

import csv

import pytest
from conftest import TINY_PIXELS

from configs.loader import load_config
from planners.protocol import TrainEvalConfig
from worldmodel.cli import train

TRAIN_EVAL = ["plan.train_eval.every_n_steps=3", "plan.train_eval.episodes=2",
              "plan.train_eval.samples=8", "plan.train_eval.iterations=1",
              "plan.train_eval.budget=4", "plan.planner.horizon=2", "plan.eval.goal_offset=3"]


def test_a_training_run_logs_planning_success(tiny_dataset, tmp_path):
    cfg = load_config("reacher", [*TINY_PIXELS, f"output_dir={tmp_path}",
                                  f"data.path={tiny_dataset}", "env.image_size=32", *TRAIN_EVAL])
    result = train.train(cfg)
    assert 0.0 <= result.metrics["plan/success"] <= 1.0
    assert result.metrics["plan/distance"] >= 0.0
    rows = list(csv.DictReader(open(next((tmp_path / "reacher" / "logs").rglob("metrics.csv")))))
    logged = [(int(r["step"]), float(r["plan/success"])) for r in rows if r.get("plan/success")]
    assert [step for step, _ in logged] == [3, 6]  # every 3 steps, and after the last (6)
    assert all(0.0 <= s <= 1.0 for _, s in logged)


def test_train_eval_settings_are_range_checked():
    with pytest.raises(ValueError, match=r"plan.train_eval.episodes=0 \(must be >= 1\)"):
        TrainEvalConfig(every_n_steps=10, episodes=0)
    assert TrainEvalConfig().every_n_steps == 0  # off by default
