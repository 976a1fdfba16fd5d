"""Synthetic worlds: latent laws, OU transitions, mixings, the matched inverse encoder, streams."""

import math

import pytest
import torch

from worldmodel.encoders import CouplingInverseEncoder, EncoderSpec, build_encoder
from worldmodel.mixings import MIXINGS, build_mixing
from worldmodel.streams import SyntheticStream
from worldmodel.synthetic import (
    SyntheticWorld,
    sample_latents,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "law, alpha, kurtosis",
    [("gaussian", 2.0, 3.0), ("gennorm", 2.0, 3.0), ("laplace", 1.0, 6.0), ("uniform", 2.0, 1.8),
     ("gennorm", 0.5, math.gamma(5 / 0.5) * math.gamma(1 / 0.5) / math.gamma(3 / 0.5) ** 2),
     ("gennorm", 8.0, math.gamma(5 / 8) * math.gamma(1 / 8) / math.gamma(3 / 8) ** 2)],
)
def test_latent_laws_have_zero_mean_unit_variance_and_their_kurtosis(law, alpha, kurtosis):
    z = sample_latents(law, (400000, 1), gen(), alpha).double()
    assert float(z.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(z.var()) == pytest.approx(1.0, rel=0.02)
    tol = 0.05 if kurtosis < 10 else 0.2
    assert float((z**4).mean() / z.var() ** 2) == pytest.approx(kurtosis, rel=tol)


@pytest.mark.parametrize("rho", [0.95, [0.99, 0.8]])
def test_ou_step_has_the_configured_autocorrelation(rho):
    world = SyntheticWorld(2, rho=rho)
    z = world.latents(200000, gen())  # (B, 2, n)
    corr = (z[:, 0] * z[:, 1]).mean(0) / (z[:, 0].std(0) * z[:, 1].std(0))
    expected = torch.as_tensor(rho, dtype=torch.float32).expand(2)
    torch.testing.assert_close(corr, expected, atol=0.01, rtol=0)
    if isinstance(rho, float):
        assert world.shared_rho == pytest.approx(rho)
    else:
        assert world.shared_rho is None


def test_two_d_mixings_follow_their_formulas():
    z = torch.randn(1000, 2, generator=gen())
    spiral = build_mixing("spiral", 2)(z)
    torch.testing.assert_close(spiral.norm(dim=1), z.norm(dim=1))  # a rotation per radius
    torch.testing.assert_close(build_mixing("banana", 2)(z)[:, 1], z[:, 1] + z[:, 0] ** 2)
    torch.testing.assert_close(build_mixing("sinusoid", 2)(z)[:, 0], z[:, 0] + torch.sin(1.5 * z[:, 1]))
    torch.testing.assert_close(build_mixing("identity", 2)(z), z)


@pytest.mark.parametrize("name", MIXINGS)
def test_every_mixing_is_deterministic_for_its_seed_and_changes_the_data(name):
    z = torch.randn(256, 4, generator=gen())
    a, b = build_mixing(name, 4, seed=1)(z), build_mixing(name, 4, seed=1)(z)
    torch.testing.assert_close(a, b)
    assert torch.isfinite(a).all()
    if name != "identity":
        assert not torch.allclose(a, z)


@pytest.mark.parametrize("dim", [2, 8, 9])
def test_matched_inverse_encoder_recovers_realnvp_latents_exactly(dim):
    mixing = build_mixing("realnvp", dim, num_layers=4, seed=3)
    encoder = CouplingInverseEncoder(dim, dim, layers=4)
    with torch.no_grad():
        for layer, v in enumerate(encoder.weights):
            v.copy_(-mixing.layer_weight(3 - layer))
    z = torch.randn(512, dim, generator=gen())
    x = mixing(z)
    assert (x - z).abs().max() > 0.1
    torch.testing.assert_close(encoder(x), z, atol=1e-5, rtol=0)


def test_realnvp_layer_weights_are_twice_an_orthogonal_matrix():
    w = build_mixing("realnvp", 6, seed=0).layer_weight(0)
    torch.testing.assert_close(w.T @ w, 4 * torch.eye(3), atol=1e-5, rtol=0)


def test_stream_is_fresh_and_deterministic_for_a_seed():
    world = SyntheticWorld(2, mixing="banana")
    first = iter(SyntheticStream(world, 64, seed=1))
    a, b = next(first), next(first)
    assert a["obs"].shape == (64, 2, 2) and a["states"].shape == (64, 2, 2)
    assert a["actions"].shape == (64, 2, 0)
    assert not torch.allclose(a["states"], b["states"])
    again = next(iter(SyntheticStream(world, 64, seed=1)))
    torch.testing.assert_close(a["states"], again["states"])
    other_rank = next(iter(SyntheticStream(world, 64, seed=1, rank=1)))
    assert not torch.allclose(a["states"], other_rank["states"])


def test_bad_world_arguments_name_the_problem():
    with pytest.raises(ValueError, match="unknown world.law 'cauchy'; choose one of"):
        SyntheticWorld(2, law="cauchy")
    with pytest.raises(ValueError, match="rho must lie"):
        SyntheticWorld(2, rho=1.0)
    with pytest.raises(ValueError, match="one value or 3"):
        SyntheticWorld(3, rho=[0.9, 0.8])
    with pytest.raises(ValueError, match="even"):
        SyntheticWorld(3, mixing="spiral").observe(torch.randn(4, 3))
    with pytest.raises(ValueError, match="unknown world.mixing 'swirl'"):
        build_mixing("swirl", 2)
    with pytest.raises(ValueError, match="alpha"):
        sample_latents("gennorm", (3,), gen(), alpha=0.0)
    with pytest.raises(ValueError, match=r"observation size \(4\) to equal model.latent_dim"):
        build_encoder("coupling_inverse", EncoderSpec((4,), 2))



@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_unit_scale_generalised_normal_has_scipy_s_variance(alpha):
    """``unit_scale`` is the density exp(-|x|^alpha): variance G(3/alpha) / G(1/alpha)."""
    z = sample_latents("gennorm", (400000, 1), gen(), alpha, scale="unit_scale").double()
    assert float(z.var()) == pytest.approx(math.gamma(3 / alpha) / math.gamma(1 / alpha),
                                           rel=0.02)
    with pytest.raises(ValueError, match="unit_variance"):
        sample_latents("gennorm", (3,), gen(), alpha, scale="unit")


def test_gaussian_ou_innovations_keep_the_step_but_change_its_law():
    """With ``noise_law=gaussian`` the innovation of a Laplace world is Gaussian: the step
    ``z' - rho z`` has the Gaussian's kurtosis (3), not the Laplace's (6)."""
    kurtosis = {}
    for noise in (None, "gaussian"):
        world = SyntheticWorld(1, law="laplace", rho=0.9, noise_law=noise)
        z = world.latents(400000, gen()).double()
        step = z[:, 1, 0] - 0.9 * z[:, 0, 0]
        kurtosis[noise] = float((step**4).mean() / step.var() ** 2)
        assert float(step.var()) == pytest.approx(1 - 0.9**2, rel=0.02)
    assert kurtosis[None] == pytest.approx(6.0, rel=0.1)
    assert kurtosis["gaussian"] == pytest.approx(3.0, rel=0.05)
    with pytest.raises(ValueError, match="noise law"):
        SyntheticWorld(1, noise_law="cauchy")
