"""Action-conditioned latent predictors: ``predict(z (B, T, D), a (B, T, A)) -> (B, T, D)``.

Output ``t`` predicts ``z[t + 1]`` from ``z[<= t]`` and ``a[<= t]`` only (causal).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PREDICTORS", "IdentityPredictor", "MLPPredictor", "build_predictor"]


class MLPPredictor(nn.Module):
    """Residual MLP over the last ``history`` latents and action blocks.

    ``z[t+1] = z[t] + MLP([z[t-h+1..t], a[t-h+1..t]])``; before the start of the sequence the
    first latent is repeated and the actions are zero.
    """

    def __init__(self, latent_dim: int, action_dim: int, history: int = 3,
                 hidden_dim: int = 512, layers: int = 3):
        super().__init__()
        if history < 1 or layers < 1:
            raise ValueError(f"history and layers must be >= 1, got {history}, {layers}")
        self.history = history
        blocks: list[nn.Module] = []
        width = history * (latent_dim + action_dim)
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_dim), nn.GELU()]
            width = hidden_dim
        out = nn.Linear(width, latent_dim)
        nn.init.zeros_(out.weight)  # start as "nothing changes": z[t+1] = z[t]
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*blocks, out)

    def forward(self, z: Tensor, actions: Tensor) -> Tensor:
        B, T, _ = z.shape
        h = self.history
        z_pad = torch.cat([z[:, :1].expand(B, h - 1, -1), z], dim=1)  # (B, T+h-1, D)
        a_pad = F.pad(actions, (0, 0, h - 1, 0))  # (B, T+h-1, A)
        ctx = torch.cat([z_pad, a_pad], dim=-1).unfold(1, h, 1)  # (B, T, D+A, h)
        ctx = ctx.transpose(2, 3).reshape(B, T, -1)  # (B, T, h*(D+A)), oldest first
        return z + self.net(ctx)  # (B, T, D)


class IdentityPredictor(nn.Module):
    """``z[t+1] = z[t]``: the action-free alignment setting of the theory."""

    history = 1

    def forward(self, z: Tensor, actions: Tensor) -> Tensor:
        return z


PREDICTORS = ("mlp", "identity")


def build_predictor(name: str, latent_dim: int, action_dim: int, history: int,
                    hidden_dim: int, layers: int) -> nn.Module:
    """The predictor called ``name``."""
    if name == "mlp":
        return MLPPredictor(latent_dim, action_dim, history, hidden_dim, layers)
    if name == "identity":
        return IdentityPredictor()
    raise ValueError(f"unknown predictor {name!r}; choose one of {list(PREDICTORS)}")
