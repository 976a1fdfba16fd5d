"""The goal-reaching protocol: deterministic pairs, an independent floor, sampled goals, CIs."""

import numpy as np
import pytest

from envs import make_pixel_env
from planners import build_planner
from planners.agent import BlockMPC
from planners.evaluate import (
    ClosedLoopConfig,
    RandomAgent,
    evaluate_closed_loop,
    goal_pairs,
    run_episodes,
)
from planners.results import RunSummary, wilson_interval


def test_goal_pairs_are_deterministic_and_the_goal_is_where_the_policy_leads():
    env = make_pixel_env("wm/reacher-v0", 32)
    cfg = ClosedLoopConfig(episodes=3, seed=7)
    first, second = goal_pairs(env, env.goal, cfg), goal_pairs(env, env.goal, cfg)
    assert [p.seed for p in first] == [7, 8, 9]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.goal_frame, b.goal_frame)
        np.testing.assert_array_equal(a.goal_state, b.goal_state)
    _, info = env.reset(seed=7)  # the start is not already the goal
    assert env.goal.distance(info["state"], first[0].goal_state) > env.goal.tolerance


def test_random_floor_does_not_replay_the_goal_policy():
    env = make_pixel_env("wm/reacher-v0", 32)
    pairs = goal_pairs(env, env.goal, ClosedLoopConfig(episodes=6))
    floor = RandomAgent(2)
    rows = run_episodes([env], pairs, env.goal, 50,
                        lambda envs, batch, frames: (floor.reset(1, batch[0].seed), floor)[1],
                        "floor", progress=False)
    assert RunSummary.from_rows(rows).success_rate < 0.5  # DESIGN.md: about 10% on reacher


def test_state_sampler_goals_land_inside_the_sampler_box():
    env = make_pixel_env("wm/point_mass-v0", 32)
    pairs = goal_pairs(env, env.goal, ClosedLoopConfig(episodes=4))
    coords = np.stack([env.goal.coordinates(p.goal_state) for p in pairs])
    assert np.all(coords >= -0.2) and np.all(coords <= 0.2)
    assert len({tuple(c.round(4)) for c in coords}) == 4
    frame, _ = env.reset(seed=pairs[0].seed)
    assert not np.array_equal(frame, pairs[0].goal_frame)  # the mass was drawn elsewhere


def test_wilson_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(40, 50)  # textbook value: [0.670, 0.888]
    assert lo == pytest.approx(0.6696, abs=1e-3) and hi == pytest.approx(0.8876, abs=1e-3)
    assert wilson_interval(50, 50) == pytest.approx((0.9287, 1.0), abs=1e-3)


def test_evaluation_budget_must_fit_the_action_repeat():
    env_fn = lambda: make_pixel_env("wm/reacher-v0", 32, action_repeat=2)

    class Never(BlockMPC):
        pass
    agent = Never(build_planner("cem", {"horizon": 2, "samples": 4, "elites": 2}), 2)
    with pytest.raises(ValueError, match="multiple of the env's action_repeat"):
        evaluate_closed_loop(env_fn, agent, ClosedLoopConfig(episodes=1, budget=51, progress=False))


def test_an_episode_the_env_ends_stops_there():
    env = make_pixel_env("wm/gym-inverted_pendulum-v5", 32)  # the pole falls under random pushes
    pairs = goal_pairs(env, env.goal, ClosedLoopConfig(episodes=2, goal_offset=2))
    floor = RandomAgent(1)
    rows = run_episodes([env], pairs, env.goal, 500,
                        lambda envs, batch, frames: (floor.reset(1, batch[0].seed), floor)[1],
                        "floor", progress=False)
    failed = [r for r in rows if not r.success]
    assert failed and all(r.steps < 500 and len(r.distance) == r.steps + 1 for r in failed)


def test_shards_deal_whole_batches_and_cover_every_episode_once():
    cfg = {"episodes": 11, "num_envs": 3}
    shards = [ClosedLoopConfig(**cfg, shard=i, num_shards=3).episode_indices() for i in range(3)]
    assert shards == [[0, 1, 2, 9, 10], [3, 4, 5], [6, 7, 8]]
    assert ClosedLoopConfig(**cfg).episode_indices() == list(range(11))
    with pytest.raises(ValueError, match="0 <= shard < num_shards"):
        ClosedLoopConfig(shard=2, num_shards=2)


class _RandomPlans(BlockMPC):
    """Executes the planner's random samples (a flat cost): its actions are the planner's
    random stream, so a batch-dependent stream shows up in the episodes."""

    def reset(self, pixels, goal_pixels, seed=None):
        self.begin(len(pixels), seed)

    def cost_fn(self):
        return lambda actions: actions[..., 0].sum(-1)  # (B, S): any deterministic cost


def test_an_episode_s_result_does_not_depend_on_the_batch_it_ran_in():
    rows = {}
    for num_envs in (1, 3):
        planner = build_planner("cem", {"horizon": 2, "samples": 8, "elites": 2,
                                        "iterations": 2})
        cfg = ClosedLoopConfig(episodes=4, num_envs=num_envs, budget=8, goal_offset=5,
                               progress=False, videos=0)
        report = evaluate_closed_loop(lambda: make_pixel_env("wm/reacher-v0", 32),
                                      _RandomPlans(planner, 2), cfg)
        rows[num_envs] = report
    for run in ("agent", "floor", "ceiling"):
        one = [r.distance for r in getattr(rows[1], run).rows]
        three = [r.distance for r in getattr(rows[3], run).rows]
        assert one == three, run


def test_an_env_that_classifies_its_episodes_gets_each_rows_outcome_counted():
    """The failure-analysis hook: the env sees each episode's states from the start on."""
    from planners.results import EpisodeRow

    env = make_pixel_env("wm/reacher-v0", 32)
    pairs = goal_pairs(env, env.goal, ClosedLoopConfig(episodes=6))
    floor = RandomAgent(2)

    def run():
        return run_episodes([env], pairs, env.goal, 5,
                            lambda envs, batch, frames: (floor.reset(1, batch[0].seed), floor)[1],
                            "floor", progress=False)

    plain = run()
    assert all(r.outcome is None for r in plain) and RunSummary.from_rows(plain).outcomes is None
    assert "outcome" not in plain[0].to_dict()  # reports of other envs keep their layout

    shapes = []

    def outcome(states, goal_state):
        shapes.append((states.shape, goal_state.shape))
        return "moved" if np.abs(states[-1] - states[0]).max() > 0 else "still"

    env.env.unwrapped.episode_outcome = outcome
    rows = run()
    assert [r.distance for r in rows] == [r.distance for r in plain]  # the same episodes
    failed = [r for r in rows if not r.success]
    assert failed and all(r.outcome == "moved" for r in failed)
    assert shapes == [((6, env.state_dim), (env.state_dim,))] * len(failed)  # start + 5 steps
    summary = RunSummary.from_rows(rows)
    assert sum(summary.outcomes.values()) == len(rows)
    assert list(summary.outcomes.values()) == sorted(summary.outcomes.values(), reverse=True)
    again = RunSummary.from_dict(summary.to_dict())
    assert again.outcomes == summary.outcomes
    assert [r.outcome for r in again.rows] == [r.outcome for r in rows]
    assert EpisodeRow.from_dict(rows[0].to_dict()).outcome == rows[0].outcome
