"""Closed-loop goal reaching (DESIGN.md section 3): start/goal pairs from seeded resets, the
agent on them, the random-policy floor and the true-simulator ceiling on the same pairs.

Episode ``i`` uses ``reset(seed=seed + i)``. Goals come from the env's ``GoalSpec``: the frame
``goal_offset`` control steps into a goal-policy rollout, or a state drawn by its sampler.
Success: the goal-coordinate distance falls under the tolerance at any step of the budget.
Results are the typed ``EvalReport`` / ``RunSummary`` / ``EpisodeRow`` of ``planners.results``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from envs.goals import GoalSpec
from envs.pixel_env import PixelEnv
from envs.policies import make_policy
from envs.simulator import MujocoSimulator
from planners.agent import BlockMPC, SimulatorAgent
from planners.protocol import ClosedLoopConfig
from planners.results import EpisodeRow, EvalReport, RunSummary, ShardInfo

__all__ = ["ClosedLoopConfig", "GoalPair", "RandomAgent", "derived_seed", "evaluate_closed_loop",
           "goal_pairs", "place_at_rest", "run_episodes"]

log = logging.getLogger(__name__)

Start = Callable[[list[PixelEnv], list["GoalPair"], np.ndarray], object]


@dataclass
class GoalPair:
    """Episode ``index`` (seed ``seed``): its start is ``reset(seed)``; the goal to reach."""

    seed: int
    goal_frame: np.ndarray  # (H, W, 3) uint8
    goal_state: np.ndarray  # (S,)
    index: int


def _env_steps(control_steps: int, env: PixelEnv, what: str) -> int:
    if control_steps % env.action_repeat:
        raise ValueError(f"{what} = {control_steps} control steps is not a multiple of the "
                         f"env's action_repeat {env.action_repeat}")
    return control_steps // env.action_repeat


def goal_pairs(env: PixelEnv, goal: GoalSpec, cfg: ClosedLoopConfig) -> list[GoalPair]:
    """One start/goal pair per episode of this shard, from seeded resets (deterministic envs)."""
    pairs = []
    for i in cfg.episode_indices():
        seed = cfg.seed + i
        frame, info = env.reset(seed=seed)
        if goal.source == "state_sampler":
            frame, state = _sampled_goal(env, goal, np.random.default_rng(seed))
        else:
            offset = _env_steps(cfg.goal_offset or goal.goal_offset, env, "goal_offset")
            policy = make_policy(cfg.goal_policy, env.action_space.shape[0], env=env)
            policy.reset(derived_seed(seed, "goal"))
            for _ in range(offset):
                frame, _, terminated, truncated, info = env.step(policy.act(frame, info))
                if terminated or truncated:
                    break
            state = info["state"]
        pairs.append(GoalPair(seed, frame.copy(), np.asarray(state, np.float32).copy(), i))
    return pairs


def derived_seed(seed: int, stream: str) -> int:
    """A seed for one random stream of episode ``seed`` (goal policy, floor, planner)."""
    key = int.from_bytes(stream.encode(), "little")
    return int(np.random.SeedSequence([seed, key]).generate_state(1)[0])


def _sampled_goal(env: PixelEnv, goal: GoalSpec, rng: np.random.Generator):
    if not env.can_restore_state:
        raise TypeError(f"{env.env_id}: goal source 'state_sampler' needs an env whose state "
                        "can be restored (PixelEnv.restore_state); use source 'policy'")
    return place_at_rest(env, goal.indices, rng.uniform(goal.sample_low, goal.sample_high))


def place_at_rest(env: PixelEnv, indices: Sequence[int], values: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Set the joint positions ``qpos[indices]`` to ``values`` (the others kept, velocities
    zero); the frame rendered there ``(H, W, 3)`` and the new ``info["state"]``."""
    if not env.can_restore_state:
        raise TypeError(f"{env.env_id}: cannot place joint positions, its state cannot be "
                        "restored (see PixelEnv.can_restore_state)")
    model, data = env.mujoco_model_data()
    if max(indices) >= model.nq:
        raise ValueError(f"{env.env_id}: only joint positions can be placed; indices "
                         f"{tuple(indices)} go beyond qpos ({model.nq})")
    qpos = np.array(data.qpos)
    qpos[list(indices)] = values
    state = env.restore_state(qpos)
    return env.render_frame().copy(), state


class RandomAgent:
    """Uniform random actions in [-1, 1]: the floor every result is reported against."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def reset(self, batch_size: int, seed: int) -> None:
        # its own stream: seeded like the goal policy, it would replay the goal's actions
        self.batch_size = batch_size
        self.rng = np.random.default_rng(derived_seed(seed, "floor"))

    def act(self, pixels: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (self.batch_size, self.action_dim))


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
    resets = [env.reset(seed=p.seed) for env, p in zip(active, batch)]
    frames = np.stack([frame for frame, _ in resets])  # (B, H, W, 3)
    states = np.stack([info["state"] for _, info in resets])  # (B, S)
    goal_states = np.stack([p.goal_state for p in batch])
    controller = start(active, batch, frames)
    dist = [goal.distance(states, goal_states)]  # (B,) per step
    done = dist[0] < goal.tolerance
    over = np.zeros_like(done)  # the env ended the episode (terminated or truncated)
    steps = np.where(done, 0, budget)
    record = {j: [frames[j].copy()] for j, p in enumerate(batch) if p.index < videos}
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
        for j, rec in record.items():
            rec.append(frames[j].copy())
        if (done | over).all():
            break
    trace = np.stack(dist, axis=1)  # (B, steps + 1)
    plan_ms = [round(ms, 3) for ms in getattr(controller, "plan_ms", [])]
    return [EpisodeRow(pair.seed, bool(done[j]), int(steps[j]), float(trace[j, -1]),
                       float(trace[j].min()), trace[j].round(5).tolist(),
                       plan_ms if j == 0 else [],  # one plan call serves the whole batch
                       record.get(j), pair.goal_frame)
            for j, pair in enumerate(batch)]


def evaluate_closed_loop(make_env: Callable[[], PixelEnv], agent: BlockMPC,
                         cfg: ClosedLoopConfig, goal: GoalSpec | None = None) -> EvalReport:
    """The agent, the random floor and (where the env can be simulated) the true-simulator
    ceiling on the same start/goal pairs. Rows keep their frames for videos."""
    envs = [make_env() for _ in range(cfg.num_envs)]
    try:
        goal = goal or envs[0].goal
        if goal is None:
            raise ValueError(f"{envs[0].env_id} declares no GoalSpec; give one in the env config "
                             "(goal: {indices, tolerance, ...})")
        budget = _env_steps(cfg.budget or goal.budget, envs[0], "budget")
        pairs = goal_pairs(envs[0], goal, cfg)

        def run(start: Start, label: str, videos: int = 0) -> RunSummary:
            return RunSummary.from_rows(run_episodes(envs, pairs, goal, budget, start, label,
                                                     videos, cfg.progress))

        def start_agent(active, batch, frames):
            agent.reset(frames, np.stack([p.goal_frame for p in batch]),
                        seed=derived_seed(batch[0].seed, "planner"))
            return agent

        shard = (ShardInfo(cfg.shard, cfg.num_shards, [p.index for p in pairs])
                 if cfg.num_shards > 1 else None)
        return EvalReport(
            goal, budget, [p.seed for p in pairs], run(start_agent, "agent", cfg.videos),
            floor=_floor(envs[0].action_space.shape[0], run) if cfg.floor else None,
            ceiling=_ceiling(envs, goal, agent, run) if cfg.ceiling else None, shard=shard)
    finally:
        for env in envs:
            env.close()


def _floor(action_dim: int, run: Callable[..., RunSummary]) -> RunSummary:
    floor = RandomAgent(action_dim)

    def start(active, batch, frames):
        floor.reset(len(active), batch[0].seed)
        return floor

    return run(start, "random floor")


def _ceiling(envs: list[PixelEnv], goal: GoalSpec, agent: BlockMPC,
             run: Callable[..., RunSummary]) -> RunSummary:
    sims = [MujocoSimulator.from_env(env) for env in envs]
    if any(sim is None for sim in sims):
        reason = (f"{envs[0].env_id} cannot be simulated from a snapshot (not MuJoCo, or its "
                  "state is not qpos and qvel)")
        log.info("no true-simulator ceiling: %s", reason)
        return RunSummary.skip(reason)
    planner = type(agent.planner)(agent.planner.config)
    sim_agent = SimulatorAgent(planner, goal, agent.env_action_dim, agent.frameskip,
                               agent.replan_every, agent.objective, agent.warm_start,
                               agent.hold)

    def start(active, batch, frames):
        sim_agent.reset(sims[:len(active)], np.stack([p.goal_state for p in batch]),
                        seed=derived_seed(batch[0].seed, "planner"))
        return sim_agent

    return run(start, "true-sim ceiling")
