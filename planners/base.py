"""The planner contract: a cost function over action sequences, a plan result, a registry.

A cost function maps candidate actions ``(B, S, H, A)`` (B environments, S samples, H horizon
blocks, A action-block size) to costs ``(B, S)``, lower is better. Planners never see a model:
any callable with that signature plans, which is how they are tested on a quadratic bowl.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from common.registry import Registry
from planners.protocols import CostFn

__all__ = [
    "PLANNERS",
    "PlanResult",
    "Planner",
    "PlannerConfig",
    "build_planner",
    "coloured",
    "register_planner",
    "shift_plan",
]


@dataclass
class PlanResult:
    """The plan of each environment and what it cost.

    Attributes:
        actions: ``(B, H, A)``, within the planner's bounds.
        cost: ``(B,)``, the cost function's value of ``actions``.
        mean, std: ``(B, H, A)``, the final sampling distribution.
    """

    actions: Tensor
    cost: Tensor
    mean: Tensor
    std: Tensor


@dataclass
class PlannerConfig:
    """Knobs shared by the sampling planners; action blocks are in ``[low, high]``.

    ``elites`` is CEM's refit set and MPPI's candidate set for its softmax; ``temperature`` is
    MPPI's only. ``momentum`` keeps that fraction of the previous mean and std at each refit.

    Two iCEM knobs (Pinneri et al., 2020), off by default, apply to every planner:
    ``noise_beta`` colours the sampling noise along the horizon (power spectrum ``1 / f^beta``;
    0 is white, 2 gives smooth, persistent sequences that explore further through inertia) and
    ``keep_elites`` carries that fraction of each iteration's elites into the next iteration's
    samples, so the best sequence found is never lost. ``cem`` with ``noise_beta=2`` and
    ``keep_elites=0.3`` is iCEM without its population decay.
    """

    samples: int = 300
    iterations: int = 30
    elites: int = 30
    horizon: int = 5
    init_std: float = 1.0
    min_std: float = 0.05
    max_std: float = 2.0
    momentum: float = 0.0
    temperature: float = 0.5
    low: float = -1.0
    high: float = 1.0
    seed: int = 0
    noise_beta: float = 0.0
    keep_elites: float = 0.0

    def __post_init__(self) -> None:
        if self.samples < 2 or self.iterations < 1 or self.horizon < 1:
            raise ValueError(f"need samples >= 2, iterations >= 1, horizon >= 1; got "
                             f"{self.samples}, {self.iterations}, {self.horizon}")
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f"elites must be in [1, samples={self.samples}], got {self.elites}")
        if not 0 < self.min_std <= self.init_std <= self.max_std:
            raise ValueError(f"need 0 < min_std <= init_std <= max_std, got {self.min_std}, "
                             f"{self.init_std}, {self.max_std}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.seed < 0:
            raise ValueError(f"the planner seed must be >= 0, got {self.seed}")
        if not self.low < self.high:
            raise ValueError(f"need low < high, got {self.low}, {self.high}")
        if not 0.0 <= self.noise_beta <= 4.0:
            raise ValueError(f"noise_beta (the noise colour) must be in [0, 4], got "
                             f"{self.noise_beta}: 0 is white, 2 is iCEM's")
        if not 0.0 <= self.keep_elites <= 1.0:
            raise ValueError(f"keep_elites is a fraction of the elites, in [0, 1]; got "
                             f"{self.keep_elites}")
        if self.kept and self.kept >= self.samples - 1:  # sample 0 is the mean
            raise ValueError(f"keep_elites={self.keep_elites} keeps {self.kept} of "
                             f"{self.elites} elites, which leaves no room for new samples "
                             f"among samples={self.samples}; lower it or raise samples")

    @property
    def kept(self) -> int:
        """How many elites each iteration hands to the next (``keep_elites`` of them)."""
        return round(self.keep_elites * self.elites)

    @property
    def model_calls(self) -> int:
        """Predictor steps per plan and environment: samples x iterations x horizon."""
        return self.samples * self.iterations * self.horizon


def shift_plan(actions: Tensor, blocks: int, fill: float = 0.0) -> Tensor:
    """Warm start: drop the first ``blocks`` executed blocks of ``(B, H, A)``, pad the end."""
    if blocks < 0:
        raise ValueError(f"blocks must be >= 0, got {blocks}")
    H = actions.shape[1]
    kept = actions[:, min(blocks, H):]  # (B, H - blocks, A)
    pad = actions.new_full((actions.shape[0], H - kept.shape[1], actions.shape[2]), fill)
    return torch.cat([kept, pad], dim=1)  # (B, H, A)


class Planner:
    """A sampling planner: ``plan(cost_fn, batch_size, action_dim, init)``.

    Owns its ``torch.Generator`` (created on the device of the inputs, reseeded by ``reset``),
    so a plan depends only on the seed, the cost function and the warm start.
    """

    name = "base"

    def __init__(self, config: PlannerConfig) -> None:
        self.config = config
        self._seed = config.seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def reset(self, seed: int | Sequence[int] | None = None) -> None:
        """Restart the random stream (from ``seed``, else the config's). A sequence gives each
        environment of the batch its own stream (its plans then do not depend on which other
        environments it is planned with); it must have one seed per environment."""
        if isinstance(seed, Sequence):
            self._seed = [int(s) for s in seed]
        else:
            self._seed = self.config.seed if seed is None else int(seed)
        self._generators.clear()

    def generator(self, device: torch.device) -> torch.Generator:
        """The batch's generator (a single seed)."""
        if isinstance(self._seed, list):
            raise TypeError("this planner has one stream per environment (reset with a list)")
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self._seed)
        return self._generators[device]

    def _noise(self, shape: tuple[int, ...], device: torch.device) -> Tensor:
        """Standard normal ``(B, ...)``: from the batch's stream, or each row from its own."""
        if not isinstance(self._seed, list):
            return torch.randn(shape, generator=self.generator(device), device=device)
        if len(self._seed) != shape[0]:
            raise ValueError(f"the planner was reset with {len(self._seed)} seeds for a batch "
                             f"of {shape[0]} environments")
        if device not in self._generators:
            self._generators[device] = [torch.Generator(device=device).manual_seed(s)
                                        for s in self._seed]
        return torch.stack([torch.randn(shape[1:], generator=g, device=device)
                            for g in self._generators[device]])

    def initial(self, batch_size: int, action_dim: int, init: Tensor | None,
                device: torch.device | str | None) -> tuple[Tensor, Tensor]:
        """Mean and std ``(B, H, A)`` of the first iteration (``init`` is the warm start)."""
        c = self.config
        shape = (batch_size, c.horizon, action_dim)
        if init is not None:
            if tuple(init.shape) != shape:
                raise ValueError(f"warm start must have shape (B, H, A) = {shape}, got "
                                 f"{tuple(init.shape)}; shift the previous plan with shift_plan")
            mean = init.float().clamp(c.low, c.high)
        else:
            mean = torch.full(shape, (c.low + c.high) / 2, device=device)
        return mean, torch.full_like(mean, c.init_std)

    def sample(self, mean: Tensor, std: Tensor, kept: Tensor | None = None) -> Tensor:
        """``S`` sequences per environment ``(B, S, H, A)``: sample 0 is the mean itself, then
        the ``kept`` elites of the previous iteration ``(B, K, H, A)`` if any, then noise."""
        c = self.config
        B, H, A = mean.shape
        noise = self._noise((B, c.samples, H, A), mean.device)  # (B, S, H, A)
        if c.noise_beta > 0:
            noise = coloured(noise, c.noise_beta)
        noise[:, 0] = 0.0  # keep the current mean in the running
        actions = (mean[:, None] + std[:, None] * noise).clamp(c.low, c.high)
        if kept is not None:
            actions[:, 1:1 + kept.shape[1]] = kept
        return actions

    def elites(self, cost_fn: CostFn, mean: Tensor, std: Tensor, kept: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
        """Sample around ``mean`` (with the ``kept`` sequences), score, keep the ``elites``
        cheapest: costs ``(B, E)`` (ascending) and their sequences ``(B, E, H, A)``."""
        actions = self.sample(mean, std, kept)  # (B, S, H, A)
        cost = self.score(cost_fn, actions)  # (B, S)
        elite_cost, idx = cost.topk(self.config.elites, dim=1, largest=False)  # (B, E)
        return elite_cost, actions.gather(1, idx[..., None, None].expand(-1, -1,
                                                                          *actions.shape[2:]))

    def refit(self, mean: Tensor, std: Tensor, new_mean: Tensor, new_std: Tensor
              ) -> tuple[Tensor, Tensor]:
        """Blend in the refit distribution by ``momentum``; std kept in [min_std, max_std]."""
        c = self.config
        mean = c.momentum * mean + (1 - c.momentum) * new_mean
        std = (c.momentum * std + (1 - c.momentum) * new_std).clamp(c.min_std, c.max_std)
        return mean, std

    @staticmethod
    def score(cost_fn: CostFn, actions: Tensor) -> Tensor:
        cost = cost_fn(actions)
        if tuple(cost.shape) != tuple(actions.shape[:2]):
            raise ValueError(f"the cost function must return (B, S) = {tuple(actions.shape[:2])}"
                             f" for actions (B, S, H, A) = {tuple(actions.shape)}, got "
                             f"{tuple(cost.shape)}")
        return torch.nan_to_num(cost.float(), nan=float("inf"))

    def plan(self, cost_fn: CostFn, batch_size: int, action_dim: int,
             init: Tensor | None = None, device: torch.device | str | None = None
             ) -> PlanResult:
        """Plan ``(B, H, A)`` for ``batch_size`` environments; ``init`` is the warm start."""
        mean, std = self.initial(batch_size, action_dim, init, device)  # (B, H, A) each
        kept = None
        for _ in range(self.config.iterations):
            elite_cost, elites = self.elites(cost_fn, mean, std, kept)  # (B, E), (B, E, H, A)
            mean, std = self.refit(mean, std, *self.fit(elite_cost, elites))
            kept = elites[:, :self.config.kept] if self.config.kept else None
        return self.finish(cost_fn, mean, std, elite_cost, elites)

    def fit(self, elite_cost: Tensor, elites: Tensor) -> tuple[Tensor, Tensor]:
        """The new mean and std ``(B, H, A)`` from the elites of one iteration."""
        raise NotImplementedError

    def finish(self, cost_fn: CostFn, mean: Tensor, std: Tensor, elite_cost: Tensor,
               elites: Tensor) -> PlanResult:
        """The plan to return after the last iteration."""
        raise NotImplementedError


def coloured(white: Tensor, beta: float) -> Tensor:
    """Colour standard normal noise ``(..., H, A)`` along ``H``: power spectrum ``1 / f^beta``
    (the zero frequency weighted as the lowest, ``1 / H``), each entry still of unit variance.

    Filtering white noise in Fourier space gives the same law as drawing the spectrum's
    coefficients directly, and keeps the planner's random streams as they are.
    """
    H = white.shape[-2]
    if H < 2 or beta == 0:
        return white
    freq = torch.fft.rfftfreq(H, device=white.device)  # (F,)
    freq[0] = freq[1]
    scale = freq.pow(-beta / 2)  # amplitude, (F,)
    # each entry's variance is the mean over the full (two-sided) spectrum of scale^2
    weights = torch.full_like(scale, 2.0)
    weights[0] = 1.0
    if H % 2 == 0:
        weights[-1] = 1.0
    scale = scale / ((weights * scale.pow(2)).sum() / H).sqrt()
    spectrum = torch.fft.rfft(white.float(), dim=-2) * scale[:, None]  # (..., F, A)
    return torch.fft.irfft(spectrum, n=H, dim=-2).to(white.dtype)


PLANNERS: Registry[type[Planner]] = Registry("planner", "planner")


def register_planner(name: str) -> Callable[[type[Planner]], type[Planner]]:
    """Class decorator adding a planner under ``name``; a name is taken only once."""
    def add(cls: type[Planner]) -> type[Planner]:
        PLANNERS.add(name, cls)
        cls.name = name
        return cls
    return add


def build_planner(name: str, config: PlannerConfig | dict[str, Any] | None = None) -> Planner:
    """The registered planner ``name`` with ``config`` (a ``PlannerConfig`` or plain dict)."""
    planner = PLANNERS.get(name)
    if not isinstance(config, PlannerConfig):
        known = {f.name for f in fields(PlannerConfig)}
        unknown = set(config or {}) - known
        if unknown:
            raise ValueError(f"unknown planner settings {sorted(unknown)}; known: {sorted(known)}")
        config = PlannerConfig(**(config or {}))
    return planner(config)

