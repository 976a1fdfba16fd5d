"""Joint-embedding objectives on views ``h (B, V, D)``: LeJEPA (SIGReg), whitening and InfoNCE.

The synthetic protocol of SCIENCE.md section 4 weighs alignment against the regulariser as
``lam * reg(h pooled over views) + (1 - lam) * mean((h_v - mean_v h)^2)``; InfoNCE is the
contrastive baseline and has no separate regulariser.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.sigreg import SIGReg

__all__ = [
    "OBJECTIVES",
    "JointEmbeddingObjective",
    "ObjectiveConfig",
    "alignment_loss",
    "infonce_loss",
    "whitening_loss",
]


@dataclass
class ObjectiveConfig:
    """``name`` in OBJECTIVES; ``lam`` the regulariser weight; SIGReg and InfoNCE knobs."""

    name: str = "sigreg"
    lam: float = 0.1
    num_directions: int = 256
    num_knots: int = 17
    t_max: float = 3.0
    temperature: float = 1.0


def alignment_loss(h: Tensor) -> Tensor:
    """``mean((h_v - mean_v h)^2)`` over batch, views and dims for ``h (B, V, D)``."""
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
        raise ValueError(f"infonce needs exactly 2 views, got {h.shape[1]}")
    a, b = h[:, 0], h[:, 1]  # (B, D)
    logits = -torch.cdist(a, b).pow(2) / (2 * temperature**2)  # (B, B)
    target = torch.arange(a.shape[0], device=h.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


OBJECTIVES = ("sigreg", "whitening", "infonce")


class JointEmbeddingObjective(nn.Module):
    """Loss on ``h (B, V, D)``; returns a dict with ``loss`` and its logged parts."""

    def __init__(self, cfg: ObjectiveConfig) -> None:
        super().__init__()
        if cfg.name not in OBJECTIVES:
            raise ValueError(f"unknown objective {cfg.name!r}; choose one of {list(OBJECTIVES)}")
        if not 0.0 <= cfg.lam <= 1.0:
            raise ValueError(f"objective.lam must lie in [0, 1], got {cfg.lam}")
        self.cfg = cfg
        self.sigreg = SIGReg(cfg.num_directions, cfg.num_knots, cfg.t_max)

    def forward(self, h: Tensor, step: int | None = None) -> dict[str, Tensor]:
        align = alignment_loss(h)
        pooled = h.reshape(-1, h.shape[-1])  # (B * V, D)
        out = {"align": align}
        if self.cfg.name == "infonce":
            out["infonce"] = infonce_loss(h, self.cfg.temperature)
            out["loss"] = out["infonce"]
        elif self.cfg.name == "whitening":
            out["whitening"] = whitening_loss(pooled)
            out["loss"] = self.cfg.lam * out["whitening"] + (1 - self.cfg.lam) * align
        else:
            out["sigreg"] = self.sigreg(pooled, step=step)
            out["loss"] = self.cfg.lam * out["sigreg"] + (1 - self.cfg.lam) * align
        return out
