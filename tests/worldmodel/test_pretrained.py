"""The library entry point: a checkpoint to an eval-mode model, or to a ready planning agent."""

import numpy as np
import pytest
import torch
import yaml

from configs.loader import load_config
from envs.goals import GoalSpec
from planners import build_planner
from planners.agent import MPCAgent
from worldmodel.app.agents import load_agent
from worldmodel.checkpoint import load_world_model

SMALL = {"samples": 16, "iterations": 2, "elites": 4, "horizon": 3}


@pytest.fixture
def checkpoint(tiny_block_checkpoint):
    """A few training steps with history 2 and action blocks of 2 env steps."""
    return tiny_block_checkpoint


def _frames(make_env, seed):
    """A start frame and a goal frame 4 random steps away, each ``(1, H, W, 3)``."""
    env = make_env()
    frame, _ = env.reset(seed=seed)
    goal = frame
    for a in np.random.default_rng(seed).uniform(-1, 1, (4, 2)):
        goal, *_ = env.step(a)
    env.close()
    return frame[None], goal[None]


def test_load_world_model_gives_the_eval_mode_model_and_its_data_meta(checkpoint):
    model, meta = load_world_model(checkpoint)
    assert not model.training and meta.env.id == "wm/reacher-v0"
    assert meta.history == 2 and meta.frameskip == 2
    assert model.action_dim == 2 * meta.action_dim == meta.block_dim
    assert next(model.parameters()).device == torch.device("cpu")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_world_model(checkpoint.parent / "missing.ckpt")


def test_load_agent_plans_env_actions_in_bounds(checkpoint):
    loaded = load_agent(checkpoint, precision="fp32", **SMALL)
    agent = loaded.agent
    assert (agent.history, agent.frameskip) == (2, 2) and not loaded.bf16
    assert loaded.goal == loaded.meta.goal and isinstance(loaded.goal, GoalSpec)
    env = loaded.make_env()
    assert env.env_id == "wm/reacher-v0" and env.observation_space.shape == (32, 32, 3)
    env.close()
    start, goal = _frames(loaded.make_env, 0)
    agent.reset(start, goal, seed=0)
    actions = np.stack([agent.act(start) for _ in range(4)])  # (4, 1, A): two blocks
    assert actions.shape == (4, 1, 2) and np.all(np.abs(actions) <= 1.0)
    assert len(agent.plan_ms) == 2  # replanned after each block of 2 steps


def test_load_agent_acts_as_the_wiring_plan_py_had(checkpoint):
    """The same first action as plan.py's own wiring (before load_agent) of the same run's
    config, for the same seed: ``python plan.py plan.planner.name=mppi plan.planner.samples=16
    ... plan.precision=fp32`` built its agent this way."""
    from worldmodel.module import JEPAModule

    p = load_config("reacher", ["plan.planner.name=mppi", "plan.eval.replan_every=2",
                                *(f"plan.planner.{k}={v}" for k, v in SMALL.items())]).plan
    module = JEPAModule.load_from_checkpoint(checkpoint, map_location="cpu",
                                                   weights_only=True)
    meta = module.data_meta
    by_hand = MPCAgent(module.world_model.eval(), build_planner(p.planner.name,
                                                                p.planner.settings()),
                       history=meta.history, frameskip=meta.frameskip,
                       replan_every=p.eval.replan_every, objective=p.eval.objective,
                       bf16=False, hold=p.eval.hold)
    loaded = load_agent(checkpoint, "mppi", precision="fp32", replan_every=2, **SMALL)
    assert loaded.planner_config == p.planner.settings()
    start, goal = _frames(loaded.make_env, 3)
    firsts = []
    for agent in (loaded.agent, by_hand):
        agent.reset(start, goal, seed=11)
        firsts.append(agent.act(start))
    np.testing.assert_array_equal(firsts[0], firsts[1])
    assert (loaded.agent.replan_every, loaded.agent.objective) == (2, p.eval.objective)


def test_unset_settings_come_from_the_runs_config_and_overrides_win(checkpoint):
    saved = yaml.safe_load((checkpoint.parent / "config.yaml").read_text())["plan"]
    loaded = load_agent(checkpoint, horizon=2)
    assert loaded.planner == saved["planner"]["name"]
    assert loaded.planner_config.samples == saved["planner"]["samples"]
    assert loaded.planner_config.horizon == 2
    assert loaded.agent.objective == saved["eval"]["objective"] == "sum"  # configs/reacher.yaml
    other = load_agent(checkpoint, env_id="wm/gym-reacher-v5", **SMALL)
    assert other.env_config.id == "wm/gym-reacher-v5" and other.goal is None


def test_load_agent_refuses_unknown_settings(checkpoint):
    with pytest.raises(TypeError, match=r"unknown settings \['sampels'\]"):
        load_agent(checkpoint, sampels=16)
    with pytest.raises(ValueError, match="precision must be one of"):
        load_agent(checkpoint, precision="fp16")
    with pytest.raises(ValueError, match="unknown planner 'ilqr'"):
        load_agent(checkpoint, "ilqr")


def test_another_env_that_the_checkpoints_settings_do_not_build_is_refused():
    from envs.config import EnvConfig
    from envs.meta import DatasetMeta, ModelMeta
    from worldmodel.app.agents import _check_other_env

    trained = EnvConfig(id="wm/reacher-v0", image_size=32,
                        kwargs={"geom_radius": {"arm": 0.02}})
    meta = ModelMeta((32, 32, 3), dataset=DatasetMeta(
        env=trained, action_dim=2, state_dim=4, state_names=[], num_episodes=1,
        episode_steps=1, episodes_per_shard=1, num_shards=1))
    other = EnvConfig(id="wm/point_mass-v0", image_size=32, kwargs=trained.kwargs)
    with pytest.raises(ValueError, match=r"(?s)plan.env_id='wm/point_mass-v0'.*trained on "
                       r"wm/reacher-v0 .*geom_radius.*no geom named 'arm'.*leave plan.env_id "
                       "unset"):
        _check_other_env(other, meta)


def test_another_env_with_other_actions_is_refused(checkpoint):
    with pytest.raises(ValueError, match=r"(?s)has frames \(32, 32, 3\) and 1 actions.*"
                       r"takes frames \(32, 32, 3\) and 2 actions"):
        load_agent(checkpoint, env_id="wm/gym-inverted_pendulum-v5", **SMALL)
