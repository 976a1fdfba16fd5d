"""Action-conditioned latent predictors: ``predict(z (B, T, D), a (B, T, A)) -> (B, T, D)``.

Output ``t`` predicts ``z[t + 1]`` from ``z[<= t]`` and ``a[<= t]`` only (causal).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.registry import Registry

__all__ = ["PREDICTORS", "AdaLNZeroBlock", "IdentityPredictor", "MLPPredictor",
           "TransformerPredictor", "build_predictor"]


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

    def step(self, z: Tensor, actions: Tensor) -> Tensor:
        """Only the next latent after ``z (B, T, D)``: ``(B, D)``, one context instead of T."""
        h, T = self.history, z.shape[1]
        if T < h:  # pad as ``forward`` does before the start of the sequence
            z = torch.cat([z[:, :1].expand(-1, h - T, -1), z], dim=1)
            actions = F.pad(actions, (0, 0, h - T, 0))
        ctx = torch.cat([z[:, -h:], actions[:, -h:]], dim=-1).flatten(1)  # (B, h*(D+A))
        return z[:, -1] + self.net(ctx)  # (B, D)


class AdaLNZeroBlock(nn.Module):
    """Pre-norm causal self-attention + MLP, each modulated by the action (shift, scale, gate).

    The modulation is zero-initialised, so the block starts as the identity (DiT's adaLN-zero).
    """

    def __init__(self, width: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(),
                                 nn.Linear(mlp_ratio * width, width))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.modulation[1].weight)
        nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        B, T, W = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond).chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1  # (B, T, W)
        q, k, v = self.qkv(h).view(B, T, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, heads, T, W/heads)
        x = x + gate1 * self.proj(attn.transpose(1, 2).reshape(B, T, W))
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class TransformerPredictor(nn.Module):
    """Causal transformer over latents with AdaLN-zero action conditioning (LeWM-style).

    Token ``t`` is ``z[t]`` projected to ``width`` plus a learned position embedding; the action
    block ``a[t]`` modulates every block at token ``t``. Output ``t`` is ``z[t]`` plus a
    zero-initialised read-out, so a fresh predictor predicts "no change".
    """

    def __init__(self, latent_dim: int, action_dim: int, history: int = 3, width: int = 256,
                 layers: int = 4, heads: int = 4, max_len: int = 64):
        super().__init__()
        if width % heads:
            raise ValueError(f"transformer width {width} must be divisible by heads {heads}")
        if history > max_len:
            raise ValueError(f"history {history} exceeds the position table ({max_len})")
        self.history = history
        self.embed = nn.Linear(latent_dim, width)
        self.position = nn.Parameter(torch.zeros(max_len, width))
        nn.init.normal_(self.position, std=0.02)
        self.action = nn.Sequential(nn.Linear(action_dim, width), nn.SiLU(),
                                    nn.Linear(width, width))
        self.blocks = nn.ModuleList(AdaLNZeroBlock(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.readout = nn.Linear(width, latent_dim)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    def forward(self, z: Tensor, actions: Tensor) -> Tensor:
        T = z.shape[1]
        if T > len(self.position):
            raise ValueError(f"sequence of {T} steps exceeds the position table ({len(self.position)})")
        x = self.embed(z) + self.position[:T]  # (B, T, W)
        cond = self.action(actions)  # (B, T, W)
        for block in self.blocks:
            x = block(x, cond)
        return z + self.readout(self.norm(x))  # (B, T, D)

    def step(self, z: Tensor, actions: Tensor) -> Tensor:
        """The next latent after the last of ``z (B, T, D)``: ``(B, D)``."""
        h = self.history
        return self(z[:, -h:], actions[:, -h:])[:, -1]


class IdentityPredictor(nn.Module):
    """``z[t+1] = z[t]``: the action-free alignment setting of the theory."""

    history = 1

    def forward(self, z: Tensor, actions: Tensor) -> Tensor:
        return z

    def step(self, z: Tensor, actions: Tensor) -> Tensor:
        return z[:, -1]


# name -> (latent_dim, action_dim, history, hidden_dim, layers) -> predictor
PREDICTORS: Registry[Callable[..., nn.Module]] = Registry("predictor", "model.predictor")
PREDICTORS.add("mlp", MLPPredictor)
PREDICTORS.add("transformer", TransformerPredictor)
PREDICTORS.add("identity", lambda *sizes: IdentityPredictor())


def build_predictor(name: str, latent_dim: int, action_dim: int, history: int,
                    hidden_dim: int, layers: int) -> nn.Module:
    """The predictor called ``name``."""
    return PREDICTORS.get(name)(latent_dim, action_dim, history, hidden_dim, layers)
