"""The fixed nonlinear mixings ``x = g(z)`` that synthetic worlds observe their latents through.

Pairwise maps (spiral, banana, sinusoid) act on coordinate pairs; RealNVP additive couplings
and random invertible MLPs act on the whole latent, with parameters drawn from a seed
(``worldmodel.synthetic`` uses them; the matched inverse encoder in ``worldmodel.encoders``
reads ``coupling_halves``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from common.registry import Registry

__all__ = ["MIXINGS", "AdditiveCoupling", "Banana", "RandomMLP", "Sinusoid", "Spiral",
           "build_mixing", "coupling_halves"]


def _pairs(z: Tensor) -> tuple[Tensor, Tensor]:
    if z.shape[-1] % 2:
        raise ValueError(f"this mixing acts on coordinate pairs; latent dim must be even, got "
                         f"{z.shape[-1]}")
    return z[..., 0::2], z[..., 1::2]


def _unpair(a: Tensor, b: Tensor) -> Tensor:
    return torch.stack([a, b], dim=-1).flatten(-2)


class Spiral(nn.Module):
    """``g(z) = R(pi * |z|) z`` on each coordinate pair; preserves N(0, I)."""

    def forward(self, z: Tensor) -> Tensor:
        a, b = _pairs(z)
        angle = math.pi * torch.sqrt(a**2 + b**2)
        c, s = angle.cos(), angle.sin()
        return _unpair(c * a - s * b, s * a + c * b)


class Banana(nn.Module):
    """``g(z) = (z0, z1 + z0^2)`` on each coordinate pair."""

    def forward(self, z: Tensor) -> Tensor:
        a, b = _pairs(z)
        return _unpair(a, b + a**2)


class Sinusoid(nn.Module):
    """``g(z) = (z0 + sin(1.5 z1), z1)`` on each coordinate pair."""

    def forward(self, z: Tensor) -> Tensor:
        a, b = _pairs(z)
        return _unpair(a + torch.sin(1.5 * b), b)


def coupling_halves(dim: int) -> tuple[int, int]:
    """Sizes of the two halves ``(a, b)`` that additive coupling layers alternate between."""
    if dim < 2:
        raise ValueError(f"coupling needs latent dim >= 2, got {dim}")
    return dim // 2, dim - dim // 2


class AdditiveCoupling(nn.Module):
    """RealNVP additive coupling: layers alternate ``z_b += tanh(z_a W)``, ``W = 2 Q``.

    ``Q`` is a random orthogonal matrix per layer; odd layers swap the roles of the halves.
    The map is volume preserving and exactly invertible.
    """

    def __init__(self, dim: int, num_layers: int, generator: torch.Generator) -> None:
        super().__init__()
        da, db = coupling_halves(dim)
        self.split = da
        self.num_layers = num_layers
        for layer in range(num_layers):
            rows, cols = (da, db) if layer % 2 == 0 else (db, da)
            size = max(rows, cols)
            q, r = torch.linalg.qr(torch.randn(size, size, generator=generator))
            q = q * torch.sign(torch.diagonal(r))  # Haar-distributed orthogonal
            self.register_buffer(f"weight{layer}", 2.0 * q[:rows, :cols].contiguous())

    def layer_weight(self, layer: int) -> Tensor:
        return getattr(self, f"weight{layer}")

    def forward(self, z: Tensor) -> Tensor:
        a, b = z[..., : self.split], z[..., self.split :]
        for layer in range(self.num_layers):
            w = self.layer_weight(layer)
            if layer % 2 == 0:
                b = b + torch.tanh(a @ w)
            else:
                a = a + torch.tanh(b @ w)
        return torch.cat([a, b], dim=-1)


class RandomMLP(nn.Module):
    """Invertible random MLP: orthogonal square layers with leaky-ReLU (slope 0.5)."""

    def __init__(self, dim: int, num_layers: int, generator: torch.Generator) -> None:
        super().__init__()
        mats = []
        for _ in range(num_layers):
            q, r = torch.linalg.qr(torch.randn(dim, dim, generator=generator))
            mats.append(q * torch.sign(torch.diagonal(r)))
        self.register_buffer("mats", torch.stack(mats))

    def forward(self, z: Tensor) -> Tensor:
        for layer, q in enumerate(self.mats):
            z = z @ q
            if layer < len(self.mats) - 1:
                z = nn.functional.leaky_relu(z, 0.5)
        return z


# name -> (dim, num_layers, generator) -> the fixed mixing g
MIXINGS: Registry[Callable[[int, int, torch.Generator], nn.Module]] = Registry(
    "mixing", "world.mixing")
MIXINGS.add("identity", lambda dim, layers, generator: nn.Identity())
MIXINGS.add("spiral", lambda dim, layers, generator: Spiral())
MIXINGS.add("banana", lambda dim, layers, generator: Banana())
MIXINGS.add("sinusoid", lambda dim, layers, generator: Sinusoid())
MIXINGS.add("realnvp", AdditiveCoupling)
MIXINGS.add("random_mlp", RandomMLP)


def build_mixing(name: str, dim: int, num_layers: int = 4, seed: int = 0) -> nn.Module:
    """The fixed mixing ``g`` named ``name`` (one of ``MIXINGS``) for latent dim ``dim``."""
    build = MIXINGS.get(name)
    return build(dim, num_layers, torch.Generator().manual_seed(seed))
