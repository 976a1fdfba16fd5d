"""``JEPAWorldModel``: pixel encoder + BatchNorm projector + action-conditioned predictor.

Shapes (DESIGN.md section 3): ``encode(pixels (B, T, H, W, 3) uint8) -> (B, T, D)``;
``predict(z (B, T, D), actions (B, T, A)) -> (B, T, D)``, output ``t`` predicting ``z[t+1]``;
``rollout(z_ctx (B, T0, D), actions (B, T0-1+H, A)) -> (B, T0+H, D)``. ``A`` is the size of
an action block (frameskip x env action size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from worldmodel.predictors import build_predictor
from worldmodel.vision import build_pixel_encoder

__all__ = ["JEPAWorldModel", "WorldModelConfig"]


@dataclass
class WorldModelConfig:
    """Sizes of the world model (the predictor's context length comes from the data config)."""

    encoder: str = "conv"
    feature_dim: int = 256
    projector_dim: int = 512
    latent_dim: int = 32
    predictor: str = "mlp"
    predictor_hidden: int = 512
    predictor_layers: int = 3


class JEPAWorldModel(nn.Module):
    """Encoder, projector and predictor of a LeJEPA world model.

    The projector (Linear, BatchNorm, GELU, Linear) maps encoder features to the latent on
    which SIGReg acts; no LayerNorm at its end, which would fight the Gaussian target.
    """

    def __init__(self, cfg: WorldModelConfig, image_size: int, action_dim: int,
                 history: int = 3) -> None:
        super().__init__()
        self.cfg, self.image_size, self.action_dim = cfg, image_size, action_dim
        self.encoder = build_pixel_encoder(cfg.encoder, image_size, cfg.feature_dim)
        self.projector = nn.Sequential(
            nn.Linear(cfg.feature_dim, cfg.projector_dim), nn.BatchNorm1d(cfg.projector_dim),
            nn.GELU(), nn.Linear(cfg.projector_dim, cfg.latent_dim))
        self.predictor = build_predictor(cfg.predictor, cfg.latent_dim, action_dim, history,
                                         cfg.predictor_hidden, cfg.predictor_layers)

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    def encode(self, pixels: Tensor) -> Tensor:
        """``uint8 (B, T, H, W, 3) -> (B, T, D)``."""
        if pixels.dim() != 5:
            raise ValueError(f"encode expects pixels (B, T, H, W, 3), got {tuple(pixels.shape)}")
        B, T = pixels.shape[:2]
        features = self.encoder(pixels.flatten(0, 1))  # (B*T, F)
        return self.projector(features).float().view(B, T, -1)  # (B, T, D)

    def predict(self, z: Tensor, actions: Tensor) -> Tensor:
        """Teacher-forced, causal: ``(B, T, D), (B, T, A) -> (B, T, D)``; out[t] ~ z[t+1]."""
        if z.shape[:2] != actions.shape[:2] or actions.shape[-1] != self.action_dim:
            raise ValueError(f"predict expects z (B, T, D) and actions (B, T, {self.action_dim}), "
                             f"got {tuple(z.shape)} and {tuple(actions.shape)}")
        return self.predictor(z, actions).float()

    def rollout(self, z_ctx: Tensor, actions: Tensor) -> Tensor:
        """Autoregressive: ``(B, T0, D), (B, T0-1+H, A) -> (B, T0+H, D)``."""
        T0, horizon = z_ctx.shape[1], actions.shape[1] - z_ctx.shape[1] + 1
        if horizon < 1:
            raise ValueError(f"rollout needs at least T0 = {T0} actions, got {actions.shape[1]}")
        if actions.shape[-1] != self.action_dim:
            raise ValueError(f"rollout expects action blocks of size {self.action_dim}, got "
                             f"{actions.shape[-1]}")
        h = self.predictor.history
        frames = list(z_ctx.unbind(1))  # T0 x (B, D); no in-place writes, so autograd-safe
        for t in range(T0, T0 + horizon):
            start = max(0, t - h)  # the predictor only looks h steps back
            window = torch.stack(frames[start:t], dim=1)  # (B, <=h, D)
            frames.append(self.predictor.step(window, actions[:, start:t]).float())
        return torch.stack(frames, dim=1)  # (B, T0+H, D)
