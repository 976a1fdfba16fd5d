"""The learned temporal distance: it recovers which latent changes take time, and plans."""

import numpy as np
import pytest
import torch

from planners.eval_config import ClosedLoopConfig, TemporalDistanceConfig
from planners.objectives import LatentGoalCost
from planners.temporal_distance import TemporalDistance, _pairs, _Table, fit_temporal_distance


def arm_and_cube_episodes(n: int = 40, length: int = 60, seed: int = 0) -> list[torch.Tensor]:
    """Latents ``[arm x, arm y, cube]``: the arm jumps anywhere in [-1, 1]^2 every block (fast,
    large), the cube creeps by 0.05 in half the blocks (slow, small): what takes time is the
    cube, what the L2 distance sees is the arm."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        arm = rng.uniform(-1, 1, (length, 2))
        cube = rng.uniform(-1, 1) + 0.05 * np.cumsum(rng.random(length) < 0.5)
        out.append(torch.as_tensor(np.column_stack([arm, cube]), dtype=torch.float32))
    return out


def test_it_learns_that_the_slow_small_change_is_the_far_one():
    cfg = TemporalDistanceConfig(max_blocks=12, hidden=64, steps=600, batch_size=256, seed=1)
    head, fit = fit_temporal_distance(arm_and_cube_episodes(), cfg)
    assert fit.held_out_episodes == 4 and head.fit is fit
    assert fit.held_out_mae_blocks < 0.6 * fit.mean_label_mae_blocks
    goal = torch.tensor([0.5, -0.5, 0.2])
    arm_off = torch.tensor([-0.7, 0.6, 0.2])  # the arm elsewhere, the cube in place
    cube_off = torch.tensor([0.5, -0.5, 0.0])  # the arm in place, the cube 0.2 short (~8 blocks)
    l2 = lambda z: (z - goal).pow(2).sum().item()
    assert l2(arm_off) > 10 * l2(cube_off)  # the L2 cost prefers leaving the cube behind
    assert head(cube_off, goal).item() > head(arm_off, goal).item() + 3  # the learned one does not
    assert 0.0 <= head(goal, goal).item() < head(arm_off, goal).item()  # the goal is nearest


def test_pairs_are_offsets_inside_one_episode_or_capped_across_episodes():
    latents = [torch.arange(t, dtype=torch.float32)[:, None] + 100 * e for e, t in
               enumerate((30, 5, 12))]
    cfg = TemporalDistanceConfig(max_blocks=6, other_episode_fraction=0.3)
    za, zb, k = _pairs(_Table(latents), 4000, cfg, np.random.default_rng(0))
    same = (za // 100 == zb // 100).squeeze(-1)
    assert torch.equal((zb - za).squeeze(-1)[same], k[same])  # the blocks between the two frames
    assert (k[same] >= 0).all() and (k <= 6).all()
    assert (k[~same] == 6).all() and 0.2 < (~same).float().mean() < 0.4
    assert set(k[same].int().tolist()) == set(range(7))


def test_the_learned_distance_replaces_the_l2_cost_in_planning():
    class Drift:  # z_{t+1} = z_t + a: a world model whose rollout is known
        action_dim = 3

        def rollout(self, z, actions):
            steps = z[:, -1:] + actions[:, z.shape[1] - 1:].cumsum(1)
            return torch.cat([z, steps], dim=1)

    z, goal = torch.zeros(2, 1, 3), torch.ones(2, 3)
    actions = torch.randn(2, 5, 4, 3)
    plain = LatentGoalCost(Drift(), z, z[:, :0], goal, "sum")(actions)
    same = LatentGoalCost(Drift(), z, z[:, :0], goal, "sum",
                          distance=lambda a, b: (a - b).pow(2).sum(-1))(actions)
    torch.testing.assert_close(same, plain)
    head = TemporalDistance(3, hidden=8, max_blocks=4)
    learned = LatentGoalCost(Drift(), z, z[:, :0], goal, "last", distance=head)(actions)
    future = z[:, None] + actions.cumsum(2)  # (B, S, H, D)
    torch.testing.assert_close(learned, head(future[:, :, -1], goal[:, None]).detach())


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="plan.eval.cost must be one of"):
        ClosedLoopConfig(cost="value")
    with pytest.raises(ValueError, match=r"plan.eval.temporal.max_blocks=0"):
        TemporalDistanceConfig(max_blocks=0)
    with pytest.raises(ValueError, match="at least two frames"):
        fit_temporal_distance([torch.zeros(1, 3)])
