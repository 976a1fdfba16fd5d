"""Joint-embedding objectives: alignment, whitening, InfoNCE and their weighting."""

import pytest
import torch

from worldmodel.objectives import (
    JointEmbeddingObjective,
    ObjectiveConfig,
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


@pytest.mark.parametrize("name", ["sigreg", "whitening", "infonce"])
def test_objective_returns_finite_loss_and_parts(name):
    objective = JointEmbeddingObjective(ObjectiveConfig(name=name, lam=0.3, num_directions=16))
    out = {k: v.detach() for k, v in objective(torch.randn(32, 2, 4, requires_grad=True)).items()}
    assert torch.isfinite(out["loss"]) and "align" in out
    if name != "infonce":
        assert float(out["loss"]) == pytest.approx(
            float(0.3 * out[name] + 0.7 * out["align"]), rel=1e-6)


def test_objective_rejects_bad_configs():
    with pytest.raises(ValueError, match="unknown objective"):
        JointEmbeddingObjective(ObjectiveConfig(name="barlow"))
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 1\]"):
        JointEmbeddingObjective(ObjectiveConfig(lam=2.0))
