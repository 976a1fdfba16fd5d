"""The env and collection configs: plain dataclasses, importable without Gymnasium or MuJoCo.

``configs.schema`` composes these; ``envs.collect`` and ``envs.rollouts`` re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.checks import require_at_least

__all__ = ["CollectConfig", "EnvConfig"]


@dataclass
class EnvConfig:
    """Which pixel env, at what size (DESIGN.md section 3).

    ``id`` is a ``wm/`` id, a Gymnasium id, or ``"module:EnvName-v0"`` for a plug-in;
    ``goal`` (a ``GoalSpec`` dict) declares goal coordinates and tolerance for plug-ins.
    """

    id: str = "wm/reacher-v0"
    image_size: int = 64
    action_repeat: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)
    state: str = "auto"
    goal: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.action_repeat < 1:
            raise ValueError(f"env.image_size must be >= 8 pixels and env.action_repeat >= 1, "
                             f"got {self.image_size} and {self.action_repeat}")


@dataclass
class CollectConfig:
    """How many episodes, how long, with which policy; ``workers = 0`` means one per core."""

    episodes: int = 1000
    episode_steps: int = 100
    policy: str = "ou"
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    workers: int = 0
    episodes_per_shard: int = 50

    def __post_init__(self) -> None:
        require_at_least("collect", self, {"episodes": 1, "episode_steps": 1, "workers": 0,
                                           "episodes_per_shard": 1, "seed": 0})
