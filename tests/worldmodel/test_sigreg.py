"""SIGReg: calibration against SCIENCE.md section 2, quadrature, gradients, shapes, directions."""

import math

import pytest
import torch

from worldmodel.sigreg import SIGReg, epps_pulley_weights, expected_null_value, sigreg


def reference_sigreg(z: torch.Tensor, a: torch.Tensor, num_knots: int = 17) -> torch.Tensor:
    """Direct transcription of the formula (cos/sin per knot), autograd all the way."""
    knots, weights = (x.to(z.dtype) for x in epps_pulley_weights(num_knots, 3.0))
    tu = (z @ a).unsqueeze(-1) * knots  # (*, N, M, K)
    c, s = tu.cos().mean(-3), tu.sin().mean(-3)
    err = (c - torch.exp(-0.5 * knots**2)) ** 2 + s**2
    return (z.shape[-2] * (err * weights).sum(-1)).mean()


def mean_sigreg(draw, n_samples=40, seed=0, num_directions=256):
    reg = SIGReg(num_directions, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    return sum(float(reg(draw(gen))) for _ in range(n_samples)) / n_samples


def test_expected_null_value_matches_science_md():
    assert expected_null_value() == pytest.approx(1.053, abs=2e-3)


@pytest.mark.parametrize("n", [64, 512, 2048])
def test_null_value_is_about_1_05_whatever_the_batch(n):
    value = mean_sigreg(lambda g: torch.randn(n, 2, generator=g))
    assert value == pytest.approx(1.05, abs=0.2)


@pytest.mark.parametrize(
    "name, draw, expected",
    [
        ("uniform", lambda g: (torch.rand(512, 2, generator=g) * 2 - 1) * math.sqrt(3), 5.3),
        ("laplace", lambda g: torch.distributions.Laplace(0.0, 1 / math.sqrt(2)).sample((512, 2)),
         6.6),
        ("N(0, 0.5^2)", lambda g: 0.5 * torch.randn(512, 2, generator=g), 79.0),
        ("N(0, 2^2)", lambda g: 2.0 * torch.randn(512, 2, generator=g), 125.0),
        ("zeros", lambda g: torch.zeros(512, 2), 206.0),
    ],
)
def test_reference_values_at_n512(name, draw, expected):
    torch.manual_seed(0)  # the Laplace draw uses the global generator
    assert mean_sigreg(draw) == pytest.approx(expected, rel=0.15), name


def test_quadrature_is_the_trapezoid_rule_on_symmetric_interval():
    knots, weights = epps_pulley_weights(17, 3.0)
    full = torch.linspace(-3.0, 3.0, 33, dtype=torch.float64)
    for f in (lambda t: torch.cos(0.7 * t) ** 2, lambda t: 1 - torch.exp(-(t**2)), lambda t: t**2):
        folded = (weights.double() * f(knots.double())).sum()
        trapezoid = torch.trapezoid(torch.exp(-0.5 * full**2) * f(full), full)
        assert float(folded) == pytest.approx(float(trapezoid), rel=1e-6)


@pytest.mark.parametrize("num_knots", [17, 2, 3, 12])  # one power (K = 2) up to many
def test_value_and_gradient_match_direct_formula(num_knots):
    torch.manual_seed(1)
    z = (1.3 * torch.randn(3, 128, 8)).requires_grad_()
    a = torch.nn.functional.normalize(torch.randn(8, 64), dim=0)
    fast = sigreg(z, a, num_knots=num_knots)
    (g_fast,) = torch.autograd.grad(fast, z)
    slow = reference_sigreg(z, a, num_knots)
    (g_slow,) = torch.autograd.grad(slow, z)
    assert fast.item() == pytest.approx(slow.item(), rel=1e-5)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-4, atol=1e-6)


def test_leading_dims_each_get_their_own_statistic():
    torch.manual_seed(2)
    z = torch.randn(4, 64, 3)
    z[1] *= 3.0  # one badly scaled time step
    a = torch.nn.functional.normalize(torch.randn(3, 32), dim=0)
    per_step = torch.stack([sigreg(z[i], a) for i in range(4)])
    assert float(sigreg(z, a)) == pytest.approx(float(per_step.mean()), rel=1e-6)
    assert float(sigreg(z.reshape(1, 256, 3), a)) != pytest.approx(float(per_step.mean()), rel=1e-2)


def test_directions_are_unit_fresh_each_call_and_reproducible_per_step():
    reg = SIGReg(16, seed=3)
    a0, a1 = reg.directions(5, 0, torch.device("cpu")), reg.directions(5, 1, torch.device("cpu"))
    torch.testing.assert_close(a0.norm(dim=0), torch.ones(16))
    assert not torch.allclose(a0, a1)
    torch.testing.assert_close(a0, SIGReg(16, seed=3).directions(5, 0, torch.device("cpu")))
    z = torch.randn(32, 5)
    v0, v1 = reg(z), reg(z)  # internal counter advances: different directions
    assert float(v0) != float(v1)
    assert float(reg(z, step=0)) == float(v0)


def test_collapse_is_far_above_the_floor_and_gradient_pushes_towards_gaussian():
    reg = SIGReg(64)
    z = (0.1 * torch.randn(256, 4)).requires_grad_()
    value = reg(z, step=0)
    value.backward()
    assert value.item() > 50 * expected_null_value()
    # descending the gradient expands the collapsed cloud
    assert float((z - 0.01 * z.grad).detach().std()) > float(z.detach().std())


def test_bad_shapes_and_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        SIGReg()(torch.randn(5))
    with pytest.raises(ValueError, match="num_directions"):
        SIGReg(0)
    with pytest.raises(ValueError, match="num_knots"):
        SIGReg(8, num_knots=1)
    with pytest.raises(ValueError, match="does not match"):
        sigreg(torch.randn(10, 3), torch.randn(4, 8))


def test_bf16_autocast_input_is_computed_in_float32():
    z = torch.randn(128, 4)
    a = torch.nn.functional.normalize(torch.randn(4, 16), dim=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = sigreg(z, a)
    assert v.dtype == torch.float32
    assert float(v) == pytest.approx(float(sigreg(z, a)), rel=1e-5)
