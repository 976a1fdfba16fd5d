"""``JEPAWorldModel``: encoder -> projector -> action-conditioned predictor, for any observation.

Shapes (DESIGN.md section 3): ``encode(obs (B, T, *O)) -> (B, T, D)`` where ``O`` is
``(H, W, 3)`` uint8 pixels or ``(n,)`` vectors; ``predict(z (B, T, D), actions (B, T, A)) ->
(B, T, D)``, output ``t`` predicting ``z[t+1]``; ``rollout(z_ctx (B, T0, D), actions
(B, T0-1+H, A)) -> (B, T0+H, D)``. ``A`` is the size of an action block (frameskip x env
action size; 0 for the action-free synthetic worlds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from common.checks import require_at_least
from worldmodel.encoders import ENCODERS, EncoderSpec, build_encoder
from worldmodel.predictors import PREDICTORS, build_predictor

__all__ = ["PROJECTORS", "JEPAWorldModel", "ModelConfig", "build_projector"]

PROJECTORS = ("batchnorm", "linear", "none")


@dataclass
class ModelConfig:
    """The composition and its sizes (the predictor's context length comes from the data).

    ``encoder`` is any name of ``worldmodel.encoders.ENCODERS`` (pixel or vector);
    ``encoder_width`` / ``encoder_layers`` / ``encoder_init_std`` size the vector encoders;
    ``vit_width`` / ``vit_depth`` / ``vit_heads`` the ``vit`` encoder (ViT-tiny by default).
    ``projector``: ``batchnorm`` (Linear, BatchNorm, GELU, Linear: what SIGReg acts on in the
    pixel world model), ``linear`` (GELU, Linear: the paper's pixel encoder head) or ``none``
    (the encoder maps straight to the latent; the synthetic protocol's MLP).
    """

    encoder: str = "conv"
    encoder_width: int = 256
    encoder_layers: int = 4
    encoder_init_std: float = 0.0
    feature_dim: int = 256
    projector: str = "batchnorm"
    projector_dim: int = 512
    latent_dim: int = 32
    predictor: str = "mlp"
    predictor_hidden: int = 512
    predictor_layers: int = 3
    vit_width: int = 192
    vit_depth: int = 12
    vit_heads: int = 3

    def __post_init__(self) -> None:
        ENCODERS.get(self.encoder)  # an unknown name is refused, naming the choices
        PREDICTORS.get(self.predictor)
        if self.projector not in PROJECTORS:
            raise ValueError(f"unknown model.projector {self.projector!r}; choose one of "
                             f"{list(PROJECTORS)}")
        if self.latent_dim < 1:
            raise ValueError(f"model.latent_dim must be >= 1, got {self.latent_dim}")
        require_at_least("model", self, {"encoder_width": 1, "encoder_layers": 1,
                                         "feature_dim": 1, "projector_dim": 1,
                                         "predictor_hidden": 1, "predictor_layers": 1,
                                         "vit_width": 1, "vit_depth": 1, "vit_heads": 1})
        if self.vit_width % self.vit_heads:
            raise ValueError(f"model.vit_width={self.vit_width} must be a multiple of "
                             f"model.vit_heads={self.vit_heads}")


def build_projector(cfg: ModelConfig) -> nn.Module:
    """Features ``(N, F)`` -> latents ``(N, D)``; no LayerNorm at the end (it fights SIGReg)."""
    if cfg.projector == "batchnorm":
        return nn.Sequential(
            nn.Linear(cfg.feature_dim, cfg.projector_dim), nn.BatchNorm1d(cfg.projector_dim),
            nn.GELU(), nn.Linear(cfg.projector_dim, cfg.latent_dim))
    if cfg.projector == "linear":
        return nn.Sequential(nn.GELU(), nn.Linear(cfg.feature_dim, cfg.latent_dim))
    return nn.Identity()


class JEPAWorldModel(nn.Module):
    """Encoder, projector and predictor of a LeJEPA world model.

    Args:
        cfg: the composition.
        observation_shape: one observation, ``(H, W, 3)`` or ``(n,)``.
        action_dim: size of an action block (0 without actions).
        history: context length of the predictor.
    """

    def __init__(self, cfg: ModelConfig, observation_shape: Sequence[int], action_dim: int,
                 history: int = 3) -> None:
        super().__init__()
        self.cfg, self.action_dim = cfg, action_dim
        self.observation_shape = tuple(int(s) for s in observation_shape)
        out = cfg.latent_dim if cfg.projector == "none" else cfg.feature_dim
        spec = EncoderSpec(self.observation_shape, out, cfg.encoder_width, cfg.encoder_layers,
                           cfg.encoder_init_std,
                           vit=(cfg.vit_width, cfg.vit_depth, cfg.vit_heads))
        self.encoder = build_encoder(cfg.encoder, spec)
        self.projector = build_projector(cfg)
        self.predictor = build_predictor(cfg.predictor, cfg.latent_dim, action_dim, history,
                                         cfg.predictor_hidden, cfg.predictor_layers)

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    @property
    def image_size(self) -> int | None:
        """The side of the frames this model reads, or None for vector observations."""
        return self.observation_shape[0] if len(self.observation_shape) == 3 else None

    def encode(self, obs: Tensor) -> Tensor:
        """``(B, T, *O) -> (B, T, D)``."""
        k = len(self.observation_shape)
        if obs.dim() != k + 2 or tuple(obs.shape[2:]) != self.observation_shape:
            raise ValueError(f"encode expects observations (B, T, {self.observation_shape}), "
                             f"got {tuple(obs.shape)}")
        B, T = obs.shape[:2]
        features = self.encoder(obs.flatten(0, 1))  # (B*T, F)
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
