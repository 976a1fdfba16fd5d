"""The goal-conditioned action prior: it learns the data's behaviour, and it keeps a planner
out of a model's mistakes where the model never saw data."""

import numpy as np
import pytest
import torch

from planners import build_planner
from planners.action_prior import LatentPolicy, fit_action_prior
from planners.agent import MPCAgent
from planners.eval_config import ActionPriorConfig
from planners.objectives import LatentGoalCost
from tests.planners.test_agent import LinearWorld, frames

FAST = ActionPriorConfig(hidden=64, steps=1200, batch_size=256, max_blocks=3, lr=3e-3)


def heading_episodes(n: int = 30, length: int = 40, frameskip: int = 2, noise: float = 0.05,
                     seed: int = 0) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """A point moving in the plane at a constant heading per episode: each action is
    ``0.5 * heading`` plus noise and moves it by ``0.1 * action``. The goal frame, any number of
    blocks later, gives the heading, so the data's action is ``0.5 * unit(z_goal - z)``."""
    rng = np.random.default_rng(seed)
    latents, actions = [], []
    for _ in range(n):
        angle = rng.uniform(0, 2 * np.pi)
        a = 0.5 * np.array([np.cos(angle), np.sin(angle)]) + noise * rng.standard_normal(
            (length, 2))
        start = rng.uniform(-1, 1, (1, 2))
        z = np.concatenate([start, start + np.cumsum(0.1 * a[:-1], 0)])  # (length, 2)
        a[-1] = np.nan  # an episode's last action is undefined, as in a dataset
        latents.append(torch.as_tensor(z, dtype=torch.float32))
        actions.append(a.astype(np.float32))
    return latents, actions


def test_it_learns_the_data_behaviour_towards_a_goal():
    latents, actions = heading_episodes()
    head, fit = fit_action_prior(latents, actions, frameskip=2, cfg=FAST)
    assert fit.held_out_episodes == 3 and fit.held_out_r2 > 0.9, fit
    # the per-entry residual it standardises by is the data's action noise, not the spread
    assert torch.all(head.scale < 0.1) and torch.all(head.scale > 0.03), head.scale
    z, z_goal = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.2]])  # goal 2 blocks up
    block = head(z, z_goal).view(2, 2)  # two steps of (x, y): about (0, 0.5) each
    assert (block[:, 1] > 0.3).all() and (block[:, 1] < 0.7).all(), block
    assert (block[:, 0].abs() < 0.1 * block[:, 1]).all(), block  # within 6 degrees of up
    # the data's own blocks are a few standardised units away at most; a reversed one far more
    assert head.penalty(z, z_goal, torch.tensor([[0.0, 0.5, 0.0, 0.5]])).item() < 4.0
    assert head.penalty(z, z_goal, torch.tensor([[0.0, -0.5, 0.0, -0.5]])).item() > 50.0


def test_bad_inputs_are_named():
    latents, actions = heading_episodes(n=3)
    with pytest.raises(ValueError, match="one action row per latent"):
        fit_action_prior(latents, actions[:2], frameskip=2, cfg=FAST)
    with pytest.raises(ValueError, match="longer than one block"):
        fit_action_prior([z[:2] for z in latents], [a[:2] for a in actions], frameskip=2,
                         cfg=FAST)
    with pytest.raises(ValueError, match="plan.eval.prior.weight must be >= 0"):
        ActionPriorConfig(weight=-1.0)
    with pytest.raises(ValueError, match="plan.eval.prior.max_blocks"):
        ActionPriorConfig(max_blocks=0)


class ShortcutWorld(LinearWorld):
    """``LinearWorld`` (z' = z + 0.1 a) with a mistake where the data never went: it believes
    that pushing the second action entry past 0.8 lands on ``(2, 0)`` at once. The true world
    has no such shortcut (it moves up, away from that goal)."""

    def rollout(self, z_ctx, actions):
        z = super().rollout(z_ctx, actions)
        T0 = z_ctx.shape[1]
        for t in range(T0 - 1, actions.shape[1]):
            jump = actions[:, t, 1] > 0.8
            z[jump, t + 1:] = torch.tensor([2.0, 0.0])
        return z


def rightward_prior() -> LatentPolicy:
    """A prior whose data went straight towards the goal at half speed (residual 0.05)."""
    prior = LatentPolicy(2, 2, hidden=8)
    torch.nn.init.zeros_(prior.net[-1].weight)
    prior.net[-1].bias.data = torch.tensor([0.5, 0.0])
    prior.scale.fill_(0.05)
    return prior.requires_grad_(False)


def plan_for(prior_weight: float) -> torch.Tensor:
    world = ShortcutWorld()
    z = torch.zeros(1, 1, 2)
    cost = LatentGoalCost(world, z, z.new_zeros(1, 0, 2), torch.tensor([[2.0, 0.0]]), "sum",
                          prior=rightward_prior(), prior_weight=prior_weight)
    planner = build_planner("cem", {"horizon": 5, "samples": 256, "iterations": 6,
                                    "elites": 20})
    return planner.plan(cost, 1, 2).actions[0]  # (H, A)


def test_the_prior_keeps_the_plan_out_of_the_model_mistake():
    # without the prior, the plan opens with the model's shortcut (which, in the true world,
    # moves up, away from the goal)
    assert plan_for(0.0)[0, 1] > 0.8
    # with it, the plan moves towards the goal as the data did, which the true world rewards
    plan = plan_for(1.0)
    assert (plan[:, 1].abs() < 0.3).all() and (plan[:, 0] > 0.3).all(), plan
    true_end = 0.1 * plan.sum(0)  # the true world, from the origin
    assert true_end[0] > 0.2 and true_end[1].abs() < 0.1, true_end


@pytest.mark.parametrize("hold", [False, True])
def test_searches_start_from_the_prior_rollout_through_the_model(hold):
    class Recorder:
        def __init__(self, planner):
            self.inner, self.config, self.inits = planner, planner.config, []

        def reset(self, seed=None):
            self.inner.reset(seed)

        def plan(self, cost_fn, batch_size, action_dim, init=None, device=None):
            self.inits.append(init)
            return self.inner.plan(cost_fn, batch_size, action_dim, init, device)

    class TowardsGoal(torch.nn.Module):  # the prior's block: (goal - z) for each of 2 steps
        def forward(self, z, z_goal):
            return (z_goal - z).repeat(*(1,) * (z.dim() - 1), 2)

        def penalty(self, z, z_goal, actions):
            return (actions - self(z, z_goal)).pow(2).mean(-1)

    spy = Recorder(build_planner("cem", {"horizon": 3, "samples": 8, "elites": 2,
                                         "iterations": 1}))
    agent = MPCAgent(LinearWorld(frameskip=2), spy, history=2, frameskip=2, hold=hold,
                     prior=TowardsGoal(), prior_weight=1.0)
    agent.reset(frames([[0, 0]]), frames([[100, 0]]), seed=0)  # z = (0, 0), goal (1, 0)
    agent.act(frames([[0, 0]]))
    # each block moves 0.1 * 2 steps * (goal - z): the gap shrinks by 0.8 per block
    gaps = torch.tensor([1.0, 0.8, 0.64])
    step = torch.stack([gaps, torch.zeros(3)], dim=1)  # (H, 2)
    want = step if hold else step.repeat(1, 2)  # (H, plan_dim)
    torch.testing.assert_close(spy.inits[0][0], want, atol=1e-5, rtol=0)
    # prior_init off: the planner's own start (no warm start yet)
    agent.prior_init = False
    agent.reset(frames([[0, 0]]), frames([[100, 0]]), seed=0)
    agent.act(frames([[0, 0]]))
    assert spy.inits[-1] is None
