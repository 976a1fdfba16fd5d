"""train.py end to end on a tiny synthetic run: metrics, checkpoint reload, CLI errors."""

import json
import math

import torch

from configs.loader import load_config
from worldmodel.app import train
from worldmodel.module import JEPAModule


def test_tiny_run_writes_metrics_and_a_self_describing_checkpoint(tmp_path, tiny_synthetic):
    cfg = load_config("identifiability", [*tiny_synthetic, f"output_dir={tmp_path}"])
    result = train.train(cfg)
    assert result.checkpoint.is_file()
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for key in ("r2_h_to_z", "r2_z_to_h", "r2_x_to_z", "grid_r2", "orthogonality_error",
                "procrustes_error", "epsilon", "delta", "scaled_excess", "bound"):
        assert math.isfinite(metrics[key]), key
    assert len(metrics["r2_h_to_z_per_dim"]) == 2
    assert 0.9 < metrics["box_fraction"] <= 1.0  # Gaussian latents: ~99% inside [-3, 3]^2
    assert math.isfinite(metrics["box_r2"])
    assert (result.run_dir / "config.yaml").is_file()

    reloaded = JEPAModule.load_from_checkpoint(result.checkpoint, weights_only=True)
    x = torch.randn(16, 2, 2)
    trained = result.module.world_model.eval()  # the model in memory at the end of training
    assert not torch.equal(trained.encode(x), JEPAModule(**dict(reloaded.hparams))
                           .world_model.encode(x))  # training changed it
    torch.testing.assert_close(reloaded.world_model.eval().encode(x), trained.encode(x),
                               rtol=0, atol=0)


def test_training_improves_identifiability_over_the_untrained_encoder(tmp_path, tiny_synthetic):
    overrides = [*tiny_synthetic, f"output_dir={tmp_path}", "world.mixing=banana"]
    before = train.train(load_config("identifiability", [*overrides, "trainer.max_steps=1"])).metrics
    after = train.train(load_config("identifiability", [*overrides, "trainer.max_steps=400"])).metrics
    assert after["r2_h_to_z"] > before["r2_h_to_z"] + 0.1


def test_cli_reports_config_errors_with_exit_code_2(capsys):
    assert train.main(["trainer.bogus=1"]) == 2
    assert "trainer.bogus" in capsys.readouterr().err
