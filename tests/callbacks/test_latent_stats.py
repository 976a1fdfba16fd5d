"""Latent statistics: effective rank and the collapse warning."""

import logging
from types import SimpleNamespace

import pytest
import torch

from callbacks.latent_stats import LatentStats, effective_rank, latent_statistics


def test_effective_rank_of_isotropic_and_collapsed_latents():
    g = torch.Generator().manual_seed(0)
    iso = torch.randn(20000, 16, generator=g)
    assert effective_rank(iso) > 15.5
    line = torch.randn(20000, 1, generator=g) * torch.ones(1, 16)
    assert effective_rank(line) < 1.01
    stats = latent_statistics(iso)
    assert abs(stats["std_mean"] - 1) < 0.02 and stats["effective_rank_fraction"] > 0.97


def _step(callback, z, step=0):
    logged = {}
    module = SimpleNamespace(log_dict=logged.update)
    outputs = {"loss": z.sum(), "latents": z}  # what JEPAModule.training_step returns
    callback.on_train_batch_end(SimpleNamespace(global_step=step), module, outputs, None, 0)
    return logged


def test_collapse_warns_once_with_the_fix(caplog):
    callback = LatentStats(every_n_steps=1)
    g = torch.Generator().manual_seed(0)
    with caplog.at_level(logging.WARNING):
        logged = _step(callback, torch.randn(64, 4, 8, generator=g))
        assert not caplog.records and logged["train/latent_effective_rank"] > 6
        collapsed = torch.randn(64, 4, 1, generator=g) * torch.ones(8) * 1e-3
        _step(callback, collapsed, step=1)
        _step(callback, collapsed, step=2)
    assert len(caplog.records) == 1
    assert "latent collapse" in caplog.text and "loss.regulariser_weight" in caplog.text
    assert _step(LatentStats(every_n_steps=10), collapsed, step=3) == {}  # not its step


def test_a_low_rank_warning_names_its_knob_and_respects_it(caplog):
    g = torch.Generator().manual_seed(0)
    # a 3-D state spread over 32 dims: every coordinate varies, the effective rank is ~3
    low_rank = torch.randn(256, 3, generator=g) @ torch.randn(3, 32, generator=g)
    low_rank = low_rank.view(64, 4, 32)
    with caplog.at_level(logging.WARNING):
        _step(LatentStats(every_n_steps=1, min_rank_fraction=0.05), low_rank)
        assert not caplog.records  # 3 of 32 is above 5%
        _step(LatentStats(every_n_steps=1), low_rank)
    assert len(caplog.records) == 1
    assert "trainer.collapse_rank_fraction" in caplog.text and "loss.regulariser_weight" in caplog.text


def test_the_rank_threshold_must_be_a_fraction():
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="trainer.collapse_rank_fraction"):
            LatentStats(min_rank_fraction=bad)


def test_final_statistics_are_those_of_the_last_training_batch():
    callback = LatentStats(every_n_steps=100)
    g = torch.Generator().manual_seed(0)
    _step(callback, torch.randn(64, 4, 8, generator=g), step=1)  # not a logging step
    last = 3 * torch.randn(64, 4, 8, generator=g)
    _step(callback, last, step=2)
    callback.on_train_end(SimpleNamespace(global_step=2), None)
    assert callback.last["std_mean"] == pytest.approx(float(last.flatten(0, 1).std(0).mean()),
                                                      rel=1e-5)


def test_a_training_step_without_latents_is_a_clear_error():
    with pytest.raises(TypeError, match="latents"):
        LatentStats().on_train_batch_end(SimpleNamespace(global_step=0), None,
                                         {"loss": torch.zeros(())}, None, 0)
