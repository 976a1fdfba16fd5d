"""The closed-loop evaluation protocol's settings: a plain dataclass, importable without any
environment (``configs.schema`` composes it as ``plan.eval``; ``planners.evaluate`` runs it)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from common.checks import require_at_least
from envs.goals import GOAL_SOURCES

__all__ = ["COSTS", "ActionPriorConfig", "ClosedLoopConfig", "TemporalDistanceConfig",
           "TrainEvalConfig"]

COSTS = ("latent", "temporal")


@dataclass
class TemporalDistanceConfig:
    """How the learned temporal distance is fitted (``plan.eval.temporal``; used with
    ``plan.eval.cost=temporal``, see ``planners.temporal_distance``)."""

    max_blocks: int = 10  # pairs of one episode up to this many blocks apart; two episodes: this
    hidden: int = 256
    steps: int = 3000
    batch_size: int = 1024
    lr: float = 1e-3
    other_episode_fraction: float = 0.25  # pairs drawn from two different episodes
    seed: int = 0

    def __post_init__(self) -> None:
        require_at_least("plan.eval.temporal", self, {"max_blocks": 1, "hidden": 1, "steps": 1,
                                                      "batch_size": 1, "seed": 0})
        if not self.lr > 0:
            raise ValueError(f"plan.eval.temporal.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.other_episode_fraction < 1.0:
            raise ValueError("plan.eval.temporal.other_episode_fraction must be in [0, 1), got "
                             f"{self.other_episode_fraction}")


@dataclass
class ActionPriorConfig:
    """The goal-conditioned action prior (``plan.eval.prior``, see ``planners.action_prior``):
    how it is fitted, and how much planning listens to it. ``weight`` 0 turns it off."""

    weight: float = 0.0  # cost per unit of mean squared standardised action distance, per block
    init: bool = True  # start each search from the prior's rollout (else the shifted plan)
    max_blocks: int = 5  # goals up to this many blocks after the frame (the protocol's 25 steps)
    hidden: int = 512
    steps: int = 4000
    batch_size: int = 1024
    lr: float = 1e-3
    min_scale: float = 0.02  # floor of the per-entry residual that standardises the distance
    seed: int = 0

    def __post_init__(self) -> None:
        require_at_least("plan.eval.prior", self, {"max_blocks": 1, "hidden": 1, "steps": 1,
                                                   "batch_size": 1, "seed": 0})
        if not self.weight >= 0:
            raise ValueError(f"plan.eval.prior.weight must be >= 0 (0: no prior), got "
                             f"{self.weight}")
        if not self.lr > 0 or not self.min_scale > 0:
            raise ValueError(f"plan.eval.prior.lr and min_scale must be > 0, got {self.lr}, "
                             f"{self.min_scale}")


@dataclass
class ClosedLoopConfig:
    """The evaluation protocol; ``None`` takes the env's ``GoalSpec`` value."""

    episodes: int = 50
    seed: int = 0
    num_envs: int = 1  # environments stepped, and planned for, together
    goal_source: str | None = None  # policy | state_sampler | dataset | task (None: the env's)
    goal_offset: int | None = None  # control steps, before action repeat
    budget: int | None = None  # control steps, before action repeat
    goal_policy: str = "random"
    replan_every: int = 1
    objective: str = "last"
    # latent: squared L2 to the goal latent; temporal: a distance fitted on the training
    # episodes to the action blocks between two frames (planners.temporal_distance; plan.py
    # only: the evaluations during training, plan.train_eval, use latent)
    cost: str = "latent"
    temporal: TemporalDistanceConfig = field(default_factory=TemporalDistanceConfig)
    # a goal-conditioned action prior fitted on the training episodes (planners.action_prior;
    # plan.py only): plans start from its rollout and pay prior.weight for leaving it
    prior: ActionPriorConfig = field(default_factory=ActionPriorConfig)
    hold: bool = False  # plan one env action per block, held for frameskip steps
    floor: bool = True
    ceiling: bool = True
    # the ceiling's planner budget, where the true simulator is the env's own (slow) step;
    # None: the agent's samples and iterations
    ceiling_samples: int | None = None
    ceiling_iterations: int | None = None
    videos: int = 2  # episodes recorded as agent | goal GIFs
    progress: bool = True
    shard: int = 0  # this process runs shard `shard` of `num_shards` (array jobs)
    num_shards: int = 1

    def __post_init__(self) -> None:
        if self.videos < 0 or self.replan_every < 1:
            raise ValueError(f"plan.eval.videos must be >= 0 and replan_every >= 1, got "
                             f"{self.videos}, {self.replan_every}")
        if self.seed < 0:
            raise ValueError(f"plan.eval.seed must be >= 0, got {self.seed}")
        if self.episodes < 1 or self.num_envs < 1:
            raise ValueError(f"episodes and num_envs must be >= 1, got {self.episodes}, "
                             f"{self.num_envs}")
        for name, least in (("ceiling_samples", 2), ("ceiling_iterations", 1), ("budget", 1),
                            ("goal_offset", 1)):
            value = getattr(self, name)
            if value is not None and value < least:
                raise ValueError(f"{name} must be >= {least} (or null), got {value}")
        if self.cost not in COSTS:
            raise ValueError(f"plan.eval.cost must be one of {COSTS}, got {self.cost!r}")
        if self.goal_source is not None and self.goal_source not in GOAL_SOURCES:
            raise ValueError(f"goal_source must be one of {GOAL_SOURCES} (or null: the env's), got "
                             f"{self.goal_source!r}")
        if self.num_shards < 1 or not 0 <= self.shard < self.num_shards:
            raise ValueError(f"need 0 <= shard < num_shards, got shard {self.shard} of "
                             f"{self.num_shards}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClosedLoopConfig:
        """The settings a report recorded (``report.json``'s ``config.eval``). Keys this
        version does not know are left out and missing ones take their defaults: a report's
        record is read, not run again."""
        defaults = {f.name: f.default for f in fields(cls)}
        # a merged report's shard is None: a field that cannot be None takes its default
        values = {k: v for k, v in d.items()
                  if k in defaults and (v is not None or defaults[k] is None)}
        for key, section in (("temporal", TemporalDistanceConfig), ("prior", ActionPriorConfig)):
            if isinstance(values.get(key), dict):
                names = {f.name for f in fields(section)}
                values[key] = section(**{k: v for k, v in values[key].items() if k in names})
        return cls(**values)

    def episode_indices(self) -> list[int]:
        """The episodes of this shard: whole batches of ``num_envs``, dealt round-robin.

        Every batch is planned exactly as in a single-process run (same members, same seeds),
        so merged shards reproduce its numbers.
        """
        batches = range(-(-self.episodes // self.num_envs))
        return [i for b in batches if b % self.num_shards == self.shard
                for i in range(b * self.num_envs, min((b + 1) * self.num_envs, self.episodes))]


@dataclass
class TrainEvalConfig:
    """How often and how much to plan during training (``plan.train_eval``).

    ``samples`` / ``iterations`` shrink ``plan.planner`` for these evaluations; ``budget``
    (control steps) None takes the protocol's (``plan.eval.budget``, else the env's).
    """

    every_n_steps: int = 0
    episodes: int = 4
    samples: int = 64
    iterations: int = 3
    budget: int | None = None
    videos: int = 1  # agent | goal GIFs per evaluation, with the distance plot, to the logger

    def __post_init__(self) -> None:
        require_at_least("plan.train_eval", self, {"every_n_steps": 0, "episodes": 1,
                                                   "samples": 2, "iterations": 1, "videos": 0})
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"plan.train_eval.budget must be >= 1 (or null), got {self.budget}")
