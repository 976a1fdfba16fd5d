"""SIGReg: the Epps-Pulley sketched isotropic-Gaussian regulariser of LeJEPA, correct under DDP.

For embeddings ``Z`` of shape ``(*, N, D)`` the statistic draws ``M`` unit directions, projects
``u = Z a_m`` and compares the empirical characteristic function of every projection with the
standard normal one, ``phi(t) = exp(-t^2 / 2)``, on ``K`` knots of ``[0, t_max]``:

    EP_m   = N * sum_k W_k [ (C_m(t_k) - phi(t_k))^2 + S_m(t_k)^2 ]
    SIGReg = mean over m and over the leading dims ``*``

``W_k`` is the trapezoid rule on ``[-t_max, t_max]`` folded onto the half line (``2 delta``
inside, ``delta`` at both ends) times ``phi(t_k)``. For exact ``N(0, I)`` samples the expected
value is about 1.053 whatever ``N`` and ``D``; a wrong distribution adds ``N * bias^2``.

Distributed training: every rank draws the *same* directions (the generator is seeded from a
seed and a call counter that advance identically on all ranks) and the ECF sums are all-reduced
with an autograd-aware sum before dividing by the global batch, so a run on R ranks computes the
single-process value on the concatenated batch, and the DDP-averaged gradients match as well.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from worldmodel.distributed import all_reduce_sum, is_distributed

__all__ = ["SIGReg", "all_reduce_sum", "epps_pulley_weights", "expected_null_value", "sigreg"]


def epps_pulley_weights(num_knots: int = 17, t_max: float = 3.0) -> tuple[Tensor, Tensor]:
    """Knots ``t_k`` on ``[0, t_max]`` and weights ``W_k`` = folded trapezoid weight * phi(t_k).

    Returns:
        ``(knots (K,), weights (K,))`` in float32.
    """
    if num_knots < 2:
        raise ValueError(f"num_knots must be >= 2, got {num_knots}")
    if t_max <= 0:
        raise ValueError(f"t_max must be > 0, got {t_max}")
    knots = torch.linspace(0.0, t_max, num_knots, dtype=torch.float64)
    delta = t_max / (num_knots - 1)
    trapezoid = torch.full((num_knots,), 2.0 * delta, dtype=torch.float64)
    trapezoid[0] = trapezoid[-1] = delta
    weights = trapezoid * torch.exp(-0.5 * knots**2)
    return knots.float(), weights.float()


class _ECFSums(torch.autograd.Function):
    """``sum_n cos(t_k u_n)`` and ``sum_n sin(t_k u_n)`` for equally spaced ``t_k = k * delta``.

    With ``z = exp(i delta u)`` (one complex exponential per sample) the forward reduces the
    powers ``z^k``, ``k = 1 .. K-1``, one multiplication at a time; the backward evaluates
    ``sum_k w_k z^k`` by Horner's rule (``d/du cos(t u) = -t sin(t u)``, ``d/du sin(t u) =
    t cos(t u)``). Either way only ``(*, N, M)``-sized arrays are touched, which stay in cache,
    instead of a ``(K-1, *, N, M)`` tensor of powers: on one CPU thread (N = 512, M = 256,
    K = 17) forward plus backward take 4.3 ms against 8.1 for the saved powers.
    """

    @staticmethod
    def forward(ctx, proj: Tensor, delta: float, num_knots: int) -> tuple[Tensor, Tensor]:
        unit = torch.polar(torch.ones_like(proj), proj * delta)  # (*, N, M), exp(i delta u)
        sums = unit.new_empty((num_knots - 1, *unit.shape[:-2], unit.shape[-1]))  # (K-1, *, M)
        power = unit.clone()
        torch.sum(power, dim=-2, out=sums[0])
        for k in range(1, num_knots - 1):
            power.mul_(unit)
            torch.sum(power, dim=-2, out=sums[k])
        sums = sums.movedim(0, -1)  # (*, M, K-1)
        n_col = torch.full((*sums.shape[:-1], 1), float(proj.shape[-2]), device=proj.device)
        cos_sum = torch.cat([n_col, sums.real], dim=-1)  # (*, M, K); t_0 = 0 gives cos = 1
        sin_sum = torch.cat([torch.zeros_like(n_col), sums.imag], dim=-1)  # (*, M, K)
        ctx.save_for_backward(unit)
        ctx.delta = delta
        return cos_sum, sin_sum

    @staticmethod
    def backward(ctx, grad_cos: Tensor, grad_sin: Tensor) -> tuple[Tensor, None, None]:
        (unit,) = ctx.saved_tensors  # (*, N, M)
        k = torch.arange(1, grad_cos.shape[-1], device=unit.device, dtype=grad_cos.dtype)
        # Re(exp(i t u) (g_sin + i g_cos)) * t = t (cos g_sin - sin g_cos)
        weight = torch.complex(grad_sin[..., 1:], grad_cos[..., 1:]) * (k * ctx.delta)  # (*, M, K-1)
        weight = weight.movedim(-1, 0).unsqueeze(-2)  # (K-1, *, 1, M)
        acc = weight[-1].expand_as(unit).clone()  # Horner: sum_k w_k z^k = z (w_1 + z (w_2 + ...))
        for j in range(weight.shape[0] - 2, -1, -1):
            acc.mul_(unit).add_(weight[j])
        return acc.mul_(unit).real, None, None


def sigreg(
    z: Tensor,
    directions: Tensor,
    num_knots: int = 17,
    t_max: float = 3.0,
    sync: bool = True,
) -> Tensor:
    """SIGReg of ``z (*, N, D)`` for given unit ``directions (D, M)``; a scalar.

    Args:
        z: embeddings; every leading index gets its own statistic, then they are averaged.
        directions: unit-norm columns, identical on every rank.
        num_knots, t_max: ``K`` equally spaced knots on ``[0, t_max]``.
        sync: all-reduce the ECF over ranks when ``torch.distributed`` is initialised.
    """
    if z.dim() < 2:
        raise ValueError(f"SIGReg expects embeddings of shape (*, N, D), got {tuple(z.shape)}")
    if z.shape[-1] != directions.shape[0]:
        raise ValueError(
            f"embedding dim {z.shape[-1]} does not match directions {tuple(directions.shape)}"
        )
    knots, weights = (x.to(z.device) for x in epps_pulley_weights(num_knots, t_max))
    with torch.autocast(device_type=z.device.type, enabled=False):
        proj = z.float() @ directions.float()  # (*, N, M)
        cos_sum, sin_sum = _ECFSums.apply(proj, t_max / (num_knots - 1), num_knots)  # (*, M, K)
        n = torch.tensor(float(z.shape[-2]), device=z.device)
        if sync and is_distributed():
            cos_sum = all_reduce_sum(cos_sum)
            sin_sum = all_reduce_sum(sin_sum)
            dist.all_reduce(n, op=dist.ReduceOp.SUM)
        phi = torch.exp(-0.5 * knots**2)  # (K,)
        err = (cos_sum / n - phi) ** 2 + (sin_sum / n) ** 2  # (*, M, K)
        statistic = n * (err * weights).sum(dim=-1)  # (*, M)
        return statistic.mean()


class SIGReg(nn.Module):
    """SIGReg with fresh directions every call, synchronised across ranks.

    Args:
        num_directions: ``M``, random unit directions per call.
        num_knots: ``K``, knots on ``[0, t_max]``.
        t_max: upper end of the integration range.
        seed: base seed of the direction generator (the same on every rank).

    Call with ``z (*, N, D)``; optionally pass ``step`` to seed the directions explicitly
    (e.g. the trainer's global step), otherwise an internal call counter is used. Both advance
    identically on all ranks, which is what keeps the directions synchronised.
    """

    def __init__(
        self, num_directions: int = 256, num_knots: int = 17, t_max: float = 3.0, seed: int = 0
    ) -> None:
        super().__init__()
        if num_directions < 1:
            raise ValueError(f"num_directions must be >= 1, got {num_directions}")
        self.num_directions = num_directions
        self.seed = seed
        epps_pulley_weights(num_knots, t_max)  # validates the quadrature arguments
        self.num_knots, self.t_max = num_knots, t_max
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def directions(self, dim: int, step: int, device: torch.device) -> Tensor:
        """Unit directions ``(D, M)`` for a given step: Gaussian columns, normalised."""
        generator = torch.Generator(device="cpu")
        generator.manual_seed((self.seed * 1_000_003 + step) % (2**63 - 1))
        a = torch.randn(dim, self.num_directions, generator=generator)
        a = a / a.norm(dim=0, keepdim=True)
        return a.to(device)

    def forward(self, z: Tensor, step: int | None = None) -> Tensor:
        """SIGReg of ``z (*, N, D)``; a scalar tensor."""
        if step is None:
            step = int(self.calls)
            self.calls += 1
        a = self.directions(z.shape[-1], step, z.device)
        return sigreg(z, a, self.num_knots, self.t_max)

    def extra_repr(self) -> str:
        return f"num_directions={self.num_directions}, num_knots={self.num_knots}, t_max={self.t_max}"


def expected_null_value(num_knots: int = 17, t_max: float = 3.0) -> float:
    """Expected SIGReg for exact N(0, I) samples: ``sum_k W_k (1 - phi(t_k)^2)``."""
    knots, weights = epps_pulley_weights(num_knots, t_max)
    phi = torch.exp(-0.5 * knots.double() ** 2)
    return float((weights.double() * (1 - phi**2)).sum())

