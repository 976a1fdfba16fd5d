"""Closed-loop goal reaching (DESIGN.md section 3): start/goal pairs (``planners.goal_sources``:
policy rollouts, sampled states, held-out dataset frames or the env's tasks), the agent on them,
the random-policy floor and the true-simulator ceiling on the same pairs.

Success: the goal-coordinate distance falls under the tolerance at any step of the budget.
Results are the typed ``EvalReport`` / ``RunSummary`` / ``EpisodeRow`` of ``planners.results``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from tqdm.auto import tqdm

from envs.goals import GoalSpec
from envs.pixel_env import PixelEnv
from envs.simulator import simulator_for
from planners.agent import BlockMPC, SimulatorAgent
from planners.eval_config import ClosedLoopConfig
from planners.goal_sources import (
    DatasetGoals,
    GoalPair,
    derived_seed,
    env_steps,
    goal_pairs,
    place_at_rest,
    start_episode,
)
from planners.results import EpisodeRow, EvalReport, RunSummary, ShardInfo

__all__ = ["ClosedLoopConfig", "DatasetGoals", "GoalPair", "RandomAgent", "derived_seed",
           "evaluate_closed_loop", "goal_pairs", "place_at_rest", "run_episodes"]

log = logging.getLogger(__name__)

Start = Callable[[list[PixelEnv], list[GoalPair], np.ndarray], object]


class RandomAgent:
    """Uniform random actions in [-1, 1]: the floor every result is reported against."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def reset(self, batch_size: int, seed: int | Sequence[int]) -> None:
        """One stream for the batch (``seed``), or one per episode (a seed each: an episode's
        actions then do not depend on its batch). Derived from the seed: seeded like the goal
        policy, the floor would replay the goal's actions."""
        self.batch_size = batch_size
        seeds = list(seed) if isinstance(seed, Sequence) else [seed]
        if isinstance(seed, Sequence) and len(seeds) != batch_size:
            raise ValueError(f"give one seed, or one per episode ({batch_size}); got {seed}")
        self.rngs = [np.random.default_rng(derived_seed(s, "floor")) for s in seeds]

    def act(self, pixels: np.ndarray) -> np.ndarray:
        if len(self.rngs) == 1:
            return self.rngs[0].uniform(-1.0, 1.0, (self.batch_size, self.action_dim))
        return np.stack([r.uniform(-1.0, 1.0, self.action_dim) for r in self.rngs])


def run_episodes(envs: list[PixelEnv], pairs: list[GoalPair], goal: GoalSpec, budget: int,
                 start: Start, label: str, videos: int = 0, progress: bool = True
                 ) -> list[EpisodeRow]:
    """Run ``pairs`` in batches of ``len(envs)``; ``start(envs, batch, frames)`` resets the
    controller and returns it (anything with ``act(frames (B, H, W, 3)) -> (B, A)``).

    Rows keep frames for episodes ``index < videos``; a batch's plan times (the controller's
    ``plan_ms``, each call serving the whole batch) sit on its first row.
    """
    rows: list[EpisodeRow] = []
    bar = tqdm(total=len(pairs), desc=label, unit="ep", disable=not progress, leave=False)
    for b0 in range(0, len(pairs), len(envs)):
        batch = pairs[b0:b0 + len(envs)]
        rows += _run_batch(envs[:len(batch)], batch, goal, budget, start, videos)
        bar.update(len(batch))
        bar.set_postfix(success=f"{np.mean([r.success for r in rows]):.0%}")
    bar.close()
    return rows


def _run_batch(active: list[PixelEnv], batch: list[GoalPair], goal: GoalSpec, budget: int,
               start: Start, videos: int) -> list[EpisodeRow]:
    resets = [start_episode(env, p) for env, p in zip(active, batch)]
    frames = np.stack([frame for frame, _ in resets])  # (B, H, W, 3)
    states = np.stack([state for _, state in resets])  # (B, S)
    goal_states = np.stack([p.goal_state for p in batch])
    controller = start(active, batch, frames)
    dist = [goal.distance(states, goal_states)]  # (B,) per step
    done = dist[0] < goal.tolerance
    over = np.zeros_like(done)  # the env ended the episode (terminated or truncated)
    steps = np.where(done, 0, budget)
    record = {j: [frames[j].copy()] for j, p in enumerate(batch) if p.index < videos}
    trace_states = [states.copy()]  # (B, S) per step, for the env's outcome of each episode
    for t in range(1, budget + 1):
        actions = controller.act(frames)
        was_over = over.copy()
        for j, env in enumerate(active):
            if not (done[j] or over[j]):
                frames[j], _, terminated, truncated, info = env.step(actions[j])
                states[j], over[j] = info["state"], terminated or truncated
        dist.append(np.where(done, dist[-1], goal.distance(states, goal_states)))
        newly = ~done & (dist[-1] < goal.tolerance)
        steps[newly], done = t, done | newly
        steps[over & ~was_over & ~done] = t  # the env ended it before the goal
        trace_states.append(states.copy())
        for j, rec in record.items():
            rec.append(frames[j].copy())
        if (done | over).all():
            break
    trace = np.stack(dist, axis=1)  # (B, steps + 1)
    plan_ms = [round(ms, 3) for ms in getattr(controller, "plan_ms", [])]
    # each row's trace ends with its own episode (the batch may run on), as if it ran alone
    traces = [trace[j, :steps[j] + 1] for j in range(len(batch))]
    walked = np.stack(trace_states, axis=1)  # (B, steps + 1, S)
    return [EpisodeRow(pair.seed, bool(done[j]), int(steps[j]), float(traces[j][-1]),
                       float(traces[j].min()), traces[j].round(5).tolist(),
                       plan_ms if j == 0 else [],  # one plan call serves the whole batch
                       record.get(j), pair.goal_frame,
                       _outcome(active[j], bool(done[j]), int(steps[j]),
                                walked[j, :steps[j] + 1], pair.goal_state))
            for j, pair in enumerate(batch)]


def _outcome(env: PixelEnv, success: bool, steps: int, states: np.ndarray,
             goal_state: np.ndarray) -> str | None:
    """The row's outcome where the env classifies its episodes, else None."""
    if not env.classifies_episodes:
        return None
    if success:
        return "solved at start" if steps == 0 else "solved"
    return env.episode_outcome(states, goal_state)


def evaluate_closed_loop(make_env: Callable[[], PixelEnv], agent: BlockMPC,
                         cfg: ClosedLoopConfig, goal: GoalSpec | None = None,
                         dataset: DatasetGoals | None = None) -> EvalReport:
    """The agent, the random floor and (where the env can be simulated) the true-simulator
    ceiling on the same start/goal pairs. Rows keep their frames for videos.

    ``dataset``: the model's dataset and split, for ``goal_source="dataset"``."""
    envs = [make_env() for _ in range(cfg.num_envs)]
    try:
        goal = goal or envs[0].goal
        if goal is None:
            raise ValueError(f"{envs[0].env_id} declares no GoalSpec; give one in the env config "
                             "(goal: {indices, tolerance, ...})")
        source = cfg.goal_source or goal.source
        budget = env_steps(cfg.budget or _default_budget(envs[0], goal, source), envs[0],
                           "budget")
        pairs = goal_pairs(envs[0], goal, cfg, dataset)

        def run(start: Start, label: str, videos: int = 0) -> RunSummary:
            return RunSummary.from_rows(run_episodes(envs, pairs, goal, budget, start, label,
                                                     videos, cfg.progress))

        def start_agent(active, batch, frames):  # every episode its own planner stream
            agent.reset(frames, np.stack([p.goal_frame for p in batch]),
                        seed=[derived_seed(p.seed, "planner") for p in batch])
            return agent

        shard = (ShardInfo(cfg.shard, cfg.num_shards, [p.index for p in pairs])
                 if cfg.num_shards > 1 else None)
        origins = [p.origin for p in pairs] if any(p.origin for p in pairs) else None
        return EvalReport(
            goal, budget, [p.seed for p in pairs], run(start_agent, "agent", cfg.videos),
            floor=_floor(envs[0].action_space.shape[0], run) if cfg.floor else None,
            ceiling=_ceiling(envs, make_env, goal, agent, cfg, run) if cfg.ceiling else None,
            shard=shard, goal_source=source, pairs=origins)
    finally:
        for env in envs:
            env.close()


def _default_budget(env: PixelEnv, goal: GoalSpec, source: str) -> int:
    """The budget the protocol gives when ``plan.eval.budget`` is not set: the env's task
    budget for its tasks, else its goal spec's."""
    if source == "task":
        return env.task_budget or goal.budget
    return goal.budget


def _floor(action_dim: int, run: Callable[..., RunSummary]) -> RunSummary:
    floor = RandomAgent(action_dim)

    def start(active, batch, frames):
        floor.reset(len(active), [p.seed for p in batch])
        return floor

    return run(start, "random floor")


def _ceiling(envs: list[PixelEnv], make_env: Callable[[], PixelEnv], goal: GoalSpec,
             agent: BlockMPC, cfg: ClosedLoopConfig, run: Callable[..., RunSummary]
             ) -> RunSummary:
    sims, reason = simulator_for(envs, make_env)
    if sims is None:
        log.info("no true-simulator ceiling: %s", reason)
        return RunSummary.skip(reason)
    try:
        config = agent.planner.config
        samples = cfg.ceiling_samples or config.samples
        config = replace(config, samples=samples, iterations=cfg.ceiling_iterations or
                         config.iterations, elites=min(config.elites, samples))
        sim_agent = SimulatorAgent(type(agent.planner)(config), goal, agent.env_action_dim,
                                   agent.frameskip, agent.replan_every, agent.objective,
                                   agent.warm_start, agent.hold)

        def start(active, batch, frames):
            sim_agent.reset(sims[:len(active)], np.stack([p.goal_state for p in batch]),
                            seed=[derived_seed(p.seed, "planner") for p in batch])
            return sim_agent

        return run(start, "true-sim ceiling")
    finally:
        for sim in sims:
            sim.close()
