"""The one encoder registry: vector encoders (synthetic worlds) and pixel encoders (MuJoCo frames).

Every encoder maps a flat batch of observations to features: vectors ``(N, n) -> (N, F)``,
pixels ``uint8 (N, H, W, 3) -> (N, F)`` (``JEPAWorldModel.encode`` flattens batch and time). Vector encoders are the paper's MLP (hidden blocks of
Linear + GELU, linear read-out) and the exact inverse-coupling architecture matched to the
RealNVP mixing; the pixel bodies live in ``worldmodel.vision``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from common.registry import Registry
from worldmodel.mixings import coupling_halves
from worldmodel.vision import PIXEL_ENCODERS

__all__ = ["ENCODERS", "PIXEL_ENCODERS", "VECTOR_ENCODERS", "CouplingInverseEncoder",
           "EncoderSpec", "MLPEncoder", "build_encoder", "is_pixel_encoder"]


@dataclass(frozen=True)
class EncoderSpec:
    """What an encoder is built from: the input shape and the output width.

    ``observation_shape`` is ``(n,)`` for vectors or ``(H, W, 3)`` for pixels; ``width`` and
    ``layers`` size the MLP (``layers`` also counts couplings); ``init_std`` scales the
    coupling inverse's random initial weights (0 = the identity map).
    """

    observation_shape: tuple[int, ...]
    out_dim: int
    width: int = 256
    layers: int = 4
    init_std: float = 0.0
    vit: tuple[int, int, int] = (192, 12, 3)  # the vit encoder's width, depth and heads


class MLPEncoder(nn.Module):
    """``layers`` hidden Linear+GELU blocks of width ``hidden_dim``, then a linear read-out."""

    def __init__(self, input_dim: int, out_dim: int, hidden_dim: int = 256, layers: int = 4):
        super().__init__()
        if layers < 1:
            raise ValueError(f"the mlp encoder needs model.encoder_layers >= 1, got {layers}")
        blocks: list[nn.Module] = []
        width = input_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_dim), nn.GELU()]
            width = hidden_dim
        blocks.append(nn.Linear(width, out_dim))
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

    def __init__(self, input_dim: int, latent_dim: int, layers: int = 4, init_std: float = 0.0):
        super().__init__()
        if input_dim != latent_dim:
            raise ValueError(f"coupling_inverse maps n -> n: needs the observation size "
                             f"({input_dim}) to equal model.latent_dim ({latent_dim})")
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


def _mlp(spec: EncoderSpec) -> nn.Module:
    return MLPEncoder(spec.observation_shape[0], spec.out_dim, spec.width, spec.layers)


def _coupling(spec: EncoderSpec) -> nn.Module:
    return CouplingInverseEncoder(spec.observation_shape[0], spec.out_dim, spec.layers,
                                  spec.init_std)


def _pixel(name: str) -> Callable[[EncoderSpec], nn.Module]:
    def build(spec: EncoderSpec) -> nn.Module:
        extra = spec.vit if name == "vit" else ()  # width, depth, heads
        return PIXEL_ENCODERS.get(name)(spec.observation_shape[0], spec.out_dim, *extra)
    return build


VECTOR_ENCODERS = ("mlp", "coupling_inverse")
# name -> EncoderSpec -> encoder: the vector encoders, then every pixel one
ENCODERS: Registry[Callable[[EncoderSpec], nn.Module]] = Registry("encoder", "model.encoder")
ENCODERS.add("mlp", _mlp)
ENCODERS.add("coupling_inverse", _coupling)
for _name in PIXEL_ENCODERS:
    ENCODERS.add(_name, _pixel(_name))


def is_pixel_encoder(name: str) -> bool:
    """Whether ``name`` reads frames ``(H, W, 3)`` (else flat vectors)."""
    return name in PIXEL_ENCODERS


def build_encoder(name: str, spec: EncoderSpec) -> nn.Module:
    """The encoder called ``name``, checked against the observations it will read."""
    build = ENCODERS.get(name)
    shape: Sequence[int] = spec.observation_shape
    if is_pixel_encoder(name):
        if len(shape) != 3 or shape[0] != shape[1] or shape[2] != 3:
            raise ValueError(f"the pixel encoder {name!r} reads square RGB frames (H, H, 3), "
                             f"but the data has observations of shape {tuple(shape)}; use a "
                             f"vector encoder ({list(VECTOR_ENCODERS)})")
    elif len(shape) != 1:
        raise ValueError(f"the vector encoder {name!r} reads flat vectors, but the data has "
                         f"observations of shape {tuple(shape)}; use a pixel encoder "
                         f"({list(PIXEL_ENCODERS)})")
    return build(spec)
