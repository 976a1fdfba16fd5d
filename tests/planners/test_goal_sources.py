"""Goal sources: held-out dataset frames restored exactly, the env's evaluation tasks, and the
solved-at-start split of the results."""

import numpy as np
import pytest

from envs import make_pixel_env
from envs.dataset import PixelDataset
from envs.meta import ModelMeta
from envs.splits import split_episodes
from planners.evaluate import (
    ClosedLoopConfig,
    DatasetGoals,
    RandomAgent,
    goal_pairs,
    run_episodes,
)
from planners.goal_sources import start_episode
from planners.results import EpisodeRow, RunSummary


@pytest.fixture(scope="module")
def reacher32():
    env = make_pixel_env("wm/reacher-v0", 32)
    yield env
    env.close()


def _floor_rows(env, pairs, budget):
    floor = RandomAgent(env.action_space.shape[0])
    return run_episodes([env], pairs, env.goal, budget,
                        lambda envs, batch, frames: (floor.reset(1, batch[0].seed), floor)[1],
                        "floor", progress=False)


def test_dataset_goals_start_at_held_out_frames_restored_exactly(tiny_dataset, reacher32):
    goals = DatasetGoals(str(tiny_dataset), val_fraction=0.34, split_seed=1)
    cfg = ClosedLoopConfig(episodes=6, goal_source="dataset", goal_offset=5, seed=3)
    pairs = goal_pairs(reacher32, reacher32.goal, cfg, goals)
    data = PixelDataset(tiny_dataset)
    table = data.episodes()
    _, val = split_episodes(len(table), 0.34, 1)
    held_out = set(table[val, 0].tolist())
    assert len(held_out) == 2
    assert {p.origin["episode"] for p in pairs} <= held_out  # never a training episode
    assert len({(p.origin["episode"], p.origin["frame"]) for p in pairs}) > 1
    for pair in pairs:
        ep, t = data.episode(pair.origin["episode"]), pair.origin["frame"]
        assert t + 5 < len(ep["pixels"])
        frame, state = start_episode(reacher32, pair)
        np.testing.assert_array_equal(frame, ep["pixels"][t])  # the start, bit for bit
        np.testing.assert_array_equal(state, ep["states"][t])
        np.testing.assert_array_equal(pair.goal_frame, ep["pixels"][t + 5])
        np.testing.assert_array_equal(pair.goal_state, ep["states"][t + 5])
    again = goal_pairs(reacher32, reacher32.goal, cfg, goals)
    assert [p.origin for p in again] == [p.origin for p in pairs]


def test_dataset_goals_need_the_dataset_and_its_physics(tiny_dataset, reacher32):
    cfg = ClosedLoopConfig(episodes=1, goal_source="dataset")
    with pytest.raises(ValueError, match="needs the model's dataset"):
        goal_pairs(reacher32, reacher32.goal, cfg)
    with pytest.raises(ValueError, match="lacks \\['val_fraction', 'split_seed'\\]"):
        goal_pairs(reacher32, reacher32.goal, cfg,
                   DatasetGoals.from_meta(ModelMeta((32, 32, 3), path="x")))
    other = DatasetGoals(str(tiny_dataset), 0.34, 1, env_id="wm/point_mass-v0")
    with pytest.raises(ValueError, match="model's own dataset \\(wm/point_mass-v0\\) and "
                                         "cannot run on wm/reacher-v0"):
        goal_pairs(reacher32, reacher32.goal, cfg, other)
    with pytest.raises(ValueError, match="no validation episode .* longer than the goal offset"):
        goal_pairs(reacher32, reacher32.goal, ClosedLoopConfig(
            episodes=1, goal_source="dataset", goal_offset=25),
            DatasetGoals(str(tiny_dataset), 0.34, 1))
    with pytest.raises(ValueError, match="goal_source must be one of"):
        ClosedLoopConfig(goal_source="replay")


def test_starts_that_already_meet_the_goal_are_counted_apart(tiny_dataset, reacher32):
    goals = DatasetGoals(str(tiny_dataset), val_fraction=0.34, split_seed=1)
    pairs = goal_pairs(reacher32, reacher32.goal, ClosedLoopConfig(
        episodes=4, goal_source="dataset", goal_offset=1), goals)
    pairs[0].goal_state = start_episode(reacher32, pairs[0])[1]  # this one starts at its goal
    summary = RunSummary.from_rows(_floor_rows(reacher32, pairs, 3))
    first = summary.rows[0]
    assert first.success and first.steps == 0 and summary.solved_at_start >= 1
    rest = summary.episodes - summary.solved_at_start
    assert summary.unsolved_successes == summary.successes - summary.solved_at_start
    assert summary.unsolved_success_rate == pytest.approx(summary.unsolved_successes / rest)
    back = RunSummary.from_dict(summary.to_dict())
    assert back.solved_at_start == summary.solved_at_start
    old = {k: v for k, v in summary.to_dict().items()
           if k not in ("solved_at_start", "unsolved_successes", "unsolved_success_rate")}
    assert RunSummary.from_dict(old).solved_at_start is None  # reports from before still read


def test_summary_with_every_start_solved_has_no_unsolved_rate():
    rows = [EpisodeRow(i, True, 0, 0.0, 0.0, [0.0]) for i in range(3)]
    summary = RunSummary.from_rows(rows)
    assert summary.solved_at_start == 3 and np.isnan(summary.unsolved_success_rate)


def test_cube_tasks_are_ogbench_s_five_with_goal_images_of_the_cube_at_its_goal():
    env = make_pixel_env("wm/cube-single-v0", 64)
    try:
        assert env.evaluation_tasks[0] == "task1_horizontal" and len(env.evaluation_tasks) == 5
        cfg = ClosedLoopConfig(episodes=5, goal_source="task", seed=0)
        pairs = goal_pairs(env, env.goal, cfg)
        goals = {1: (0.425, -0.1), 2: (0.50, 0.0), 3: (0.35, 0.0), 4: (0.50, 0.2),
                 5: (0.50, -0.2)}  # OGBench's cube-single goal positions (x, y)
        starts = {1: (0.425, 0.1), 2: (0.35, 0.0), 3: (0.50, 0.0), 4: (0.35, -0.2),
                  5: (0.35, 0.2)}
        for pair in pairs:
            task = pair.origin["task"]
            np.testing.assert_allclose(pair.goal_state[:2], goals[task], atol=0.005)
            assert pair.goal_state[2] == pytest.approx(0.02, abs=0.003)
            frame, state = start_episode(env, pair)
            np.testing.assert_allclose(state[:2], starts[task], atol=0.0101)
            assert env.goal.distance(state, pair.goal_state) > env.goal.tolerance
            assert not np.array_equal(frame, pair.goal_frame)
        again = goal_pairs(env, env.goal, cfg)
        np.testing.assert_array_equal(again[3].start_physics, pairs[3].start_physics)
        np.testing.assert_array_equal(again[3].goal_frame, pairs[3].goal_frame)
    finally:
        env.close()


def test_envs_without_tasks_refuse_the_task_source(reacher32):
    with pytest.raises(ValueError, match="defines no evaluation tasks"):
        goal_pairs(reacher32, reacher32.goal, ClosedLoopConfig(episodes=1, goal_source="task"))


def test_an_oracle_goal_policy_leaves_the_global_random_state_alone():
    env = make_pixel_env("wm/cube-single-v0", 64)
    try:
        np.random.seed(123)
        before = np.random.get_state()[1].copy()
        cfg = ClosedLoopConfig(episodes=2, goal_source="policy", goal_policy="ogbench_plan",
                               goal_offset=10)
        pairs = goal_pairs(env, env.goal, cfg)  # the first episode too: the oracle needs info
        np.testing.assert_array_equal(np.random.get_state()[1], before)
        again = goal_pairs(env, env.goal, cfg)
        np.testing.assert_array_equal(pairs[0].goal_state, again[0].goal_state)
        assert not np.array_equal(pairs[0].goal_state, pairs[1].goal_state)
    finally:
        env.close()


def test_state_sampler_goals_refuse_envs_whose_state_is_not_joint_positions():
    env = make_pixel_env("wm/cube-single-v0", 64)
    try:
        with pytest.raises(ValueError, match="declares no sampler box"):
            goal_pairs(env, env.goal, ClosedLoopConfig(episodes=1, goal_source="state_sampler"))
        from planners.goal_sources import place_at_rest

        with pytest.raises(TypeError, match="not qpos and qvel"):
            place_at_rest(env, (0, 1), np.zeros(2))
    finally:
        env.close()
