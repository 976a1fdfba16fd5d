"""Latent statistics during training: SIGReg against its floor, spread, effective rank, collapse.

A LeJEPA latent should look like N(0, I): SIGReg near its null value (~1.05 for the default
quadrature), every coordinate with unit spread, and a full effective rank. A collapsing
encoder shows up here first, as shrinking per-dimension std and effective rank.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch import Tensor

from worldmodel.sigreg import expected_null_value

__all__ = ["LatentStats", "effective_rank", "latent_statistics"]

log = logging.getLogger(__name__)


def effective_rank(z: Tensor) -> float:
    """``exp(entropy)`` of the normalised singular values of centred ``z (N, D)``; in [1, D]."""
    s = torch.linalg.svdvals(z.double() - z.double().mean(0))
    p = s / s.sum().clamp_min(1e-300)
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def latent_statistics(z: Tensor) -> dict[str, float]:
    """Spread and rank of latents ``z (N, D)``."""
    std, rank = z.double().std(0), effective_rank(z)
    return {"std_mean": float(std.mean()), "std_min": float(std.min()),
            "std_max": float(std.max()), "effective_rank": rank,
            "effective_rank_fraction": rank / z.shape[1]}


class LatentStats(L.Callback):
    """Every ``every_n_steps``: log ``train/latent_*`` and warn once when the latent collapses.

    Reads the latents ``(B, T, D)`` that ``training_step`` returns beside the loss.
    Collapse: some coordinate's std under ``min_std`` or effective rank under
    ``min_rank_fraction`` of ``D`` (``trainer.collapse_rank_fraction``). A state with far
    fewer dimensions than the latent, under a deliberately weak SIGReg, sits at or under the
    default quarter by design (point_mass: 2-D state, rank 5-8 of 32).
    """

    def __init__(self, every_n_steps: int = 100, min_std: float = 0.05,
                 min_rank_fraction: float = 0.25) -> None:
        if not 0.0 < min_rank_fraction <= 1.0:
            raise ValueError(f"the collapse rank fraction (trainer.collapse_rank_fraction) must "
                             f"be in (0, 1], got {min_rank_fraction}")
        self.every_n_steps, self.min_std = every_n_steps, min_std
        self.min_rank_fraction = min_rank_fraction
        self.null_value = expected_null_value()
        self.warned = False
        self.last: dict[str, float] = {}
        self._latest: Tensor | None = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        z = outputs.get("latents") if isinstance(outputs, dict) else None
        if z is None:
            raise TypeError("LatentStats needs training_step to return {'loss', 'latents'} "
                            "(JEPAModule does)")
        self._latest = z
        if trainer.global_step % self.every_n_steps == 0:
            module.log_dict({f"train/latent_{k}": v for k, v in self._measure(z, trainer).items()})

    def on_train_end(self, trainer, module) -> None:
        if self._latest is not None:  # the last training batch's latents, in train mode
            self._measure(self._latest, trainer)

    def _measure(self, z: Tensor, trainer) -> dict[str, float]:
        stats = latent_statistics(z.flatten(0, 1).float())
        stats["sigreg_null_value"] = self.null_value
        self.last = stats
        dead = stats["std_min"] < self.min_std
        low_rank = stats["effective_rank_fraction"] < self.min_rank_fraction
        if (dead or low_rank) and not self.warned:
            self.warned = True
            if dead:
                why = f"min per-dimension std {stats['std_min']:.3g} (want ~1, warns under " \
                      f"{self.min_std:g})"
                fix = ("Raise loss.regulariser_weight (SIGReg), lower optim.lr, or check the "
                       "data varies.")
            else:
                why = f"effective rank {stats['effective_rank']:.1f} of {z.shape[-1]} (warns " \
                      f"under {self.min_rank_fraction:.3g} of the latent)"
                fix = ("Raise loss.regulariser_weight, or, where the state has far fewer "
                       "dimensions than the latent and a weak SIGReg is deliberate, lower "
                       "trainer.collapse_rank_fraction.")
            log.warning("latent collapse at step %d: %s. %s", trainer.global_step, why, fix)
        return stats
