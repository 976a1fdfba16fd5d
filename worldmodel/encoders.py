"""Encoders ``f`` mapping observations to latents, applied over any leading (batch, time) dims.

Vector encoders for the identifiability lab: the paper's MLP (4 x 256, GELU) and the exact
inverse-coupling architecture matched to the RealNVP mixing. Pixel encoders join this registry
in later work; every encoder maps ``(*, obs_dim) -> (*, latent_dim)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from worldmodel.synthetic import coupling_halves

__all__ = ["ENCODERS", "CouplingInverseEncoder", "EncoderConfig", "MLPEncoder", "PixelEncoder",
           "build_encoder"]


@dataclass
class EncoderConfig:
    """Which encoder and its size. ``layers`` means hidden layers (mlp) or couplings.

    ``hidden_dim`` is the MLP width; ``init_std`` the scale of the ``coupling_inverse``
    encoder's random initial weights, ``N(0, init_std^2 / fan_in)`` (0 = the identity map).
    """

    name: str = "mlp"
    hidden_dim: int = 256
    layers: int = 4
    init_std: float = 0.0


class MLPEncoder(nn.Module):
    """``layers`` hidden Linear+GELU blocks of width ``hidden_dim``, then a linear read-out."""

    def __init__(self, obs_dim: int, latent_dim: int, hidden_dim: int = 256, layers: int = 4):
        super().__init__()
        if layers < 1:
            raise ValueError(f"mlp encoder needs layers >= 1, got {layers}")
        blocks: list[nn.Module] = []
        width = obs_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_dim), nn.GELU()]
            width = hidden_dim
        blocks.append(nn.Linear(width, latent_dim))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class CouplingInverseEncoder(nn.Module):
    """Learnable additive couplings in the reverse order of ``AdditiveCoupling``.

    Layer ``l`` undoes mixing layer ``L - 1 - l``: ``x_b += tanh(x_a V)`` (or the swapped halves),
    so ``V = -W`` recovers the latent exactly. Volume preserving, hence it cannot collapse;
    initialised at ``V = 0`` (the identity map) or, with ``init_std > 0``, at random weights:
    in low dimension (N <= 8) the exact form has local minima, and random restarts ranked by
    the label-free alignment loss can find the global one.
    """

    def __init__(self, obs_dim: int, latent_dim: int, layers: int = 4, init_std: float = 0.0):
        super().__init__()
        if obs_dim != latent_dim:
            raise ValueError(
                f"coupling_inverse needs obs_dim == latent_dim, got {obs_dim} and {latent_dim}"
            )
        da, db = coupling_halves(latent_dim)
        self.split = da
        # mixing layer k updates b from a when k is even; we walk k = L-1 ... 0.
        self.updates_b = [(layers - 1 - l) % 2 == 0 for l in range(layers)]
        shapes = [(da, db) if upd_b else (db, da) for upd_b in self.updates_b]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(shape) * init_std / shape[0] ** 0.5) for shape in shapes)

    def forward(self, x: Tensor) -> Tensor:
        a, b = x[..., : self.split], x[..., self.split :]
        for upd_b, v in zip(self.updates_b, self.weights):
            if upd_b:
                b = b + torch.tanh(a @ v)
            else:
                a = a + torch.tanh(b @ v)
        return torch.cat([a, b], dim=-1)


class PixelEncoder(nn.Module):
    """A pixel encoder body (``conv``, ``deep_conv``, ``vit``), GELU, linear to the latent.

    Maps ``uint8 (*, H, W, 3)`` frames to ``(*, latent_dim)`` over any leading dims, like the
    vector encoders (the paper's pixel encoder: deep conv, pool, MLP to 2-D).
    """

    def __init__(self, name: str, image_size: int, latent_dim: int, hidden_dim: int = 256):
        super().__init__()
        from worldmodel.vision import build_pixel_encoder

        self.body = build_pixel_encoder(name, image_size, hidden_dim)
        self.head = nn.Sequential(nn.GELU(), nn.Linear(hidden_dim, latent_dim))

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-3]
        h = self.head(self.body(x.reshape(-1, *x.shape[-3:])))  # (N, latent)
        return h.float().view(*lead, -1)


ENCODERS = ("mlp", "coupling_inverse", "conv", "deep_conv", "vit")


def build_encoder(cfg: EncoderConfig, obs_dim: int, latent_dim: int) -> nn.Module:
    """The encoder named by ``cfg.name``; ``obs_dim`` is the flat size, or the image side."""
    if cfg.name in ("conv", "deep_conv", "vit"):
        return PixelEncoder(cfg.name, obs_dim, latent_dim, cfg.hidden_dim)
    if cfg.name == "mlp":
        return MLPEncoder(obs_dim, latent_dim, cfg.hidden_dim, cfg.layers)
    if cfg.name == "coupling_inverse":
        return CouplingInverseEncoder(obs_dim, latent_dim, cfg.layers, cfg.init_std)
    raise ValueError(f"unknown encoder {cfg.name!r}; choose one of {list(ENCODERS)}")
