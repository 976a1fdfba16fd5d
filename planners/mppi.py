"""Model-predictive path integral control: a softmax-weighted refit over the best samples."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import CostFn, Planner, PlanResult, register_planner

__all__ = ["MPPIPlanner"]


@register_planner("mppi")
class MPPIPlanner(Planner):
    """MPPI over action blocks ``(B, H, A)``, TD-MPC2-style: the ``elites`` cheapest samples
    are weighted by ``softmax(-(cost - min) / temperature)`` to give the new mean and std.

    Returns the final mean, scored by one more call of the cost function.
    """

    def plan(self, cost_fn: CostFn, batch_size: int, action_dim: int,
             init: Tensor | None = None, device: torch.device | str | None = None
             ) -> PlanResult:
        c = self.config
        mean, std = self.initial(batch_size, action_dim, init, device)  # (B, H, A) each
        for _ in range(c.iterations):
            # Sample
            actions = self.sample(mean, std)  # (B, S, H, A)
            # Score
            cost = self.score(cost_fn, actions)  # (B, S)
            elite_cost, idx = cost.topk(c.elites, dim=1, largest=False)  # (B, E)
            elites = actions.gather(1, idx[..., None, None].expand(-1, -1, *actions.shape[2:]))
            # Refit: softmax weights relative to the best sample keep exp() finite
            weight = torch.softmax(-(elite_cost - elite_cost[:, :1]) / c.temperature, dim=1)
            weight = weight[..., None, None]  # (B, E, 1, 1)
            new_mean = (weight * elites).sum(dim=1)  # (B, H, A)
            new_std = (weight * (elites - new_mean[:, None]).pow(2)).sum(dim=1).sqrt()
            mean = c.momentum * mean + (1 - c.momentum) * new_mean
            std = (c.momentum * std + (1 - c.momentum) * new_std).clamp(c.min_std, c.max_std)
        mean = mean.clamp(c.low, c.high)
        final = self.score(cost_fn, mean[:, None])[:, 0]  # (B,)
        return PlanResult(actions=mean, cost=final, mean=mean, std=std,
                          cost_calls=c.iterations + 1,
                          samples_evaluated=c.iterations * c.samples + 1)
