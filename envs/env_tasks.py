"""The evaluation tasks and failure analysis a ``PixelEnv`` passes through from its inner env.

``EvaluationTasks`` is a mixin of ``PixelEnv``: it reads the inner env (``self.env.unwrapped``),
names it by ``self.env_id`` in errors, and drops the rendered frame (``self._frame``) when a
task's states are drawn, as restoring a state does.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

__all__ = ["EvaluationTasks"]


class EvaluationTasks:
    """The inner env's fixed evaluation tasks (goal source ``task``), their step budget and
    its classification of failed episodes, each optional."""

    env: gym.Env
    env_id: str
    _frame: np.ndarray | None

    @property
    def evaluation_tasks(self) -> tuple[str, ...]:
        """Names of the env's fixed evaluation tasks (goal source ``task``), numbered from 1;
        empty when it defines none (the inner env's ``evaluation_tasks``)."""
        return tuple(getattr(self.env.unwrapped, "evaluation_tasks", ()))

    @property
    def task_budget(self) -> int | None:
        """Control steps an episode of the env's evaluation tasks gets (the inner env's
        ``task_budget``); None when it declares none."""
        budget = getattr(self.env.unwrapped, "task_budget", None)
        return int(budget) if budget is not None else None

    @property
    def classifies_episodes(self) -> bool:
        """Whether the inner env names where a failed episode stopped (``episode_outcome``)."""
        return callable(getattr(self.env.unwrapped, "episode_outcome", None))

    def episode_outcome(self, states: np.ndarray, goal_state: np.ndarray) -> str:
        """Where a failed episode stopped, in the inner env's words (its ``episode_outcome``:
        ``(states (T + 1, S) from the start on, goal_state (S,)) -> str``): the failure
        analysis of an evaluation, counted per run in ``RunSummary.outcomes``."""
        if not self.classifies_episodes:
            raise TypeError(f"{self.env_id} does not classify its episodes: give its env an "
                            "episode_outcome(states, goal_state) -> str method")
        return str(self.env.unwrapped.episode_outcome(np.asarray(states), np.asarray(goal_state)))

    def task_start_goal(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        """Full physics states ``(start, goal)`` of evaluation task ``task`` (1-based), drawn
        from the env's random state: call after ``reset(seed=...)``. The env is left at the
        reset state; restore either with ``restore_state(physics_state=...)``."""
        tasks = self.evaluation_tasks
        if not tasks:
            raise TypeError(f"{self.env_id} defines no evaluation tasks (goal source 'task')")
        if not 1 <= task <= len(tasks):
            raise ValueError(f"{self.env_id}: task must be in 1..{len(tasks)}, got {task}")
        start, goal = self.env.unwrapped.task_start_goal(task)
        self._frame = None
        return np.asarray(start, np.float64), np.asarray(goal, np.float64)
