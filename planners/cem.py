"""The cross-entropy method: refit a diagonal Gaussian to the lowest-cost samples."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import Planner, PlanResult, register_planner
from planners.protocols import CostFn

__all__ = ["CEMPlanner"]


@register_planner("cem")
class CEMPlanner(Planner):
    """CEM over action blocks ``(B, H, A)`` (LeWM's solver: 300 samples, 30 iterations, top 30).

    Every iteration keeps the current mean among the samples, so the returned plan, the
    cheapest sequence of the last iteration, never costs more than the mean it refined.
    """

    def fit(self, elite_cost: Tensor, elites: Tensor) -> tuple[Tensor, Tensor]:
        if elites.shape[1] == 1:
            return elites[:, 0], torch.zeros_like(elites[:, 0])
        return elites.mean(dim=1), elites.std(dim=1, unbiased=False)  # (B, H, A) each

    def finish(self, cost_fn: CostFn, mean: Tensor, std: Tensor, elite_cost: Tensor,
               elites: Tensor) -> PlanResult:
        return PlanResult(actions=elites[:, 0], cost=elite_cost[:, 0], mean=mean, std=std)
