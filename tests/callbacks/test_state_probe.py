"""The probe line train.py prints: positions first, the pooled R² labelled with its velocities."""

import pytest
import torch

from callbacks.state_probe import is_velocity, probe_summary

REACHER = {"probe/r2": 0.120, "probe/r2_shoulder_pos": 0.958, "probe/r2_wrist_pos": 0.835,
           "probe/r2_shoulder_vel": 0.011, "probe/r2_wrist_vel": 0.004,
           "probe/orthogonality_error": 0.7, "probe/procrustes_error": 0.6}


@pytest.mark.parametrize("name, velocity", [
    ("wrist_vel", True), ("ball_vel[2]", True), ("qvel[0]", True), ("wrist_pos", False),
    ("qpos[3]", False), ("cube_x", False), ("gripper_opening", False), ("velocity_gain", False)])
def test_velocities_are_told_by_their_state_names(name, velocity):
    assert is_velocity(name) is velocity


def test_the_line_leads_with_the_positions_and_explains_the_low_pooled_r2():
    first, second = probe_summary(REACHER).splitlines()
    assert first.endswith("shoulder_pos 0.958, wrist_pos 0.835") and "0.120" not in first
    assert "pooled over all 4 state entries 0.120" in second
    assert "velocities (shoulder_vel 0.011, wrist_vel 0.004)" in second
    assert "one frame does not show" in second


def test_without_velocities_the_pooled_r2_needs_no_excuse():
    line = probe_summary({"probe/r2": 0.995, "probe/r2_x": 0.999, "probe/r2_y": 1.0})
    assert "x 0.999, y 1.000" in line and "pooled over all 2 state entries 0.995" in line
    assert "velocit" not in line


def test_velocities_only_still_shows_every_number():
    line = probe_summary({"probe/r2": 0.02, "probe/r2_qvel[0]": 0.01, "probe/r2_qvel[1]": 0.03})
    assert "0.020" in line and "qvel[0] 0.010, qvel[1] 0.030" in line


class _ReadsFirstEntry(torch.nn.Module):
    """A stand-in world model whose latent holds state entry 0 and noise, nothing else."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.noise = torch.Generator().manual_seed(0)

    def encode(self, obs):
        noise = torch.randn(*obs.shape[:2], 3, generator=self.noise)
        return torch.cat([obs[..., :1], noise], dim=-1)


def _batches(seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(4):
        states = torch.randn(64, 1, 4, generator=g)
        states[..., 3] = 0.25  # never moves
        yield {"obs": states, "states": states}


def test_a_moving_entry_the_latent_cannot_read_is_warned_about_with_the_fix():
    from callbacks.state_probe import state_probe

    names = ["arm_pos", "wrist_pos", "wrist_vel", "target_pos"]
    out = state_probe(_ReadsFirstEntry(), _batches(0), _batches(1), names)
    assert out["probe/r2_arm_pos"] > 0.99 and out["probe/r2_wrist_pos"] < 0.1
    (warning,) = out["probe/warnings"]  # not the velocity, not the entry that never moves
    assert warning.startswith("state entry 'wrist_pos' moves in the data")
    assert "env.kwargs.geom_radius" in warning and "env.image_size" in warning
    assert "collect.policy_kwargs.std" in warning and "loss.regulariser_weight" in warning
    assert "warning: state entry 'wrist_pos'" in probe_summary(out)


class _HoldsPositionsScaled(torch.nn.Module):
    """A stand-in world model whose latent is 3 x a rotation of state entries 0 and 1."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def encode(self, obs):
        c, s = 0.6, 0.8
        x, y = obs[..., 0], obs[..., 1]
        return 3.0 * torch.stack([c * x - s * y, s * x + c * y], dim=-1)


def test_the_scale_free_orthogonality_error_sees_a_scaled_rotation_of_the_positions():
    from callbacks.state_probe import state_probe

    names = ["arm_pos", "wrist_pos", "wrist_vel", "target_pos"]
    out = state_probe(_HoldsPositionsScaled(), _batches(0), _batches(1), names)
    # the plain error counts the scale (A^T A = 9 on the positions) and the unread velocity
    assert out["probe/orthogonality_error"] > 3
    # velocities and the entry that never moves are left out; the scale is divided out
    assert out["probe/scaled_orthogonality_error"] < 0.05
    # a latent that reads one of the two positions is no rotation of them at any scale
    reads_one = state_probe(_ReadsFirstEntry(), _batches(0), _batches(1), names)
    assert reads_one["probe/scaled_orthogonality_error"] == pytest.approx(1.0, abs=0.1)


def test_an_angle_with_a_symmetry_is_probed_through_its_multiple():
    """A one-colour cube's yaw is visible only modulo 90 degrees: a latent that holds exactly
    what the frames show, (sin 4θ, cos 4θ), reads it perfectly at order 4 and not at all as a
    raw angle or as a plain (sin θ, cos θ)."""
    from callbacks.state_probe import heldout_r2, probe_targets

    g = torch.Generator().manual_seed(0)
    yaw = (torch.rand(4000, 1, generator=g) * 2 - 1) * torch.pi
    seen = torch.cat([torch.sin(4 * yaw), torch.cos(4 * yaw)], dim=-1)  # what a frame shows

    def r2(angular):
        y, groups = probe_targets(yaw, angular)
        return heldout_r2(seen[:2000], y[:2000], seen[2000:], y[2000:], groups)["r2"]

    assert r2({0: 4}) > 0.999
    assert r2(()) < 0.05 and r2({0}) < 0.05 and r2({0: 1}) < 0.05
    with pytest.raises(ValueError, match="positive integers"):
        probe_targets(yaw, {0: 0})


def test_a_datasets_angles_come_from_its_goal_spec_and_its_state_angles():
    from dataclasses import replace

    from callbacks.state_probe import StateProbe, angle_orders
    from envs.config import EnvConfig
    from envs.goals import GoalSpec
    from envs.meta import DatasetMeta, ModelMeta

    def meta_with(state_angles):
        data = DatasetMeta(env=EnvConfig(image_size=8), action_dim=1, state_dim=4,
                           state_names=["a_pos", "b_pos", "cube_yaw", "a_vel"],
                           num_episodes=1, episode_steps=1, episodes_per_shard=1, num_shards=1,
                           goal=GoalSpec(indices=(0, 1), tolerance=0.1, angular=(True, False)),
                           state_angles=state_angles)
        return ModelMeta((8, 8, 3), dataset=data)

    meta = meta_with({"cube_yaw": 4})
    assert angle_orders(meta) == {0: 1, 2: 4}
    assert StateProbe.from_meta(meta).angular == {0: 1, 2: 4}
    # datasets written before state_angles existed read as none
    old = ModelMeta.from_dict({k: v for k, v in meta.to_dict().items() if k != "state_angles"})
    assert old.state_angles == {} and angle_orders(old) == {0: 1}
    assert angle_orders(replace(meta, dataset=replace(meta.dataset, goal=None))) == {2: 4}
    with pytest.raises(ValueError, match="'yaw', which is not a state entry"):
        angle_orders(meta_with({"yaw": 4}))
