"""The LightningModule that trains a joint-embedding model: encoder, predictor, objective, optimiser.

It sees batches ``{"obs": (B, T, ...), "state": (B, T, S)}`` and never touches an environment.
With the ``identity`` predictor the prediction loss is plain alignment between time steps, the
action-free setting of the identifiability theory. Hyper-parameters are a plain dict so that a
checkpoint rebuilds the model from the file alone under ``weights_only`` loading.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor

from worldmodel.encoders import EncoderConfig, build_encoder
from worldmodel.objectives import JointEmbeddingObjective, ObjectiveConfig

__all__ = ["JEPAModule", "OptimConfig", "cosine_after_constant"]

PREDICTORS = ("identity",)


@dataclass
class OptimConfig:
    """AdamW; the learning rate is constant for ``constant_fraction`` of training, then cosine."""

    lr: float = 3e-3
    weight_decay: float = 0.0
    constant_fraction: float = 0.5


def cosine_after_constant(step: int, total: int, constant_fraction: float) -> float:
    """LR multiplier: 1 for the first ``constant_fraction * total`` steps, then cosine to 0."""
    start = int(constant_fraction * total)
    if step < start or total <= start:
        return 1.0
    progress = min((step - start) / (total - start), 1.0)
    return 0.5 * (1 + math.cos(math.pi * progress))


class JEPAModule(L.LightningModule):
    """Encoder + predictor trained with a joint-embedding objective.

    Args:
        obs_dim: flat observation size the encoder reads.
        latent_dim: ``D``.
        encoder, objective, optim: plain dicts of ``EncoderConfig``, ``ObjectiveConfig``,
            ``OptimConfig`` fields.
        predictor: ``"identity"`` (alignment).
        max_steps: length of training, for the learning-rate schedule.
    """

    def __init__(
        self,
        obs_dim: int,
        latent_dim: int,
        encoder: dict[str, Any],
        objective: dict[str, Any],
        optim: dict[str, Any],
        predictor: str = "identity",
        max_steps: int = 1000,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if predictor not in PREDICTORS:
            raise ValueError(f"unknown predictor {predictor!r}; choose one of {list(PREDICTORS)}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.encoder = build_encoder(EncoderConfig(**encoder), obs_dim, latent_dim)
        self.objective = JointEmbeddingObjective(ObjectiveConfig(**objective))
        self.optim_cfg = OptimConfig(**optim)

    def encode(self, obs: Tensor) -> Tensor:
        """``obs (B, T, obs_dim) -> h (B, T, D)``."""
        return self.encoder(obs)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        h = self.encode(batch["obs"])  # (B, T, D)
        losses = self.objective(h, step=self.global_step)
        loss = losses.pop("loss")
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()})
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        optimizer = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = self.hparams.max_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_after_constant(step, total, cfg.constant_fraction)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @classmethod
    def from_configs(
        cls,
        obs_dim: int,
        latent_dim: int,
        encoder: EncoderConfig,
        objective: ObjectiveConfig,
        optim: OptimConfig,
        predictor: str = "identity",
        max_steps: int = 1000,
    ) -> JEPAModule:
        """Build from config dataclasses (stored as plain dicts in the checkpoint)."""
        return cls(obs_dim, latent_dim, asdict(encoder), asdict(objective), asdict(optim),
                   predictor, max_steps)
