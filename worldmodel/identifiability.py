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
    "GRID_LIMIT",
    "affine_fit",
    "alignment_excess",
    "evaluate_on_grid",
    "grid_points",
    "knn_regressor",
    "latent_line_plan_ratio",
    "lqr_value",
    "lqr_value_error",
    "orthogonality_error",
    "path_cost",
    "procrustes_error",
    "r2_score",
    "scaled_orthogonality_error",
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


def _map_gram(h: Tensor, z: Tensor) -> Tensor:
    """``A^T A`` ``(n, n)`` of the affine fit ``h ~ A z + b`` (``A`` is ``(D, n)``)."""
    coef, _ = affine_fit(z, h)  # (n, D): h ~ z @ coef, i.e. A = coef^T
    return coef @ coef.T


def orthogonality_error(h: Tensor, z: Tensor) -> float:
    """Fit ``h ~ A z + b`` and return ``|A^T A - I|_F / sqrt(n)`` with ``n = dim z``."""
    gram = _map_gram(h, z)
    n = gram.shape[0]
    return float(torch.linalg.norm(gram - torch.eye(n, dtype=gram.dtype)) / math.sqrt(n))


def scaled_orthogonality_error(h: Tensor, z: Tensor) -> float:
    """``orthogonality_error`` after dividing ``A`` by its RMS singular value ``c``:
    ``|A^T A / c^2 - I|_F / sqrt(n)`` with ``c^2 = tr(A^T A) / n``. 0 for any scaled rotation,
    so it separates the shape of the map from its scale (a latent of many unit-variance
    dimensions that spends them on a few state entries has ``c`` well above 1)."""
    gram = _map_gram(h, z)
    n = gram.shape[0]
    scale = torch.trace(gram) / n
    if scale <= 0:
        return float("nan")  # the latent holds none of z linearly
    return float(torch.linalg.norm(gram / scale - torch.eye(n, dtype=gram.dtype)) / math.sqrt(n))


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


GRID_LIMIT = 3.0  # SCIENCE.md section 3: the grid R² box is [-3, 3]^2


def grid_points(size: int = 100, limit: float = GRID_LIMIT) -> Tensor:
    """The fixed ``size x size`` grid over ``[-limit, limit]^2`` as ``(size^2, 2)``."""
    axis = torch.linspace(-limit, limit, size)
    return torch.cartesian_prod(axis, axis)


def knn_regressor(fit_x: Tensor, fit_y: Tensor, k: int = 5, eps: float = 1e-8
                  ) -> Callable[[Tensor], Tensor]:
    """A distance-weighted k-nearest-neighbour regressor ``x (N, d) -> y (N, m)`` fitted on
    labelled points (weights ``1 / distance``; an exact match returns its label)."""
    if len(fit_x) < k:
        raise ValueError(f"need at least k={k} labelled points, got {len(fit_x)}")
    fx, fy = _as64(fit_x), _as64(fit_y)

    def predict(x: Tensor) -> Tensor:
        d = torch.cdist(_as64(x), fx)  # (N, F)
        dist, idx = d.topk(k, dim=1, largest=False)  # (N, k)
        w = 1.0 / (dist + eps)
        return (w[..., None] * fy[idx]).sum(1) / w.sum(1, keepdim=True)

    return predict


def path_cost(path: Tensor, goal: Tensor) -> float:
    """The paper's planning cost of a true-state path ``(T + 1, n)``:
    ``sum_t |theta_t - goal|^2 + sum_t |theta_{t+1} - theta_t|^2``."""
    p, g = _as64(path), goal.detach().to(torch.float64).cpu().reshape(1, -1)
    return float((p - g).pow(2).sum() + (p[1:] - p[:-1]).pow(2).sum())


def latent_line_plan_ratio(h_start: Tensor, h_goal: Tensor, theta_start: Tensor,
                           theta_goal: Tensor, decode: Callable[[Tensor], Tensor],
                           steps: int = 20) -> float:
    """``J(latent plan) / J(straight line in theta)`` for one start/goal pair (ideal 1).

    The latent plan is the straight line from ``h_start`` to ``h_goal`` in ``steps`` equal
    steps, decoded to true coordinates by ``decode`` (e.g. ``knn_regressor``), with its
    endpoints pinned to the true ``theta_start`` and ``theta_goal``; the reference is the
    straight line between those in true coordinates. ``J`` is ``path_cost``.
    """
    t = torch.linspace(0, 1, steps + 1, dtype=torch.float64)[:, None]
    hs, hg, ts, tg = (v.detach().to(torch.float64).cpu().reshape(-1)
                      for v in (h_start, h_goal, theta_start, theta_goal))
    latent = decode((1 - t) * hs + t * hg)  # (T + 1, n)
    latent[0], latent[-1] = ts, tg
    reference = (1 - t) * ts + t * tg
    return path_cost(latent, tg) / path_cost(reference, tg)


def lqr_value(A, B, W, R):
    """``P`` of the infinite-horizon discrete LQR value ``V(x) = x^T P x`` (the discrete
    algebraic Riccati equation, ``scipy.linalg.solve_discrete_are``)."""
    import numpy as np
    from scipy.linalg import solve_discrete_are

    return solve_discrete_are(*(np.asarray(m, np.float64) for m in (A, B, W, R)))


def lqr_value_error(z: Tensor, h: Tensor, A, B, W=None, R=None, fit: int | None = None
                    ) -> dict[str, float]:
    """How far LQR solved in an encoder's coordinates is from LQR in the true ones.

    The world is ``z' = A z + B u`` with cost ``z^T W z + u^T R u``. The encoder's coordinates
    are ``h ~ M z + c`` (OLS on the first ``fit`` points); a planner that only sees ``h`` uses the
    push-forward dynamics ``A_h = M A M^-1``, ``B_h = M B`` and the same-form cost
    ``h^T W h + u^T R u`` (it cannot know ``M``). Returns the relative error
    ``|V_h(h - c) - V(z)| / V(z)`` (median and mean) on the remaining, held-out points, and
    ``M``'s distance from orthogonal. Zero when ``M`` is a rotation (Thm 4).
    """
    import numpy as np

    z64, h64 = _as64(z).numpy(), _as64(h).numpy()
    n = z64.shape[1]
    if h64.shape[1] != n:
        raise ValueError(f"need as many latent as true coordinates, got {h64.shape[1]} and {n}")
    fit = fit or len(z64) // 2
    coef, bias = affine_fit(torch.from_numpy(z64[:fit]), torch.from_numpy(h64[:fit]))
    M, c = coef.numpy().T, bias.numpy()  # h ~ M z + c
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    W = np.eye(n) if W is None else np.asarray(W, np.float64)
    R = np.eye(B.shape[1]) if R is None else np.asarray(R, np.float64)
    P = lqr_value(A, B, W, R)
    P_h = lqr_value(M @ A @ np.linalg.inv(M), M @ B, W, R)
    zt, ht = z64[fit:], h64[fit:] - c
    v = np.einsum("ni,ij,nj->n", zt, P, zt)
    v_h = np.einsum("ni,ij,nj->n", ht, P_h, ht)
    rel = np.abs(v_h - v) / np.maximum(v, 1e-12)
    return {"value_error_median": float(np.median(rel)), "value_error_mean": float(rel.mean()),
            "map_orthogonality_error": float(np.linalg.norm(M.T @ M - np.eye(n)))}


def evaluate_on_grid(encoder: Callable[[Tensor], Tensor], observe: Callable[[Tensor], Tensor]) -> float:
    """Grid R²(h -> z) on the fixed 100 x 100 grid over ``[-3, 3]^2`` (2-D worlds)."""
    z = grid_points()
    with torch.no_grad():
        h = encoder(observe(z))
    return float(r2_score(h, z)["r2"])

