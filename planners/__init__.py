"""Planning in a learned latent space: CEM and MPPI over a cost function, the MPC agent, and
closed-loop goal-reaching evaluation. Never imports ``worldmodel``: a model is seen only
through the ``WorldModel`` protocol (``encode``, ``rollout``)."""

from planners.base import (
    PLANNERS,
    CostFn,
    Planner,
    PlannerConfig,
    PlanResult,
    build_planner,
    register_planner,
    shift_plan,
)
from planners.cem import CEMPlanner
from planners.mppi import MPPIPlanner

__all__ = ["CEMPlanner", "CostFn", "MPPIPlanner", "PLANNERS", "PlanResult", "Planner",  # noqa: RUF022
           "PlannerConfig", "build_planner", "register_planner", "shift_plan"]
