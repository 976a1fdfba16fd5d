"""How a report's agent planned: its planner's name and settings, its budget in model calls,
and the fits of the heads on frozen latents it planned with (``report.json``'s ``planner``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from planners.base import PlannerConfig

__all__ = ["PlannerRecord"]


@dataclass
class PlannerRecord(PlannerConfig):
    """A ``PlannerConfig`` with the planner's ``name`` and what ``plan.py`` adds to it.

    Attributes:
        name: the registered planner (``cem``, ``mppi``).
        model_calls_per_plan: samples x iterations x horizon predictor steps.
        temporal_distance_fit, action_prior_fit: the held-out fit of the learned distance and
            of the action prior (``asdict`` of their ``fit``) when the agent used them.
    """

    name: str = "cem"
    model_calls_per_plan: int = 0
    temporal_distance_fit: dict[str, Any] | None = None
    action_prior_fit: dict[str, Any] | None = None

    @classmethod
    def of(cls, name: str, config: PlannerConfig, **fits: dict[str, Any] | None
           ) -> PlannerRecord:
        """The record of planner ``name`` run with ``config``; ``fits`` as the attributes."""
        return cls(**asdict(config), name=name, model_calls_per_plan=config.model_calls,
                   **fits)

    def to_dict(self) -> dict[str, Any]:
        """The settings, then ``name`` and the budget; fits only where the agent had them."""
        return {k: v for k, v in asdict(self).items()
                if v is not None or k not in ("temporal_distance_fit", "action_prior_fit")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlannerRecord:
        """From ``report.json``; settings a report of an older version lacks take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"a report's planner has unknown keys {unknown}; it was written "
                             f"by a newer version of this code (known: {sorted(known)})")
        return cls(**d)
