"""Model-predictive path integral control: a softmax-weighted refit over the best samples."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import Planner, PlanResult, register_planner
from planners.protocols import CostFn

__all__ = ["MPPIPlanner"]


@register_planner("mppi")
class MPPIPlanner(Planner):
    """MPPI over action blocks ``(B, H, A)``, TD-MPC2-style: the ``elites`` cheapest samples
    are weighted by ``softmax(-(cost - min) / temperature)`` to give the new mean and std.

    Returns the final mean, scored by one more call of the cost function.
    """

    def fit(self, elite_cost: Tensor, elites: Tensor) -> tuple[Tensor, Tensor]:
        # weights relative to the best sample keep exp() finite
        weight = torch.softmax(-(elite_cost - elite_cost[:, :1]) / self.config.temperature,
                               dim=1)[..., None, None]  # (B, E, 1, 1)
        mean = (weight * elites).sum(dim=1)  # (B, H, A)
        return mean, (weight * (elites - mean[:, None]).pow(2)).sum(dim=1).sqrt()

    def finish(self, cost_fn: CostFn, mean: Tensor, std: Tensor, elite_cost: Tensor,
               elites: Tensor) -> PlanResult:
        c = self.config
        mean = mean.clamp(c.low, c.high)
        final = self.score(cost_fn, mean[:, None])[:, 0]  # (B,)
        return PlanResult(actions=mean, cost=final, mean=mean, std=std)
