"""Regularisers of a latent sequence: SIGReg, whitening, InfoNCE; per step or pooled."""

import pytest
import torch

from worldmodel.regularisers import (
    Regulariser,
    RegulariserConfig,
    alignment_loss,
    infonce_loss,
    whitening_loss,
)


def test_alignment_is_quarter_squared_difference_for_two_views():
    h = torch.randn(32, 2, 3)
    expected = ((h[:, 0] - h[:, 1]) ** 2).mean() / 4
    assert float(alignment_loss(h)) == pytest.approx(float(expected), rel=1e-5)


def test_whitening_is_zero_for_whitened_data_and_penalises_scale():
    x = torch.randn(4096, 3, dtype=torch.float64)
    x = x - x.mean(0)
    white = x @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(x.T))).T
    assert float(whitening_loss(white)) == pytest.approx(0.0, abs=1e-9)
    assert float(whitening_loss(2 * white)) == pytest.approx(3 * 9.0, rel=1e-6)


def test_infonce_prefers_matched_pairs():
    a = 5 * torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    matched = torch.stack([a, a + 0.01 * torch.randn_like(a)], dim=1)
    shuffled = torch.stack([a, a[torch.randperm(64)]], dim=1)
    assert float(infonce_loss(matched)) < 0.1 < float(infonce_loss(shuffled))
    with pytest.raises(ValueError, match="2 views"):
        infonce_loss(torch.randn(8, 3, 4))


@pytest.mark.parametrize("name", ["sigreg", "whitening"])
def test_pooled_is_one_sample_of_every_step_and_per_step_averages_the_steps(name):
    z = torch.randn(64, 3, 4, generator=torch.Generator().manual_seed(1))
    pooled = Regulariser(RegulariserConfig(name=name, pooled=True, num_directions=16))
    per_step = Regulariser(RegulariserConfig(name=name, num_directions=16))
    if name == "whitening":
        one = whitening_loss(z.reshape(-1, 4))
        steps = sum(whitening_loss(z[:, t]) for t in range(3)) / 3
    else:
        one = pooled.sigreg(z.reshape(-1, 4), step=5)
        steps = sum(per_step.sigreg(z[:, t], step=5) for t in range(3)) / 3
    torch.testing.assert_close(pooled(z, step=5), one)
    torch.testing.assert_close(per_step(z, step=5), steps)


def test_sigreg_regulariser_separates_gaussian_from_collapsed_latents():
    reg = Regulariser(RegulariserConfig(num_directions=64))
    gaussian = torch.randn(512, 2, 4, generator=torch.Generator().manual_seed(0))
    assert float(reg(gaussian, step=0)) < 3.0 < float(reg(0.1 * gaussian, step=0))


def test_regulariser_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown loss.regulariser 'barlow'"):
        Regulariser(RegulariserConfig(name="barlow"))
