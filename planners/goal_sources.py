"""Where closed-loop episodes start and what they must reach: the goal sources.

Episode ``i`` of an evaluation has its own seed ``seed + i``. Its start/goal pair comes from:

- ``policy``: the start is ``reset(seed)``; the goal is the frame ``goal_offset`` control steps
  into a goal-policy rollout from there.
- ``state_sampler``: the start is ``reset(seed)``; the goal places the goal coordinates at a
  point drawn uniformly from the env's sampler box.
- ``dataset`` (LeWM's and stable-worldmodel's protocol): the start is a frame of a held-out
  validation episode of the model's own dataset, restored exactly from its recorded physics
  state (after ``reset`` with that episode's seed, which redraws what an env sets up at reset
  outside the physics); the goal is the frame ``goal_offset`` control steps later in the
  same episode.
- ``task``: the env's fixed evaluation tasks (OGBench's five cube tasks), dealt round-robin.

A start may already meet the goal test; such pairs are kept, counted and reported apart
(``RunSummary.solved_at_start``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.goals import GoalSpec
from envs.meta import ModelMeta
from envs.pixel_env import PixelEnv
from envs.policies import make_policy
from planners.eval_config import ClosedLoopConfig

__all__ = ["DatasetGoals", "GoalPair", "derived_seed", "env_steps", "goal_pairs",
           "place_at_rest", "start_episode"]


@dataclass
class GoalPair:
    """Episode ``index`` (seed ``seed``): where it starts and the goal to reach.

    The start is ``reset(seed=reset_seed)`` (``seed`` when None), then, when given, the full
    physics state ``start_physics`` restored. ``origin`` says where the pair came from (a
    dataset episode and frame, or a task), for the report.
    """

    seed: int
    goal_frame: np.ndarray  # (H, W, 3) uint8
    goal_state: np.ndarray  # (S,)
    index: int
    reset_seed: int | None = None
    start_physics: np.ndarray | None = None
    origin: dict[str, Any] | None = None


def start_episode(env: PixelEnv, pair: GoalPair) -> tuple[np.ndarray, np.ndarray]:
    """Put ``env`` at the pair's start; its frame ``(H, W, 3)`` and ``info["state"]``."""
    frame, info = env.reset(seed=pair.seed if pair.reset_seed is None else pair.reset_seed)
    if pair.start_physics is None:
        return frame, info["state"]
    state = env.restore_state(physics_state=pair.start_physics)
    return env.render_frame(), state


def env_steps(control_steps: int, env: PixelEnv, what: str) -> int:
    """Control steps as env steps (``action_repeat`` control steps each)."""
    if control_steps % env.action_repeat:
        raise ValueError(f"{what} = {control_steps} control steps is not a multiple of the "
                         f"env's action_repeat {env.action_repeat}")
    return control_steps // env.action_repeat


def derived_seed(seed: int, stream: str) -> int:
    """A seed for one random stream of episode ``seed`` (goal policy, floor, planner)."""
    key = int.from_bytes(stream.encode(), "little")
    return int(np.random.SeedSequence([seed, key]).generate_state(1)[0])


@dataclass
class DatasetGoals:
    """The held-out validation episodes of a model's dataset, that ``dataset`` goals come from.

    Args:
        root: the dataset directory; ``val_fraction`` and ``split_seed``: the train/validation
            split the model was trained with (``envs.splits.split_episodes``).
    """

    root: str | None
    val_fraction: float | None
    split_seed: int | None
    env_id: str | None = None
    missing: tuple[str, ...] = ()

    @classmethod
    def from_meta(cls, meta: ModelMeta) -> DatasetGoals:
        """From a checkpoint's data meta (``load_world_model``'s second value); what it
        lacks is reported when the goals are first asked for."""
        missing = tuple(k for k in ("path", "val_fraction", "split_seed")
                        if getattr(meta, k) is None)
        env_id = meta.env.id if meta.is_pixel else None
        return cls(meta.path, meta.val_fraction, meta.split_seed, env_id, missing)

    def open(self, env_id: str | None = None):
        """The dataset, and the table rows ``[index, shard, first row, length]`` of its
        validation episodes; ``env_id``: the env the frames will be restored in."""
        from envs.dataset import PixelDataset
        from envs.splits import split_episodes

        if self.missing:
            raise ValueError(f"the checkpoint's dataset meta lacks {list(self.missing)} "
                             "(trained before the dataset goal protocol existed); retrain it "
                             "to plan with plan.eval.goal_source=dataset")
        if env_id is not None and self.env_id is not None and env_id != self.env_id:
            raise ValueError(f"goal source 'dataset' restores frames of the model's own "
                             f"dataset ({self.env_id}) and cannot run on {env_id}; use "
                             "another plan.eval.goal_source")
        data = PixelDataset(self.root)
        if not data.has_physics:
            raise ValueError(f"{self.root} records no physics states (collected before they "
                             "were, or not a MuJoCo env); collect it again to use the dataset "
                             "goal protocol")
        table = data.episodes()
        _, val = split_episodes(len(table), self.val_fraction, self.split_seed)
        if len(val) == 0:
            raise ValueError(f"{self.root}: the model was trained with no validation "
                             "episodes (data.val_fraction=0); dataset goals come from held-out "
                             "episodes only")
        return data, table[val]


def goal_pairs(env: PixelEnv, goal: GoalSpec, cfg: ClosedLoopConfig,
               dataset: DatasetGoals | None = None) -> list[GoalPair]:
    """One start/goal pair per episode of this shard, deterministic given the settings."""
    source = cfg.goal_source or goal.source
    indices = cfg.episode_indices()
    if source == "dataset":
        if dataset is None:
            raise ValueError("goal source 'dataset' needs the model's dataset (plan.py passes "
                             "the checkpoint's); give evaluate_closed_loop dataset=...")
        return _dataset_pairs(env, goal, cfg, dataset, indices)
    if source == "task":
        return [_task_pair(env, cfg.seed + i, i) for i in indices]
    return [_reset_pair(env, goal, cfg, source, cfg.seed + i, i) for i in indices]


def _reset_pair(env: PixelEnv, goal: GoalSpec, cfg: ClosedLoopConfig, source: str,
                seed: int, index: int) -> GoalPair:
    policy = None
    if source != "state_sampler":  # made before the reset: an oracle sets what reset reports
        policy = make_policy(cfg.goal_policy, env.action_space.shape[0], env=env)
    frame, info = env.reset(seed=seed)
    if source == "state_sampler":
        if not env.can_restore_state:
            raise TypeError(f"{env.env_id}: goal source 'state_sampler' needs an env whose "
                            "state can be restored (PixelEnv.restore_state); use 'policy'")
        if goal.sample_low is None or goal.sample_high is None:
            raise ValueError(f"{env.env_id} declares no sampler box (GoalSpec.sample_low, "
                             "sample_high); goal source 'state_sampler' needs one")
        rng = np.random.default_rng(seed)
        frame, state = place_at_rest(env, goal.indices,
                                     rng.uniform(goal.sample_low, goal.sample_high))
    else:
        offset = env_steps(cfg.goal_offset or goal.goal_offset, env, "goal_offset")
        policy.reset(derived_seed(seed, "goal"))
        for _ in range(offset):
            frame, _, terminated, truncated, info = env.step(policy.act(frame, info))
            if terminated or truncated:
                break
        state = info["state"]
    return GoalPair(seed, frame.copy(), np.asarray(state, np.float32).copy(), index)


def _dataset_pairs(env: PixelEnv, goal: GoalSpec, cfg: ClosedLoopConfig,
                   dataset: DatasetGoals, indices: list[int]) -> list[GoalPair]:
    from envs.rollouts import episode_seeds

    data, val = dataset.open(env.env_id)
    offset = env_steps(cfg.goal_offset or goal.goal_offset, env, "goal_offset")
    usable = val[val[:, 3] > offset]  # episodes with a frame `offset` steps after a start
    if len(usable) == 0:
        raise ValueError(f"no validation episode of {dataset.root} is longer than the goal "
                         f"offset of {offset} steps")
    pairs = []
    for i in indices:
        rng = np.random.default_rng(derived_seed(cfg.seed + i, "dataset"))
        episode, _, _, length = usable[rng.integers(len(usable))]
        t = int(rng.integers(length - offset))
        ep = data.episode(int(episode))
        reset_seed = episode_seeds(data.meta.seed, int(episode))[0]
        pair = GoalPair(cfg.seed + i, ep["pixels"][t + offset], ep["states"][t + offset], i,
                        reset_seed, ep["physics"][t], {"episode": int(episode), "frame": t})
        _, state = start_episode(env, pair)
        if not np.array_equal(state, ep["states"][t]):
            raise ValueError(f"{env.env_id} does not restore frame {t} of episode {episode} "
                             f"of {dataset.root} to its recorded state: the dataset was "
                             "collected with other env settings or package versions")
        pairs.append(pair)
    return pairs


def _task_pair(env: PixelEnv, seed: int, index: int) -> GoalPair:
    tasks = env.evaluation_tasks
    if not tasks:
        raise ValueError(f"{env.env_id} defines no evaluation tasks; goal source 'task' is "
                         "for envs such as wm/cube-single-v0")
    task = index % len(tasks) + 1
    env.reset(seed=seed)
    start, goal_physics = env.task_start_goal(task)
    goal_state = env.restore_state(physics_state=goal_physics)
    frame = env.render_frame().copy()
    return GoalPair(seed, frame, goal_state.copy(), index, seed, start,
                    {"task": task, "name": tasks[task - 1]})


def place_at_rest(env: PixelEnv, indices: Sequence[int], values: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Set the joint positions ``qpos[indices]`` to ``values`` (the others kept, velocities
    zero); the frame rendered there ``(H, W, 3)`` and the new ``info["state"]``."""
    if not env.can_restore_state:
        raise TypeError(f"{env.env_id}: cannot place joint positions, its state cannot be "
                        "restored (see PixelEnv.can_restore_state)")
    model, data = env.mujoco_model_data()
    if env.state_dim != model.nq + model.nv:
        raise TypeError(f"{env.env_id}: its state is not qpos and qvel, so goal coordinates "
                        "are not joint positions to place; use another goal source")
    if max(indices) >= model.nq:
        raise ValueError(f"{env.env_id}: only joint positions can be placed; indices "
                         f"{tuple(indices)} go beyond qpos ({model.nq})")
    qpos = np.array(data.qpos)
    qpos[list(indices)] = values
    state = env.restore_state(qpos)
    return env.render_frame().copy(), state
