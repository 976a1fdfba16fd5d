"""Heavier identifiability checks through train.py (``pytest -m slow``), a few minutes each."""

import pytest

from configs.loader import load_config
from worldmodel.app import train

pytestmark = pytest.mark.slow

COMMON = ["trainer.progress_bar=false", "trainer.num_threads=1", "probe.num_samples=5000"]


def test_sigreg_recovers_banana_latents(tmp_path):
    cfg = load_config("identifiability", [*COMMON, f"output_dir={tmp_path}", "world.mixing=banana",
                                               "trainer.max_steps=5000"])
    metrics = train.train(cfg).metrics
    assert metrics["r2_h_to_z"] >= 0.98
    assert metrics["procrustes_error"] <= metrics["bound"]


def test_matched_encoder_recovers_64d_realnvp(tmp_path):
    cfg = load_config("identifiability", [*COMMON, f"output_dir={tmp_path}", "world.latent_dim=64",
                             "model.latent_dim=64", "world.mixing=realnvp",
                             "model.encoder=coupling_inverse", "loss.regulariser_weight=1e-6",
                             "loss.prediction_weight=0.25",
                             "trainer.max_steps=3000"])
    metrics = train.train(cfg).metrics
    assert metrics["r2_h_to_z"] >= 0.999
    assert metrics["r2_x_to_z"] < 0.8  # the mixing alone is far from linear

