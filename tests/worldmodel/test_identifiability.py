"""Identifiability metrics on cases with known answers (SCIENCE.md section 3)."""

import math

import pytest
import torch

from worldmodel.identifiability import (
    affine_fit,
    alignment_excess,
    evaluate_on_grid,
    grid_points,
    orthogonality_error,
    procrustes_error,
    r2_score,
    scaled_orthogonality_error,
    theorem3_bound,
    whitening_error,
)


def random_orthogonal(n: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed)))
    return q


def ou_pairs(n_samples: int, n: int, rho: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n_samples, n, generator=g)
    return z, rho * z + math.sqrt(1 - rho**2) * torch.randn(n_samples, n, generator=g)


def test_rotation_is_perfectly_identified():
    z, _ = ou_pairs(5000, 3, 0.9)
    q = random_orthogonal(3)
    h = z @ q.T + torch.tensor([1.0, -2.0, 0.5])
    assert r2_score(h, z)["r2"] == pytest.approx(1.0, abs=1e-9)
    assert r2_score(z, h)["r2"] == pytest.approx(1.0, abs=1e-9)
    assert orthogonality_error(h, z) == pytest.approx(0.0, abs=1e-6)  # float32 inputs
    assert procrustes_error(h, z) == pytest.approx(0.0, abs=1e-9)


def test_affine_fit_recovers_known_map():
    z, _ = ou_pairs(2000, 2, 0.9)
    a = torch.tensor([[2.0, 0.5], [-1.0, 3.0]], dtype=torch.float64)
    coef, bias = affine_fit(z, z.double() @ a + 4.0)
    torch.testing.assert_close(coef, a)
    torch.testing.assert_close(bias, torch.full((2,), 4.0, dtype=torch.float64))


def test_scaled_rotation_has_known_orthogonality_and_procrustes_errors():
    z, _ = ou_pairs(20000, 2, 0.9)
    h = 2.0 * z @ random_orthogonal(2).T
    # A^T A = 4 I, so |3 I|_F / sqrt(2) = 3
    assert orthogonality_error(h, z) == pytest.approx(3.0, rel=1e-6)
    assert scaled_orthogonality_error(h, z) == pytest.approx(0.0, abs=1e-6)  # scale removed
    # a stretch is not a rotation at any scale: A^T A = diag(1, 9), c^2 = 5, |diag(-.8, .8)|
    stretched = z @ torch.diag(torch.tensor([1.0, 3.0])) @ random_orthogonal(2).T
    assert scaled_orthogonality_error(stretched, z) == pytest.approx(0.8, rel=1e-4)
    assert math.isnan(scaled_orthogonality_error(torch.zeros_like(z), z))
    # best rotation leaves |h - Qz|^2 = |z|^2 (2 - 1)^2 -> n = 2 on average
    assert procrustes_error(h, z) == pytest.approx(2.0, rel=0.05)
    assert whitening_error(h) == pytest.approx(3.0 * math.sqrt(2), rel=0.05)


def test_r2_per_dimension_separates_recovered_and_lost_coordinates():
    z, _ = ou_pairs(5000, 2, 0.9)
    h = torch.stack([z[:, 0], z[:, 1].abs()], dim=1)  # |z1| carries no linear info on z1
    res = r2_score(h, z)
    assert res["r2_per_dim"][0] == pytest.approx(1.0, abs=1e-9)
    assert res["r2_per_dim"][1] < 0.01
    assert res["r2"] == pytest.approx(sum(res["r2_per_dim"]) / 2, abs=0.01)


def test_gaussian_optimum_has_no_alignment_excess_and_hermite_term_has_some():
    rho = 0.9
    z, z_next = ou_pairs(200000, 2, rho)
    q = random_orthogonal(2)
    exact = alignment_excess(z @ q.T, z_next @ q.T, rho)
    assert exact["alignment"] == pytest.approx(2 * (1 - rho) * 2, rel=0.02)
    assert exact["delta"] < 0.005

    def he2(x):  # h = z + c He_2(z), He_2(x) = x^2 - 1: OU damps it by rho^2, not rho
        return x + 0.3 * (x**2 - 1)

    bent = alignment_excess(he2(z), he2(z_next), rho)
    # excess = 2 (rho - rho^2) c^2 Var He_2 = 2 * 0.09 * 0.09 * 2 per coordinate, 2 coordinates
    assert bent["delta"] == pytest.approx(4 * 0.09 * 0.09 * 2, rel=0.1)


def test_theorem3_bound_holds_and_is_tight_at_the_optimum():
    rho = 0.95
    z, z_next = ou_pairs(50000, 2, rho)
    for h, h_next in [(z, z_next), (1.05 * z + 0.1 * z**2, 1.05 * z_next + 0.1 * z_next**2)]:
        eps = whitening_error(h)
        delta = alignment_excess(h, h_next, rho)["delta"]
        assert procrustes_error(h, z) <= theorem3_bound(eps, delta, rho) + 1e-3
    assert theorem3_bound(0.0, 0.0, rho) == 0.0
    assert theorem3_bound(0.1, 0.0, rho) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="rho"):
        theorem3_bound(0.1, 0.1, 1.0)


def test_grid_is_fixed_100_by_100_over_minus3_3():
    g = grid_points()
    assert g.shape == (10000, 2)
    assert float(g.min()) == -3.0 and float(g.max()) == 3.0
    assert evaluate_on_grid(lambda x: x @ random_orthogonal(2).T, lambda z: z) == pytest.approx(1.0)
    assert evaluate_on_grid(lambda x: x.abs(), lambda z: z) < 0.01


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        r2_score(torch.randn(10), torch.randn(10, 2))
    with pytest.raises(ValueError, match="differ in length"):
        r2_score(torch.randn(10, 2), torch.randn(11, 2))


def _rotation(angle=0.7):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def test_knn_regressor_returns_labels_at_fit_points_and_interpolates():
    from worldmodel.identifiability import knn_regressor

    x = torch.cartesian_prod(torch.linspace(-1, 1, 21), torch.linspace(-1, 1, 21)).double()
    y = x @ torch.tensor([[2.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    predict = knn_regressor(x, y, k=5)
    torch.testing.assert_close(predict(x[:7]), y[:7])
    query = torch.tensor([[0.05, -0.35]], dtype=torch.float64)
    expected = query @ torch.tensor([[2.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    assert float((predict(query) - expected).abs().max()) < 0.06
    with pytest.raises(ValueError, match="at least k=5"):
        knn_regressor(x[:3], y[:3])


def test_a_latent_straight_line_is_optimal_for_a_rotation_and_not_for_a_warp():
    from worldmodel.identifiability import latent_line_plan_ratio, path_cost

    Q = _rotation()
    start, goal = torch.tensor([-1.0, 0.5]), torch.tensor([1.2, -0.8])
    rotated = latent_line_plan_ratio(start.double() @ Q.T, goal.double() @ Q.T, start, goal,
                                     lambda h: h @ Q)  # decode = the exact inverse
    assert rotated == pytest.approx(1.0, abs=1e-9)

    def spiral(z, k):  # turns each point by k times its radius: keeps radii, bends lines
        angle = k * z.norm(dim=-1, keepdim=True)
        c, s = torch.cos(angle), torch.sin(angle)
        return torch.cat([c * z[..., :1] - s * z[..., 1:], s * z[..., :1] + c * z[..., 1:]], -1)

    s, g = start.double()[None], goal.double()[None]
    ratios = [latent_line_plan_ratio(spiral(s, k)[0], spiral(g, k)[0], start, goal,
                                     lambda h, k=k: spiral(h, -k)) for k in (0.5, 1.0, 2.0)]
    assert 1.0 < ratios[0] < ratios[1] < ratios[2]  # the more bent, the costlier (1.02 .. 1.35)
    line = torch.stack([torch.zeros(2), torch.ones(2)]).double()
    assert path_cost(line, torch.ones(2)) == pytest.approx(2.0 + 2.0)


def test_lqr_in_rotated_coordinates_has_the_true_value_and_a_stretch_does_not():
    import numpy as np

    from worldmodel.identifiability import lqr_value, lqr_value_error

    A, B, I2 = np.array([[0.95, 0.05], [-0.03, 0.92]]), 0.3 * np.eye(2), np.eye(2)
    P = lqr_value(A, B, I2, I2)  # the discrete algebraic Riccati equation holds:
    gain = np.linalg.solve(I2 + B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(A.T @ P @ A - P - A.T @ P @ B @ gain + I2, 0, atol=1e-10)
    z = torch.randn(400, 2, generator=torch.Generator().manual_seed(0)).double()
    rotated = lqr_value_error(z, z @ _rotation().T + 3.0, A, B)
    assert rotated["value_error_median"] < 1e-9 and rotated["map_orthogonality_error"] < 1e-9
    stretched = lqr_value_error(z, z @ torch.diag(torch.tensor([2.0, 0.5])).double(), A, B)
    assert stretched["value_error_median"] > 0.1 and stretched["map_orthogonality_error"] > 1
