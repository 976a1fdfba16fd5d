"""The cross-entropy method: refit a diagonal Gaussian to the lowest-cost samples."""

from __future__ import annotations

import torch
from torch import Tensor

from planners.base import CostFn, Planner, PlanResult, register_planner

__all__ = ["CEMPlanner"]


@register_planner("cem")
class CEMPlanner(Planner):
    """CEM over action blocks ``(B, H, A)`` (LeWM's solver: 300 samples, 30 iterations, top 30).

    Every iteration keeps the current mean among the samples, so the returned plan, the
    cheapest sequence of the last iteration, never costs more than the mean it refined.
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
            # Refit on the elites
            elite_cost, idx = cost.topk(c.elites, dim=1, largest=False)  # (B, E)
            elites = actions.gather(1, idx[..., None, None].expand(-1, -1, *actions.shape[2:]))
            new_std = elites.std(dim=1, unbiased=False) if c.elites > 1 else torch.zeros_like(std)
            mean = c.momentum * mean + (1 - c.momentum) * elites.mean(dim=1)  # (B, H, A)
            std = (c.momentum * std + (1 - c.momentum) * new_std).clamp(c.min_std, c.max_std)
        return PlanResult(actions=elites[:, 0], cost=elite_cost[:, 0], mean=mean, std=std,
                          cost_calls=c.iterations, samples_evaluated=c.iterations * c.samples)
