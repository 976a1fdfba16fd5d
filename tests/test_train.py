"""train.py end to end on a tiny synthetic run: metrics, checkpoint reload, CLI errors."""

import json
import math

import pytest
import torch

import train
from configs.loader import load_config
from worldmodel.module import JEPAModule, cosine_after_constant

TINY = ["trainer.max_steps=30", "trainer.batch_size=64", "trainer.progress_bar=false",
        "trainer.num_threads=1", "eval.num_samples=500", "objective.num_directions=32",
        "model.encoder.hidden_dim=32", "model.encoder.layers=2"]


def test_tiny_run_writes_metrics_and_a_self_describing_checkpoint(tmp_path):
    cfg = load_config("identifiability", [*TINY, f"output_dir={tmp_path}"])
    result = train.train(cfg)
    assert result.checkpoint.is_file()
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for key in ("r2_h_to_z", "r2_z_to_h", "r2_x_to_z", "grid_r2", "orthogonality_error",
                "procrustes_error", "epsilon", "delta", "scaled_excess", "bound"):
        assert math.isfinite(metrics[key]), key
    assert len(metrics["r2_h_to_z_per_dim"]) == 2
    assert (result.run_dir / "config.yaml").is_file()

    model = JEPAModule.load_from_checkpoint(result.checkpoint, weights_only=True)
    x = torch.randn(16, 2, 2)
    state = torch.load(result.checkpoint, weights_only=True)["state_dict"]
    original = JEPAModule(**dict(model.hparams))
    original.load_state_dict(state)
    torch.testing.assert_close(model.encode(x), original.encode(x))


def test_training_improves_identifiability_over_the_untrained_encoder(tmp_path):
    overrides = [*TINY, f"output_dir={tmp_path}", "world.mixing=banana", "objective.lam=0.01"]
    before = train.train(load_config("identifiability", [*overrides, "trainer.max_steps=1"])).metrics
    after = train.train(load_config("identifiability", [*overrides, "trainer.max_steps=400"])).metrics
    assert after["r2_h_to_z"] > before["r2_h_to_z"] + 0.1


def test_cli_reports_config_errors_with_exit_code_2(capsys):
    assert train.main(["trainer.bogus=1"]) == 2
    assert "trainer.bogus" in capsys.readouterr().err


def test_learning_rate_schedule_is_constant_then_cosine_to_zero():
    assert cosine_after_constant(0, 100, 0.5) == 1.0
    assert cosine_after_constant(49, 100, 0.5) == 1.0
    assert cosine_after_constant(75, 100, 0.5) == pytest.approx(0.5)
    assert cosine_after_constant(100, 100, 0.5) == pytest.approx(0.0)
