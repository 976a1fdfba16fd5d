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

__all__ = ["ENCODERS", "CouplingInverseEncoder", "EncoderConfig", "MLPEncoder", "build_encoder"]


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


ENCODERS = ("mlp", "coupling_inverse")


def build_encoder(cfg: EncoderConfig, obs_dim: int, latent_dim: int) -> nn.Module:
    """The encoder named by ``cfg.name`` for flat observations of size ``obs_dim``."""
    if cfg.name == "mlp":
        return MLPEncoder(obs_dim, latent_dim, cfg.hidden_dim, cfg.layers)
    if cfg.name == "coupling_inverse":
        return CouplingInverseEncoder(obs_dim, latent_dim, cfg.layers, cfg.init_std)
    raise ValueError(f"unknown encoder {cfg.name!r}; choose one of {list(ENCODERS)}")
