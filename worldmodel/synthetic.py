"""Synthetic worlds of the identifiability theory: latent laws, OU transitions, the world.

A world draws latents ``z (B, n)`` from a source law with independent unit-variance
coordinates, takes one stationary additive-noise step ``z' = rho * z + sqrt(1 - rho^2) * eta``
(``rho`` shared or per coordinate, ``eta`` from the same law) and observes both through a fixed
nonlinear mixing ``x = g(z)`` (``worldmodel.mixings``). Batches are streamed fresh, never
stored (``worldmodel.streams``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from common.checks import require_at_least
from common.registry import Registry
from envs.meta import ModelMeta
from worldmodel.mixings import build_mixing

__all__ = [
    "LATENT_LAWS",
    "SyntheticWorld",
    "SyntheticWorldConfig",
    "action_free_meta",
    "sample_latents",
]


GENNORM_SCALES = ("unit_variance", "unit_scale")


def _gennorm(shape: tuple[int, ...], alpha: float, generator: torch.Generator,
             scale: str = "unit_variance") -> Tensor:
    """Generalised normal, density ~ exp(-|x / s|^alpha).

    ``scale="unit_variance"`` picks ``s`` for unit variance (the default: every law has the
    Gaussian's variance); ``"unit_scale"`` is ``s = 1`` (scipy's ``gennorm`` convention), whose
    variance ``G(3/alpha) / G(1/alpha)`` is ~6.6e6 at alpha = 0.25 and 0.31 at alpha = 16.
    """
    if alpha <= 0:
        raise ValueError(f"generalised-normal shape alpha must be > 0, got {alpha}")
    if scale not in GENNORM_SCALES:
        raise ValueError(f"unknown generalised-normal scale {scale!r}; choose one of "
                         f"{list(GENNORM_SCALES)}")
    # |x / s|^alpha ~ Gamma(1 / alpha); unit variance needs s^2 = G(1/alpha) / G(3/alpha).
    log_scale = (0.5 * (math.lgamma(1.0 / alpha) - math.lgamma(3.0 / alpha))
                 if scale == "unit_variance" else 0.0)
    concentration = torch.full(shape, 1.0 / alpha, dtype=torch.float64)
    gamma = torch._standard_gamma(concentration, generator=generator)
    sign = torch.randint(0, 2, shape, generator=generator, dtype=torch.float64) * 2 - 1
    return (sign * math.exp(log_scale) * gamma.pow(1.0 / alpha)).float()


def _uniform(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * math.sqrt(3.0)


def _laplace(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    return _gennorm(shape, 1.0, generator)


# name -> (shape, alpha, generator, scale) -> independent coordinates
LATENT_LAWS: Registry[Callable[..., Tensor]] = Registry("latent law", "world.law")
LATENT_LAWS.add("gaussian", lambda shape, alpha, g, scale: torch.randn(shape, generator=g))
LATENT_LAWS.add("gennorm", lambda shape, alpha, g, scale: _gennorm(shape, alpha, g, scale))
LATENT_LAWS.add("laplace", lambda shape, alpha, g, scale: _laplace(shape, g))
LATENT_LAWS.add("uniform", lambda shape, alpha, g, scale: _uniform(shape, g))


def sample_latents(
    law: str, shape: tuple[int, ...], generator: torch.Generator, alpha: float = 2.0,
    scale: str = "unit_variance",
) -> Tensor:
    """Independent coordinates from ``law`` (see ``LATENT_LAWS``), unit variance unless a
    generalised normal is asked for with ``scale="unit_scale"``."""
    return LATENT_LAWS.get(law)(shape, alpha, generator, scale)


def action_free_meta(observation_shape: list[int], state_names: list[str] | None = None
                     ) -> ModelMeta:
    """The data meta of views without actions: two time steps, the identity predictor's."""
    return ModelMeta(observation_shape=tuple(observation_shape), state_names=state_names or [])


class SyntheticWorld:
    """Latent law + OU step + mixing; ``sample`` gives observation/latent pairs.

    Args:
        latent_dim: ``n``.
        law: source law name (``LATENT_LAWS``); ``alpha`` its generalised-normal shape.
        gennorm_scale: ``unit_variance`` or ``unit_scale`` (see ``_gennorm``).
        noise_law: law of the OU innovation ``eta`` (None: the source law, so that a Gaussian
            world is stationary).
        rho: OU autocorrelation, one float or a sequence of length ``n``.
        mixing: mixing name (``worldmodel.mixings.MIXINGS``); ``mixing_layers`` for realnvp /
            random_mlp.
        mixing_seed: seed of the fixed mixing parameters.
    """

    def __init__(
        self,
        latent_dim: int,
        law: str = "gaussian",
        alpha: float = 2.0,
        rho: float | list[float] = 0.95,
        mixing: str = "identity",
        mixing_layers: int = 4,
        mixing_seed: int = 0,
        gennorm_scale: str = "unit_variance",
        noise_law: str | None = None,
    ) -> None:
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        rho_t = torch.as_tensor(rho, dtype=torch.float32).flatten()
        if rho_t.numel() not in (1, latent_dim):
            raise ValueError(f"rho must be one value or {latent_dim} values, got {rho_t.numel()}")
        if ((rho_t <= 0) | (rho_t >= 1)).any():
            raise ValueError(f"rho must lie in (0, 1), got {rho_t.tolist()}")
        LATENT_LAWS.get(law)  # an unknown name is refused, naming the choices
        if noise_law is not None and noise_law not in LATENT_LAWS:
            raise ValueError(f"unknown noise law {noise_law!r}; choose one of "
                             f"{sorted(LATENT_LAWS)}, or leave it unset for the source law")
        if gennorm_scale not in GENNORM_SCALES:
            raise ValueError(f"unknown gennorm_scale {gennorm_scale!r}; choose one of "
                             f"{list(GENNORM_SCALES)}")
        self.latent_dim, self.law, self.alpha = latent_dim, law, alpha
        self.gennorm_scale, self.noise_law = gennorm_scale, noise_law or law
        self.rho = rho_t.expand(latent_dim).clone()  # (n,)
        self.mixing = build_mixing(mixing, latent_dim, mixing_layers, mixing_seed)
        self.mixing.requires_grad_(False)

    @property
    def shared_rho(self) -> float | None:
        """The common rho when all coordinates share it, else None."""
        return float(self.rho[0]) if bool((self.rho == self.rho[0]).all()) else None

    def latents(self, batch: int, generator: torch.Generator) -> Tensor:
        """Pairs of latents ``(B, 2, n)``: ``z`` and one OU step ``z'``."""
        shape = (batch, self.latent_dim)
        z = sample_latents(self.law, shape, generator, self.alpha, self.gennorm_scale)  # (B, n)
        eta = sample_latents(self.noise_law, shape, generator, self.alpha,
                             self.gennorm_scale)  # (B, n)
        z_next = self.rho * z + torch.sqrt(1 - self.rho**2) * eta  # (B, n)
        return torch.stack([z, z_next], dim=1)  # (B, 2, n)

    @torch.no_grad()
    def observe(self, z: Tensor) -> Tensor:
        """Mixed observations ``x = g(z)`` with the same leading shape as ``z``."""
        return self.mixing(z)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, Tensor]:
        """A fresh batch in the training format: ``{"obs": x (B, 2, n), "actions": (B, 2, 0),
        "states": z (B, 2, n)}`` (the views are two time steps; the world takes no actions)."""
        z = self.latents(batch, generator)
        return {"obs": self.observe(z), "actions": z.new_zeros(batch, 2, 0), "states": z}

    def to_meta(self) -> ModelMeta:
        """What a model trained on this world stores about its data (``model_meta``)."""
        return action_free_meta([self.latent_dim], [f"z{i}" for i in range(self.latent_dim)])


@dataclass
class SyntheticWorldConfig:
    """Latent law, OU transition and mixing of a synthetic world (DESIGN.md section 4)."""

    latent_dim: int = 2
    law: str = "gaussian"  # gaussian | gennorm | laplace | uniform
    alpha: float = 2.0  # generalised-normal shape (law=gennorm)
    gennorm_scale: str = "unit_variance"  # unit_variance | unit_scale (density exp(-|x|^alpha))
    noise_law: str | None = None  # law of the OU innovation; unset: the source law
    rho: float = 0.95  # shared OU autocorrelation
    rho_per_dim: list[float] | None = None  # overrides rho, one value per latent coordinate
    mixing: str = "spiral"  # identity | spiral | banana | sinusoid | realnvp | random_mlp
    mixing_layers: int = 4
    mixing_seed: int = 0

    def __post_init__(self) -> None:
        require_at_least("world", self, {"latent_dim": 1, "mixing_layers": 1, "mixing_seed": 0})

    def build(self) -> SyntheticWorld:
        rho = self.rho_per_dim if self.rho_per_dim is not None else self.rho
        return SyntheticWorld(self.latent_dim, self.law, self.alpha, rho, self.mixing,
                              self.mixing_layers, self.mixing_seed, self.gennorm_scale,
                              self.noise_law)
