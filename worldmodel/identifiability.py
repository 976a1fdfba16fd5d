"""Identifiability metrics of SCIENCE.md section 3: how well a latent ``h`` recovers ``z``.

All regressions are affine least squares with intercept, solved in float64. Inputs are
``(N, d)`` tensors of paired samples; outputs are Python floats (or lists for per-dimension R²).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "affine_fit",
    "alignment_excess",
    "control_cost_ratio",
    "evaluate_on_grid",
    "grid_points",
    "orthogonality_error",
    "procrustes_error",
    "r2_score",
    "theorem3_bound",
    "theorem3_scaled_excess",
    "whitening_error",
]


def _as64(x: Tensor) -> Tensor:
    if x.dim() != 2:
        raise ValueError(f"expected a (N, d) tensor, got shape {tuple(x.shape)}")
    return x.detach().to(torch.float64).cpu()


def affine_fit(inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Least squares ``targets ~ inputs @ A + b``; returns ``(A (d_in, d_out), b (d_out,))``."""
    x, y = _as64(inputs), _as64(targets)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs and targets differ in length: {x.shape[0]} vs {y.shape[0]}")
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    coef = torch.linalg.lstsq(xc, yc, driver="gelsd").solution  # (d_in, d_out)
    return coef, y_mean - x_mean @ coef


def r2_score(inputs: Tensor, targets: Tensor) -> dict[str, float | list[float]]:
    """R² of the affine regression of ``targets`` on ``inputs``: pooled and per target dim.

    Pooled R² is ``1 - sum |y - y_hat|^2 / sum |y - y_mean|^2`` over all target dimensions.
    """
    coef, bias = affine_fit(inputs, targets)
    y = _as64(targets)
    resid = (y - (_as64(inputs) @ coef + bias)).pow(2).sum(0)  # (d_out,)
    total = (y - y.mean(0)).pow(2).sum(0).clamp_min(1e-300)  # (d_out,)
    return {
        "r2": float(1 - resid.sum() / total.sum()),
        "r2_per_dim": (1 - resid / total).tolist(),
    }


def orthogonality_error(h: Tensor, z: Tensor) -> float:
    """Fit ``h ~ A z + b`` and return ``|A^T A - I|_F / sqrt(n)`` with ``n = dim z``."""
    coef, _ = affine_fit(z, h)  # (n, D): h ~ z @ coef, i.e. A = coef^T
    a = coef.T  # (D, n)
    n = a.shape[1]
    return float(torch.linalg.norm(a.T @ a - torch.eye(n, dtype=a.dtype)) / math.sqrt(n))


def procrustes_error(h: Tensor, z: Tensor) -> float:
    """``mean |h_c - Q z|^2`` with ``Q = U V^T`` from the SVD of ``h_c^T z / N``.

    ``z`` is centred too: the true latents have mean zero, and centring removes the ``n / N``
    floor that a finite sample's mean would otherwise add.
    """
    hc, zz = _as64(h), _as64(z)
    hc, zz = hc - hc.mean(0), zz - zz.mean(0)
    u, _, vh = torch.linalg.svd(hc.T @ zz / hc.shape[0], full_matrices=False)
    q = u @ vh  # (D, n)
    return float((hc - zz @ q.T).pow(2).sum(1).mean())


def whitening_error(h: Tensor) -> float:
    """``epsilon = |Cov h - I|_F``."""
    x = _as64(h)
    cov = torch.cov(x.T).reshape(x.shape[1], x.shape[1])
    return float(torch.linalg.norm(cov - torch.eye(x.shape[1], dtype=x.dtype)))


def alignment_excess(h: Tensor, h_next: Tensor, rho: float) -> dict[str, float]:
    """Alignment ``L = E|h(z') - h(z)|^2`` over one OU step, and ``delta``.

    ``delta = max(L - 2 (1 - rho) tr Cov h, 0)``: the excess over the Gaussian optimum.
    """
    a, b = _as64(h), _as64(h_next)
    loss = float((b - a).pow(2).sum(1).mean())
    trace = float(torch.cov(a.T).reshape(a.shape[1], a.shape[1]).trace())
    return {"alignment": loss, "delta": max(loss - 2 * (1 - rho) * trace, 0.0)}


def theorem3_scaled_excess(delta: float, rho: float) -> float:
    """``D = delta / (2 rho (1 - rho))``, the alignment excess in Theorem 3's units."""
    if not 0 < rho < 1:
        raise ValueError(f"rho must lie in (0, 1), got {rho}")
    return delta / (2 * rho * (1 - rho))


def theorem3_bound(epsilon: float, delta: float, rho: float) -> float:
    """Theorem 3: ``min_Q E|h - Q z|^2 <= D + (epsilon + D)^2``, D from ``theorem3_scaled_excess``."""
    d = theorem3_scaled_excess(delta, rho)
    return d + (epsilon + d) ** 2


def grid_points(size: int = 100, limit: float = 3.0) -> Tensor:
    """The fixed ``size x size`` grid over ``[-limit, limit]^2`` as ``(size^2, 2)``."""
    axis = torch.linspace(-limit, limit, size)
    return torch.cartesian_prod(axis, axis)


def control_cost_ratio(path: Tensor, start: Tensor | None = None, goal: Tensor | None = None) -> float:
    """Energy of a true-state path over that of the optimal straight line (ideal 1).

    Args:
        path: ``(K + 1, n)`` true states visited from start to goal in ``K`` equal steps (e.g.
            a straight line in latent space mapped to true coordinates).
        start, goal: endpoints; default to the path's first and last rows.

    For a step cost ``|z_{k+1} - z_k|^2`` the optimum between fixed endpoints is the straight
    line with cost ``|goal - start|^2 / K``.
    """
    p = path.detach().to(torch.float64)
    s = p[0] if start is None else start.detach().to(torch.float64)
    g = p[-1] if goal is None else goal.detach().to(torch.float64)
    steps = p.shape[0] - 1
    if steps < 1:
        raise ValueError(f"path needs at least 2 points, got {p.shape[0]}")
    optimal = float((g - s).pow(2).sum()) / steps
    if optimal == 0:
        raise ValueError("start and goal coincide: the control-cost ratio is undefined")
    return float((p[1:] - p[:-1]).pow(2).sum()) / optimal


def evaluate_on_grid(encoder: Callable[[Tensor], Tensor], observe: Callable[[Tensor], Tensor]) -> float:
    """Grid R²(h -> z) on the fixed 100 x 100 grid over ``[-3, 3]^2`` (2-D worlds)."""
    z = grid_points()
    with torch.no_grad():
        h = encoder(observe(z))
    return float(r2_score(h, z)["r2"])

