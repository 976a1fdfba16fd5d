"""Closed-loop goal reaching (DESIGN.md section 3): start/goal pairs from seeded resets, the
agent on them, the random-policy floor and the true-simulator ceiling on the same pairs.

Episode ``i`` uses ``reset(seed=seed + i)``. Goals come from the env's ``GoalSpec``: the frame
``goal_offset`` control steps into a goal-policy rollout, or a state drawn by its sampler.
Success: the goal-coordinate distance falls under the tolerance at any step of the budget.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from envs.goals import GoalSpec
from envs.pixel_env import PixelEnv
from envs.policies import make_policy
from envs.simulator import MujocoSimulator
from planners.agent import BlockMPC, SimulatorAgent

__all__ = ["EvalConfig", "GoalPair", "RandomAgent", "derived_seed", "evaluate_closed_loop",
           "goal_pairs", "run_episodes", "summarize", "wilson_interval"]

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """The evaluation protocol; ``None`` takes the env's ``GoalSpec`` value."""

    episodes: int = 50
    seed: int = 0
    num_envs: int = 1  # environments stepped, and planned for, together
    goal_offset: int | None = None  # control steps, before action repeat
    budget: int | None = None  # control steps, before action repeat
    goal_policy: str = "random"
    replan_every: int = 1
    objective: str = "last"
    hold: bool = False  # plan one env action per block, held for frameskip steps
    floor: bool = True
    ceiling: bool = True
    videos: int = 2  # episodes recorded as agent | goal GIFs
    progress: bool = True
    shard: int = 0  # this process runs shard `shard` of `num_shards` (array jobs)
    num_shards: int = 1

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.num_envs < 1:
            raise ValueError(f"episodes and num_envs must be >= 1, got {self.episodes}, "
                             f"{self.num_envs}")
        if self.num_shards < 1 or not 0 <= self.shard < self.num_shards:
            raise ValueError(f"need 0 <= shard < num_shards, got shard {self.shard} of "
                             f"{self.num_shards}")

    def episode_indices(self) -> list[int]:
        """The episodes of this shard: whole batches of ``num_envs``, dealt round-robin.

        Every batch is planned exactly as in a single-process run (same members, same seeds),
        so merged shards reproduce its numbers.
        """
        batches = range(-(-self.episodes // self.num_envs))
        return [i for b in batches if b % self.num_shards == self.shard
                for i in range(b * self.num_envs, min((b + 1) * self.num_envs, self.episodes))]


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


def goal_pairs(env: PixelEnv, goal: GoalSpec, cfg: EvalConfig) -> list[GoalPair]:
    """One start/goal pair per episode of this shard, from seeded resets (deterministic envs)."""
    pairs = []
    for i in cfg.episode_indices():
        seed = cfg.seed + i
        frame, info = env.reset(seed=seed)
        if goal.source == "state_sampler":
            frame, state = _sampled_goal(env, goal, np.random.default_rng(seed))
        else:
            offset = _env_steps(cfg.goal_offset or goal.goal_offset, env, "goal_offset")
            policy = make_policy(cfg.goal_policy, env.action_space.shape[0])
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
    inner = env.env.unwrapped
    if not hasattr(inner, "set_state"):
        raise TypeError(f"{env.env_id}: goal source 'state_sampler' needs an env with "
                        "set_state(qpos, qvel); use source 'policy'")
    nq = inner.physics.model.nq
    if max(goal.indices) >= nq:
        raise ValueError(f"{env.env_id}: the state sampler sets positions only; goal indices "
                         f"{goal.indices} go beyond qpos ({nq})")
    qpos = np.array(inner.physics.data.qpos)
    qpos[list(goal.indices)] = rng.uniform(goal.sample_low, goal.sample_high)
    state = inner.set_state(qpos)
    return env._render().copy(), state


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
                 start: Callable[[list[PixelEnv], list[GoalPair], np.ndarray], object],
                 label: str, videos: int = 0, progress: bool = True) -> list[dict]:
    """Run ``pairs`` in batches of ``len(envs)``; ``start(envs, batch, frames)`` resets the
    controller and returns it (anything with ``act(frames (B, H, W, 3)) -> (B, A)``).

    Rows: seed, success, steps (to success, else the budget), final and min distance, the
    distance after every step, and frames for episodes ``index < videos``. A batch's planning times
    (ms per plan call, each serving the whole batch) sit in its first row.
    """
    rows: list[dict] = []
    bar = tqdm(total=len(pairs), desc=label, unit="ep", disable=not progress, leave=False)
    for b0 in range(0, len(pairs), len(envs)):
        batch = pairs[b0:b0 + len(envs)]
        active = envs[:len(batch)]
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
        for j, pair in enumerate(batch):
            rows.append({
                "seed": pair.seed, "success": bool(done[j]), "steps": int(steps[j]),
                "final_distance": float(trace[j, -1]), "min_distance": float(trace[j].min()),
                "distance": trace[j].round(5).tolist(),
                "plan_ms": plan_ms if j == 0 else [],  # one plan call serves the whole batch
                "frames": record.get(j),
                "goal_frame": pair.goal_frame})
        bar.update(len(batch))
        bar.set_postfix(success=f"{np.mean([r['success'] for r in rows]):.0%}")
    bar.close()
    return rows


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, round(centre + half, 12)))


def summarize(rows: list[dict]) -> dict:
    """Success rate with its 95% CI, distances, steps and planning time of a set of rows."""
    n, k = len(rows), sum(r["success"] for r in rows)
    plan_ms = np.concatenate([r["plan_ms"] for r in rows]) if rows else np.zeros(0)
    final = np.array([r["final_distance"] for r in rows])
    out = {"episodes": n, "successes": k, "success_rate": k / n if n else float("nan"),
           "success_ci95": list(wilson_interval(k, n)),
           "final_distance_mean": float(final.mean()), "final_distance_median": float(np.median(final)),
           "steps_mean": float(np.mean([r["steps"] for r in rows]))}
    if plan_ms.size:
        out.update({"plan_ms_median": float(np.median(plan_ms)),
                    "plan_ms_p90": float(np.percentile(plan_ms, 90)),
                    "plan_calls": int(plan_ms.size)})
    return out


def evaluate_closed_loop(make_env: Callable[[], PixelEnv], agent: BlockMPC, cfg: EvalConfig,
                         goal: GoalSpec | None = None) -> dict:
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
        action_dim = envs[0].action_space.shape[0]
        result: dict = {"goal": goal.to_dict(), "budget_env_steps": budget,
                        "seeds": [p.seed for p in pairs]}
        if cfg.num_shards > 1:
            result["shard"] = {"index": cfg.shard, "count": cfg.num_shards,
                               "episodes": [p.index for p in pairs]}

        def start_agent(active, batch, frames):
            agent.reset(frames, np.stack([p.goal_frame for p in batch]),
                        seed=derived_seed(batch[0].seed, "planner"))
            return agent

        rows = run_episodes(envs, pairs, goal, budget, start_agent, "agent", cfg.videos,
                            cfg.progress)
        result["agent"] = {**summarize(rows), "rows": rows}
        if cfg.floor:
            floor = RandomAgent(action_dim)

            def start_floor(active, batch, frames):
                floor.reset(len(active), batch[0].seed)
                return floor

            rows = run_episodes(envs, pairs, goal, budget, start_floor, "random floor", 0,
                                cfg.progress)
            result["floor"] = {**summarize(rows), "rows": rows}
        if cfg.ceiling:
            result["ceiling"] = _ceiling(envs, pairs, goal, budget, agent, cfg)
        return result
    finally:
        for env in envs:
            env.close()


def _ceiling(envs: list[PixelEnv], pairs: list[GoalPair], goal: GoalSpec, budget: int,
             agent: BlockMPC, cfg: EvalConfig) -> dict:
    sims = [MujocoSimulator.from_env(env) for env in envs]
    if any(sim is None for sim in sims):
        reason = (f"{envs[0].env_id} cannot be simulated from a snapshot (not MuJoCo, or its "
                  "state is not qpos and qvel)")
        log.info("no true-simulator ceiling: %s", reason)
        return {"skipped": reason}
    planner = type(agent.planner)(agent.planner.config)
    sim_agent = SimulatorAgent(planner, goal, agent.env_action_dim, agent.frameskip,
                               agent.replan_every, agent.objective, agent.warm_start,
                               agent.hold)

    def start(active, batch, frames):
        sim_agent.reset(sims[:len(active)], np.stack([p.goal_state for p in batch]),
                        seed=derived_seed(batch[0].seed, "planner"))
        return sim_agent

    rows = run_episodes(envs, pairs, goal, budget, start, "true-sim ceiling", 0, cfg.progress)
    return {**summarize(rows), "rows": rows}
