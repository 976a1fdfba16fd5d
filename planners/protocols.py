"""The Protocols through which planners see everything they plan with: a world model, a cost
function, an action prior. ``planners`` never imports a model class; any object of these
shapes plans (a quadratic bowl in the tests, ``worldmodel.JEPAWorldModel`` in a run).

Shapes: ``B`` environments, ``S`` samples, ``T`` frames, ``H`` horizon, ``A`` action block,
``D`` latent size.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

__all__ = ["ActionPrior", "CostFn", "WorldModel"]


class CostFn(Protocol):
    """``actions (B, S, H, A) -> cost (B, S)``; lower is better."""

    def __call__(self, actions: Tensor) -> Tensor: ...



class WorldModel(Protocol):
    """What planning needs of a world model."""

    action_dim: int  # size of one action block (frameskip x env action size)

    def encode(self, pixels: Tensor) -> Tensor:
        """``uint8 (B, T, H, W, 3) -> (B, T, D)``."""

    def rollout(self, z_ctx: Tensor, actions: Tensor) -> Tensor:
        """``(B, T0, D), (B, T0 - 1 + H, A) -> (B, T0 + H, D)``."""


class ActionPrior(Protocol):
    """What the cost needs of an action prior (``planners.action_prior.LatentPolicy``)."""

    def __call__(self, z: Tensor, z_goal: Tensor) -> Tensor:
        """``(..., D), (..., D) -> (..., A)``: the prior's action block."""

    def penalty(self, z: Tensor, z_goal: Tensor, actions: Tensor) -> Tensor:
        """``(..., D), (..., D), (..., A) -> (...)``: how far ``actions`` are from it."""
