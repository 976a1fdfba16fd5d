"""CEM, MPPI and the iCEM knobs on problems with known answers: a quadratic bowl, linear
dynamics and a double integrator."""

from itertools import pairwise

import pytest
import torch

from planners import PLANNERS, Planner, PlannerConfig, build_planner, register_planner, shift_plan
from planners.base import coloured

ICEM = {"noise_beta": 2.0, "keep_elites": 0.3}
NAMES = [*sorted(PLANNERS), "icem"]  # icem: cem with the two iCEM knobs on


def bowl(target):
    """Cost of ``(B, S, H, A)``: squared distance of every block to ``target (B, H, A)``."""
    def cost(actions):
        return (actions - target[:, None]).pow(2).sum((-1, -2))
    return cost


def small(name, **kw):
    base = {"samples": 128, "iterations": 12, "elites": 12, "horizon": 4, "temperature": 0.05,
            "seed": 3, **(ICEM if name == "icem" else {})}
    return build_planner("cem" if name == "icem" else name, {**base, **kw})


def test_registry_has_both_and_refuses_duplicates():
    assert {"cem", "mppi"} <= set(PLANNERS)
    with pytest.raises(ValueError, match="already registered"):
        register_planner("cem")(type("Other", (Planner,), {}))
    with pytest.raises(ValueError, match="unknown planner"):
        build_planner("nope")
    with pytest.raises(ValueError, match="unknown planner settings.*sample"):
        build_planner("cem", {"sample": 10})


@pytest.mark.parametrize("name", NAMES)
def test_finds_the_minimum_of_a_quadratic_bowl(name):
    target = torch.tensor([[0.5, -0.3], [-0.7, 0.2], [0.1, 0.9], [0.0, -0.6]])  # (H, A)
    target = torch.stack([target, -target])  # (B=2, H, A): each env its own bowl
    result = small(name).plan(bowl(target), batch_size=2, action_dim=2)
    assert result.actions.shape == (2, 4, 2) and result.cost.shape == (2,)
    assert torch.allclose(result.actions, target, atol=0.05)
    assert torch.allclose(result.cost, bowl(target)(result.actions[:, None])[:, 0])
    assert result.cost.max() < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_respects_action_bounds(name):
    target = torch.full((1, 4, 2), 3.0)  # the bowl's minimum lies outside [-1, 1]
    result = small(name, low=-0.5, high=0.8).plan(bowl(target), 1, 2)
    assert result.actions.min() >= -0.5 and result.actions.max() <= 0.8
    assert torch.allclose(result.actions, torch.full_like(result.actions, 0.8), atol=0.02)


@pytest.mark.parametrize("name", NAMES)
def test_drives_linear_dynamics_to_a_goal(name):
    # x' = A x + B u, 2-D, cost = |x_H - goal|^2 from x0; the goal is reachable in 4 steps
    A = torch.tensor([[1.0, 0.1], [0.0, 1.0]])
    Bm = torch.tensor([[0.0], [0.1]])
    x0 = torch.tensor([[0.0, 0.0], [0.2, -0.1]])  # (B, 2)
    goal = torch.tensor([[0.05, 0.1], [0.2, 0.0]])  # reachable: u = (1, 1, 0, -1), (1, .5, 0, -.5)

    def simulate(actions):  # (B, S, H, 1) -> (B, S, 2)
        x = x0[:, None].expand(*actions.shape[:2], 2)
        for t in range(actions.shape[2]):
            x = x @ A.T + actions[:, :, t] @ Bm.T
        return x

    def cost(actions):
        return (simulate(actions) - goal[:, None]).pow(2).sum(-1)

    result = small(name, horizon=4, iterations=20).plan(cost, 2, 1)
    final = simulate(result.actions[:, None])[:, 0]
    assert torch.allclose(final, goal, atol=0.01), final


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_for_a_seed_and_reset_restarts_the_stream(name):
    target = torch.rand((3, 4, 2), generator=torch.Generator().manual_seed(0)) * 2 - 1
    planner = small(name, iterations=2)
    first = planner.plan(bowl(target), 3, 2).actions
    second = planner.plan(bowl(target), 3, 2).actions  # the stream moved on
    planner.reset()
    assert torch.equal(planner.plan(bowl(target), 3, 2).actions, first)
    assert torch.equal(small(name, iterations=2).plan(bowl(target), 3, 2).actions, first)
    assert not torch.equal(first, second)
    assert not torch.equal(small(name, iterations=2, seed=4).plan(bowl(target), 3, 2).actions,
                           first)


@pytest.mark.parametrize("name", NAMES)
def test_warm_start_is_used_and_checked(name):
    target = torch.rand((1, 4, 2), generator=torch.Generator().manual_seed(1)) * 2 - 1
    planner = small(name, iterations=1, samples=2, elites=1, init_std=0.05, min_std=0.05)
    # one iteration around an exact warm start keeps it
    result = planner.plan(bowl(target), 1, 2, init=target)
    assert torch.allclose(result.actions, target, atol=1e-6)
    with pytest.raises(ValueError, match=r"warm start must have shape .*shift_plan"):
        planner.plan(bowl(target), 1, 2, init=target[:, :3])


def test_shift_plan_keeps_the_length():
    plan = torch.arange(10.0).view(1, 5, 2)
    shifted = shift_plan(plan, 2)
    assert shifted.shape == plan.shape
    assert torch.equal(shifted[:, :3], plan[:, 2:]) and torch.equal(shifted[:, 3:], torch.zeros(1, 2, 2))
    assert torch.equal(shift_plan(plan, 0), plan)
    assert torch.equal(shift_plan(plan, 9), torch.zeros_like(plan))


@pytest.mark.parametrize("name", NAMES)
def test_cost_shape_is_checked(name):
    with pytest.raises(ValueError, match=r"must return \(B, S\)"):
        small(name).plan(lambda a: a.sum((-1, -2, -3)), 2, 2)


def test_config_is_validated():
    with pytest.raises(ValueError, match="elites"):
        PlannerConfig(samples=10, elites=11)
    with pytest.raises(ValueError, match="min_std"):
        PlannerConfig(min_std=2.0, init_std=1.0)


def test_coloured_noise_has_unit_variance_and_gets_smoother_with_beta():
    white = torch.randn(4000, 30, 2, generator=torch.Generator().manual_seed(0))
    assert coloured(white, 0.0) is white
    lag1 = []
    for beta in (0.5, 1.0, 2.0):
        x = coloured(white, beta)
        assert x.shape == white.shape
        assert abs(x.var().item() - 1.0) < 0.03 and abs(x.mean().item()) < 0.03
        lag1.append((x[:, 1:] * x[:, :-1]).mean().item())
    assert lag1 == sorted(lag1) and lag1[0] > 0.1 and lag1[-1] > 0.8
    assert torch.equal(coloured(white[:, :1], 2.0), white[:, :1])  # H = 1: nothing to colour


def _double_integrator(goal=3.0):
    """Cost of ``(B, S, H, 1)``: squared miss of the final position of ``x'' = u`` (dt 0.1)."""
    def cost(actions):
        velocity = torch.cumsum(actions[..., 0], -1) * 0.1
        return (torch.cumsum(velocity, -1)[..., -1] * 0.1 - goal).pow(2)
    return cost


def test_coloured_noise_pushes_an_integrator_further_on_a_small_budget():
    # white noise averages out through the double integrator: 32 samples x 3 iterations of
    # 30 steps barely move the mean; 1/f^2 noise pushes in one direction for many steps
    def median_cost(**kw):
        costs = [build_planner("cem", {"samples": 32, "iterations": 3, "elites": 6,
                                       "horizon": 30, "seed": seed, **kw})
                 .plan(_double_integrator(), 1, 1).cost.item() for seed in range(10)]
        return sorted(costs)[5]

    white, smooth = median_cost(), median_cost(noise_beta=2.0)
    assert white > 0.1 and smooth < 0.01, (white, smooth)  # measured 0.57 and 1e-4


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_kept_elites_never_lose_the_best_sequence(name):
    def best_per_iteration(seed, **kw):
        seen = []

        def cost(actions):
            c = _double_integrator()(actions)
            seen.append(c.min().item())
            return c
        build_planner(name, {"samples": 16, "iterations": 8, "elites": 4, "horizon": 10,
                             "init_std": 2.0, "max_std": 2.0, "temperature": 0.05,
                             "seed": seed, **kw}).plan(cost, 1, 1)
        return seen[:8]  # MPPI scores its final mean once more

    def worsens(costs):
        return any(b > a for a, b in pairwise(costs))

    assert not any(worsens(best_per_iteration(seed, keep_elites=0.5)) for seed in range(5))
    # without them the best of an iteration can get worse than the one before
    assert any(worsens(best_per_iteration(seed)) for seed in range(5))


def test_icem_knobs_are_validated():
    with pytest.raises(ValueError, match="noise_beta"):
        PlannerConfig(noise_beta=-1.0)
    with pytest.raises(ValueError, match="keep_elites is a fraction"):
        PlannerConfig(keep_elites=1.5)
    with pytest.raises(ValueError, match="no room for new samples"):
        PlannerConfig(samples=4, elites=4, keep_elites=1.0)
    with pytest.raises(ValueError, match="no room for new samples"):
        PlannerConfig(samples=10, elites=9, keep_elites=1.0)  # the mean + 9 kept fill all 10
    assert PlannerConfig(samples=11, elites=9, keep_elites=1.0).kept == 9
    assert PlannerConfig(elites=30, keep_elites=0.3).kept == 9
