"""Regularisers of a latent sequence ``z (B, T, D)``: SIGReg (LeJEPA), whitening and InfoNCE.

SIGReg and whitening push the latent distribution towards N(0, I), either for each time step
separately (LeWM) or for all time steps pooled into one sample (the synthetic protocol of
SCIENCE.md section 4); InfoNCE is the contrastive baseline on two views. ``alignment`` is the
paper's alignment term for views, logged beside the prediction loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.checks import require_at_least
from common.registry import Registry
from worldmodel.sigreg import SIGReg

__all__ = ["REGULARISERS", "Regulariser", "RegulariserConfig", "alignment_loss",
           "infonce_loss", "whitening_loss"]

REGULARISERS: Registry[Callable[..., Tensor]] = Registry("regulariser", "loss.regulariser")


@dataclass
class RegulariserConfig:
    """Which regulariser, over which sample, and its knobs.

    ``pooled``: one sample of all ``B * T`` latents (the synthetic protocol) instead of one per
    time step averaged over steps (LeWM). SIGReg: ``num_directions``, ``num_knots``,
    ``t_max``; InfoNCE: ``temperature`` (needs exactly two time steps, the views).
    """

    name: str = "sigreg"
    pooled: bool = False
    num_directions: int = 256
    num_knots: int = 17
    t_max: float = 3.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        require_at_least("loss.regulariser", self, {"num_directions": 1, "num_knots": 2})
        if not (self.t_max > 0 and self.temperature > 0):
            raise ValueError(f"loss.regulariser.t_max and temperature must be > 0, got "
                             f"{self.t_max} and {self.temperature}")


def alignment_loss(h: Tensor) -> Tensor:
    """``mean((h_v - mean_v h)^2)`` over batch, views and dims for ``h (B, V, D)``.

    For two views it is a quarter of the one-step prediction MSE of the identity predictor.
    """
    return (h - h.mean(dim=1, keepdim=True)).pow(2).mean()


def whitening_loss(h: Tensor) -> Tensor:
    """VICReg-style whitening ``|Cov h - I|_F^2 + |mean h|^2`` for ``h (N, D)``."""
    mean = h.mean(dim=0)  # (D,)
    centred = h - mean
    cov = centred.T @ centred / (h.shape[0] - 1)  # (D, D)
    eye = torch.eye(h.shape[1], device=h.device, dtype=h.dtype)
    return (cov - eye).pow(2).sum() + mean.pow(2).sum()


def infonce_loss(h: Tensor, temperature: float = 1.0) -> Tensor:
    """Symmetric InfoNCE between two views ``h (B, 2, D)``, logits ``-|h_i - h'_j|^2 / (2 s^2)``."""
    if h.shape[1] != 2:
        raise ValueError(f"infonce needs exactly 2 views (time steps), got {h.shape[1]}")
    a, b = h[:, 0], h[:, 1]  # (B, D)
    logits = -torch.cdist(a, b).pow(2) / (2 * temperature**2)  # (B, B)
    target = torch.arange(a.shape[0], device=h.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class Regulariser(nn.Module):
    """``z (B, T, D) -> scalar``; SIGReg's directions are seeded by the training step."""

    def __init__(self, cfg: RegulariserConfig) -> None:
        super().__init__()
        self.loss = REGULARISERS.get(cfg.name)
        self.cfg = cfg
        self.sigreg = SIGReg(cfg.num_directions, cfg.num_knots, cfg.t_max)

    def forward(self, z: Tensor, step: int | None = None) -> Tensor:
        return self.loss(self, z, step)

    def sample(self, z: Tensor) -> Tensor:
        """``(B*T, D)`` pooled, or ``(T, B, D)``: one statistic per time step, then averaged."""
        return z.reshape(-1, z.shape[-1]) if self.cfg.pooled else z.transpose(0, 1)


def _sigreg(reg: Regulariser, z: Tensor, step: int | None) -> Tensor:
    return reg.sigreg(reg.sample(z), step=step)


def _whitening(reg: Regulariser, z: Tensor, step: int | None) -> Tensor:
    sample = reg.sample(z)
    steps = [sample] if reg.cfg.pooled else list(sample)
    return torch.stack([whitening_loss(s) for s in steps]).mean()


def _infonce(reg: Regulariser, z: Tensor, step: int | None) -> Tensor:
    return infonce_loss(z, reg.cfg.temperature)


# name -> (regulariser, z (B, T, D), step) -> scalar
REGULARISERS.add("sigreg", _sigreg)
REGULARISERS.add("whitening", _whitening)
REGULARISERS.add("infonce", _infonce)
