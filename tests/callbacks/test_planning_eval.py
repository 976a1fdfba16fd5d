"""Closed-loop planning during training: plan/success and plan/distance reach the logger."""

import csv
import time

import pytest
from conftest import TINY_PIXELS

from configs.loader import load_config
from planners.eval_config import TrainEvalConfig
from worldmodel.app import train

TRAIN_EVAL = ["plan.train_eval.every_n_steps=3", "plan.train_eval.episodes=2",
              "plan.train_eval.samples=8", "plan.train_eval.iterations=1",
              "plan.train_eval.budget=4", "plan.planner.horizon=2", "plan.eval.goal_offset=3"]


def test_a_training_run_logs_planning_success(tiny_dataset, tmp_path):
    cfg = load_config("reacher", [*TINY_PIXELS, f"output_dir={tmp_path}",
                                  f"data.path={tiny_dataset}", "env.image_size=32", *TRAIN_EVAL])
    result = train.train(cfg)
    assert result.metrics["plan/success"] in (0.0, 0.5, 1.0)  # a share of 2 episodes
    assert result.metrics["plan/distance"] >= 0.0
    with open(next((tmp_path / "reacher" / "logs").rglob("metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    logged = [(int(r["step"]), float(r["plan/success"])) for r in rows if r.get("plan/success")]
    assert [step for step, _ in logged] == [3, 6]  # every 3 steps, and after the last (6)
    assert all(s in (0.0, 0.5, 1.0) for _, s in logged)
    assert logged[-1][1] == result.metrics["plan/success"]  # the last evaluation is the result
    media = sorted(p.name for p in (tmp_path / "reacher" / "logs").rglob("media/*"))
    assert media == ["plan_distance_plot-step0000003.png", "plan_distance_plot-step0000006.png",
                     "plan_episode_0-step0000003.gif", "plan_episode_0-step0000006.gif"]


def _train(tiny_dataset, tmp_path, *extra):
    cfg = load_config("reacher", [*TINY_PIXELS, f"output_dir={tmp_path}", "trainer.max_steps=3",
                                  f"data.path={tiny_dataset}", "env.image_size=32", *TRAIN_EVAL,
                                  *extra])
    return train.train(cfg)


def test_tensorboard_gets_the_metrics_the_plot_and_the_episode(tiny_dataset, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _train(tiny_dataset, tmp_path, "trainer.logger=tensorboard")
    events = EventAccumulator(str(next((tmp_path / "reacher" / "logs").rglob("events.*")).parent))
    events.Reload()
    assert {"plan/success", "plan/distance"} <= set(events.Tags()["scalars"])
    assert {"plan/distance_plot", "plan/episode_0"} <= set(events.Tags()["images"])


def test_wandb_offline_gets_the_metrics_and_media(tiny_dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb")

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    _train(tiny_dataset, tmp_path, "trainer.logger=wandb", "trainer.wandb.offline=true",
           "trainer.wandb.project=wml-test", "trainer.wandb.tags=[a,b]")
    import wandb

    wandb.finish()
    run = next(tmp_path.rglob("offline-run-*"))  # offline: the record stays on disk
    record = next(run.glob("run-*.wandb"))
    deadline = time.monotonic() + 60  # wandb's service writes the record on its own time
    while b"plan/success" not in record.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b"plan/success" in record.read_bytes()
    assert any((run / "files" / "media" / "images" / "plan").glob("distance_plot_*.png"))
    assert any((run / "files" / "media" / "videos" / "plan").glob("episode_0_*.gif"))


def test_train_eval_settings_are_range_checked():
    with pytest.raises(ValueError, match=r"plan.train_eval.episodes=0 \(must be >= 1\)"):
        TrainEvalConfig(every_n_steps=10, episodes=0)
    assert TrainEvalConfig().every_n_steps == 0  # off by default
