"""MPC agents: block execution, replanning, warm start, latent history; the true simulator."""

import numpy as np
import pytest
import torch

from envs import make_pixel_env
from envs.simulator import MujocoSimulator
from planners import build_planner
from planners.agent import MPCAgent, SimulatorAgent
from planners.base import PlanResult


class LinearWorld:
    """A world model with known dynamics: the latent is two pixel values, z' = z + 0.1 a."""

    def __init__(self, frameskip: int = 1) -> None:
        self.action_dim = 2 * frameskip
        self.frameskip = frameskip
        self.rollout_inputs = []

    def encode(self, pixels):  # (B, T, H, W, 3) -> (B, T, 2)
        return pixels[..., 0, 0, :2].float() / 100.0

    def rollout(self, z_ctx, actions):
        self.rollout_inputs.append((z_ctx.clone(), actions.clone()))
        T0 = z_ctx.shape[1]
        z = [z_ctx]
        last = z_ctx[:, -1]
        for t in range(T0 - 1, actions.shape[1]):
            block = actions[:, t].view(len(last), self.frameskip, 2).sum(1)
            last = last + 0.1 * block
            z.append(last[:, None])
        return torch.cat(z, dim=1)


class SpyPlanner:
    """Records every call; returns a plan whose entries say which call made them."""

    def __init__(self, planner):
        self.inner, self.config, self.calls = planner, planner.config, []

    def reset(self, seed=None):
        self.inner.reset(seed)

    def plan(self, cost_fn, batch_size, action_dim, init=None, device=None):
        self.calls.append(init)
        self.action_dims = getattr(self, "action_dims", []) + [action_dim]
        H = self.config.horizon
        acts = torch.arange(H * action_dim, dtype=torch.float32).view(1, H, action_dim)
        acts = (acts / 100 + len(self.calls)).expand(batch_size, H, action_dim).clone()
        return PlanResult(acts, torch.zeros(batch_size), acts, acts)


def frames(values):  # (B, 2) -> (B, 4, 4, 3) uint8 whose pixel (0, 0) holds the values
    out = np.zeros((len(values), 4, 4, 3), np.uint8)
    out[:, 0, 0, :2] = values
    return out


def test_blocks_are_executed_in_order_and_replanned_every_k_blocks():
    spy = SpyPlanner(build_planner("cem", {"horizon": 3, "samples": 8, "elites": 2}))
    agent = MPCAgent(LinearWorld(frameskip=2), spy, history=2, frameskip=2, replan_every=2)
    agent.reset(frames([[10, 20]]), frames([[30, 40]]), seed=0)
    actions = [agent.act(frames([[10 + t, 20]])) for t in range(10)]  # 10 env steps = 5 blocks
    assert len(spy.calls) == 3  # blocks 0-1, 2-3, 4: every 2 blocks
    assert spy.calls[0] is None and spy.calls[1].shape == (1, 3, 4)
    first = torch.arange(12.0).view(3, 4) / 100 + 1  # plan of call 1, (H, kA)
    np.testing.assert_allclose(actions[0][0], first[0, :2].numpy(), atol=1e-6)  # block 0, step 0
    np.testing.assert_allclose(actions[1][0], first[0, 2:].numpy(), atol=1e-6)  # block 0, step 1
    np.testing.assert_allclose(actions[2][0], first[1, :2].numpy(), atol=1e-6)
    # the warm start is plan 1 shifted by the two executed blocks, padded with zeros
    torch.testing.assert_close(spy.calls[1][0, 0], first[2])
    torch.testing.assert_close(spy.calls[1][0, 1:], torch.zeros(2, 4))


def test_held_blocks_repeat_one_planned_action_for_frameskip_steps():
    spy = SpyPlanner(build_planner("cem", {"horizon": 3, "samples": 8, "elites": 2}))
    agent = MPCAgent(LinearWorld(frameskip=3), spy, history=2, frameskip=3, hold=True)
    agent.reset(frames([[10, 20]]), frames([[30, 40]]), seed=0)
    actions = [agent.act(frames([[10 + t, 20]])) for t in range(6)]  # 2 blocks, 2 plans
    assert spy.action_dims == [2, 2]  # the planner searches one env action per block
    assert spy.calls[1].shape == (1, 3, 2)  # and is warm-started in that space
    first = torch.arange(6.0).view(3, 2) / 100 + 1  # plan of call 1, (H, A)
    for t in range(3):
        np.testing.assert_allclose(actions[t][0], first[0].numpy(), atol=1e-6)
    second = torch.arange(6.0).view(3, 2) / 100 + 2
    for t in range(3, 6):
        np.testing.assert_allclose(actions[t][0], second[0].numpy(), atol=1e-6)
    # the history keeps the executed block: the held action, frameskip times
    torch.testing.assert_close(agent.a_hist[0, -1], first[0].repeat(3))


def test_held_plans_reach_the_model_as_constant_blocks():
    # the model only sees each block's sum, so an unheld plan may zigzag inside a block;
    # held, the mass moves straight and stays at the goal between block ends too
    world = LinearWorld(frameskip=2)
    planner = build_planner("cem", {"horizon": 2, "samples": 64, "elites": 8, "iterations": 6})
    agent = MPCAgent(world, planner, history=1, frameskip=2, objective="sum", hold=True)
    z, goal = np.array([[10.0, 20.0]]), np.array([[18.0, 14.0]])
    agent.reset(frames(z), frames(goal), seed=0)
    error = []
    for _ in range(16):
        z = z + 10.0 * agent.act(frames(np.round(z)))
        error.append(np.abs(np.round(z) - goal).max())
    _, acts = world.rollout_inputs[-1]  # (S, T, kA): every candidate block is a held action
    assert acts.shape[-1] == 4
    torch.testing.assert_close(acts[..., :2], acts[..., 2:])
    assert max(error[-8:]) <= 1


def test_latent_history_holds_the_observed_frames_and_executed_blocks():
    world = LinearWorld()
    planner = build_planner("cem", {"horizon": 2, "samples": 8, "elites": 2, "iterations": 1})
    agent = MPCAgent(world, planner, history=3)
    agent.reset(frames([[10, 20]]), frames([[30, 40]]), seed=0)
    a0 = agent.act(frames([[10, 20]]))
    a1 = agent.act(frames([[11, 21]]))
    agent.act(frames([[12, 22]]))
    z_ctx, acts = world.rollout_inputs[-1]  # the third plan's first rollout
    torch.testing.assert_close(z_ctx[0], torch.tensor([[0.10, 0.20], [0.11, 0.21], [0.12, 0.22]]))
    torch.testing.assert_close(acts[0, :2], torch.tensor(np.stack([a0[0], a1[0]]), dtype=torch.float32))
    # before the first frame: the first latent repeated, with zero actions
    first_ctx, first_acts = world.rollout_inputs[0]
    assert torch.equal(first_ctx[0, 0], first_ctx[0, 2]) and not first_acts[0, :2].any()


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_agent_drives_the_linear_world_to_the_goal(name):
    planner = build_planner(name, {"horizon": 3, "samples": 64, "elites": 8, "iterations": 6,
                                   "temperature": 0.01})
    world = LinearWorld()
    agent = MPCAgent(world, planner, history=1, objective="sum")  # "last" leaves step 1 free
    z, goal = np.array([[10.0, 20.0]]), np.array([[14.0, 17.0]])  # in units of 1/100
    agent.reset(frames(z), frames(goal), seed=0)
    for _ in range(12):
        a = agent.act(frames(np.round(z)))
        z = z + 10.0 * a  # the same dynamics in pixel units
    assert np.abs(np.round(z) - goal).max() <= 1


def test_simulator_matches_stepping_the_env():
    for env_id in ("wm/reacher-v0", "wm/gym-reacher-v5"):
        env = make_pixel_env(env_id, 32, action_repeat=2)
        env.reset(seed=3)
        sim = MujocoSimulator.from_env(env)
        actions = np.random.default_rng(0).uniform(-1, 1, (1, 2, 6, 2))
        predicted = sim.rollout(sim.snapshot()[None], actions)  # (1, 2, 6, S)
        real = [env.step(a)[4]["state"] for a in actions[0, 1]]
        np.testing.assert_allclose(predicted[0, 1], np.stack(real), atol=1e-5)
        env.close()


@pytest.mark.parametrize("hold", [False, True])
def test_simulator_agent_reaches_a_reacher_goal(hold):
    env = make_pixel_env("wm/reacher-v0", 32)
    env.reset(seed=5)
    for a in np.random.default_rng(5).uniform(-1, 1, (25, 2)):
        _, _, _, _, info = env.step(a)
    goal_state = info["state"]
    frame, info = env.reset(seed=5)
    planner = build_planner("cem", {"horizon": 5, "samples": 64, "elites": 8, "iterations": 5})
    agent = SimulatorAgent(planner, env.goal, env_action_dim=2, frameskip=5, hold=hold)
    agent.reset([MujocoSimulator.from_env(env)], goal_state[None], seed=0)
    dist = [env.goal.distance(info["state"], goal_state)]
    executed = []
    for _ in range(50):
        executed.append(agent.act(frame[None])[0])
        frame, _, _, _, info = env.step(executed[-1])
        dist.append(env.goal.distance(info["state"], goal_state))
    assert min(dist) < env.goal.tolerance < dist[0]
    blocks = np.stack(executed).reshape(10, 5, 2)
    assert np.allclose(blocks, blocks[:, :1]) == hold  # held: one action per 5-step block
