"""Goal coordinates, success tolerance and goal source an env declares for goal reaching.

The evaluation protocol (DESIGN.md section 3) reads these; they are fixed per env, never tuned
per result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GoalSpec"]

GOAL_SOURCES = ("policy", "state_sampler", "dataset", "task")
NORMS = ("max", "l2")


@dataclass(frozen=True)
class GoalSpec:
    """Which state entries a goal fixes, and when a state counts as having reached it.

    Attributes:
        indices: positions in ``info["state"]`` that form the goal coordinates.
        tolerance: success when ``distance(state, goal) < tolerance``.
        angular: per goal coordinate, whether differences wrap to [-pi, pi] (joint angles).
        norm: ``"max"`` (every coordinate within tolerance) or ``"l2"`` (Euclidean).
        source: the default goal source (``planners.goal_sources``): ``"policy"`` (the goal
            is where the goal policy leads after ``goal_offset`` steps), ``"state_sampler"``
            (uniform in ``[sample_low, sample_high]``), ``"dataset"`` (a held-out dataset
            frame ``goal_offset`` steps after the start frame) or ``"task"`` (the env's own
            evaluation tasks).
        goal_offset: goal-policy control steps before the goal frame (source ``policy``).
        budget: control steps the agent gets (before any action repeat).
        sample_low, sample_high: bounds of the state sampler, one per goal coordinate.
        cost_indices: the state entries the true-simulator ceiling's planning cost compares
            (empty: ``indices``). The cube's success looks at the cube alone, but a cost on
            the cube alone is flat until the gripper touches it; the goal frame shows the
            effector too, so the ceiling's cost adds it (success is unchanged).
    """

    indices: tuple[int, ...]
    tolerance: float
    angular: tuple[bool, ...] = ()
    norm: str = "max"
    source: str = "policy"
    goal_offset: int = 25
    budget: int = 50
    sample_low: tuple[float, ...] | None = None
    sample_high: tuple[float, ...] | None = None
    cost_indices: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "indices", tuple(int(i) for i in self.indices))
        object.__setattr__(self, "cost_indices", tuple(int(i) for i in self.cost_indices))
        angular = tuple(bool(a) for a in self.angular) or (False,) * len(self.indices)
        object.__setattr__(self, "angular", angular)
        if not self.indices:
            raise ValueError("GoalSpec.indices must name at least one state entry")
        if len(self.angular) != len(self.indices):
            raise ValueError(f"GoalSpec.angular has {len(self.angular)} entries for "
                             f"{len(self.indices)} goal coordinates; give one per index")
        if self.tolerance <= 0:
            raise ValueError(f"GoalSpec.tolerance must be > 0, got {self.tolerance}")
        if self.norm not in NORMS:
            raise ValueError(f"GoalSpec.norm must be one of {NORMS}, got {self.norm!r}")
        if self.source not in GOAL_SOURCES:
            raise ValueError(f"GoalSpec.source must be one of {GOAL_SOURCES}, got {self.source!r}")
        if self.goal_offset < 1 or self.budget < 1:
            raise ValueError(f"goal_offset and budget must be >= 1, got {self.goal_offset}, "
                             f"{self.budget}")
        if self.source == "state_sampler":
            for name in ("sample_low", "sample_high"):
                bound = getattr(self, name)
                if bound is None or len(bound) != len(self.indices):
                    raise ValueError(f"GoalSpec.{name} needs one value per goal coordinate "
                                     f"for source='state_sampler', got {bound}")

    @classmethod
    def from_dict(cls, d: dict) -> GoalSpec:
        """Build from a plain dict (a config or a dataset's meta.json)."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown GoalSpec keys {sorted(unknown)}; "
                             f"known: {sorted(cls.__dataclass_fields__)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self) -> dict:
        """Plain, JSON-ready form (``cost_indices`` only when set: older files stay as they
        were)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()
                if k != "cost_indices" or v}

    def coordinates(self, state: np.ndarray) -> np.ndarray:
        """Goal coordinates of ``state`` (..., S) -> (..., G)."""
        return np.asarray(state)[..., list(self.indices)]

    def difference(self, state: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Goal-coordinate differences, angles wrapped to [-pi, pi]; (..., S) -> (..., G)."""
        diff = self.coordinates(state) - self.coordinates(goal_state)
        return np.where(np.asarray(self.angular), (diff + np.pi) % (2 * np.pi) - np.pi, diff)

    def cost_difference(self, state: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Differences on the ceiling's cost coordinates (``cost_indices``, else the goal
        coordinates), angles wrapped where a goal coordinate is angular; (..., S) -> (..., C)."""
        if not self.cost_indices:
            return self.difference(state, goal_state)
        idx = list(self.cost_indices)
        angular = dict(zip(self.indices, self.angular))
        wrap = np.array([angular.get(i, False) for i in idx])
        diff = np.asarray(state)[..., idx] - np.asarray(goal_state)[..., idx]
        return np.where(wrap, (diff + np.pi) % (2 * np.pi) - np.pi, diff)

    def distance(self, state: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Distance on the goal coordinates, angles wrapped; (..., S), (..., S) -> (...)."""
        diff = self.difference(state, goal_state)
        if self.norm == "max":
            return np.abs(diff).max(axis=-1)
        return np.linalg.norm(diff, axis=-1)

    def success(self, state: np.ndarray, goal_state: np.ndarray) -> np.ndarray:
        """Whether ``state`` is within tolerance of ``goal_state``."""
        return self.distance(state, goal_state) < self.tolerance
