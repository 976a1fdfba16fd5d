"""The per-coordinate identifiability benchmark's measurements, on the tiny reacher dataset."""

import numpy as np
import pytest
import torch

from benchmarks import probe_coordinates as pc
from configs.loader import load_config
from envs.dataset import PixelDataset


@pytest.mark.parametrize("name", list(pc.VARIANTS))
def test_every_variant_is_a_valid_reacher_config(name):
    cfg = load_config("reacher", pc.VARIANTS[name][0])
    radius = cfg.env.kwargs["geom_radius"]
    assert set(radius) == set(pc.LINKS)  # every variant draws all three links explicitly


def test_joint_spread_matches_the_dataset(tiny_dataset):
    data = PixelDataset(tiny_dataset)
    spread = pc.joint_spread(data)
    states = [data.episode(e)["states"][:, :2].astype(np.float64)
              for e in range(data.num_episodes)]
    s = np.concatenate(states)
    steps = np.concatenate([np.angle(np.exp(1j * np.diff(x, axis=0))) for x in states])
    for i, joint in enumerate(pc.JOINTS):
        expected = max(np.sin(s[:, i]).std(), np.cos(s[:, i]).std())
        assert spread[joint]["sincos_std"] == pytest.approx(expected)
        assert spread[joint]["step_std"] == pytest.approx(steps[:, i].std())
        assert spread[joint]["step_std"] > 0  # the OU policy moves both joints


def test_pixel_sensitivity_grows_with_link_thickness_and_lever_length(tiny_dataset):
    data = PixelDataset(tiny_dataset)
    thin, thick = (pc.pixel_sensitivity("wm/reacher-v0", 32, {
        "invisible_geoms": ["target"], "geom_radius": dict.fromkeys(pc.LINKS, r)}, data,
        num_states=6) for r in (0.01, 0.03))
    for joint in pc.JOINTS:
        assert 0 < thin[joint] < thick[joint] < 1
    # turning the shoulder moves the whole arm, turning the wrist only the hand
    assert thick["shoulder"] > thick["wrist"]


def test_report_lists_every_variant():
    row = {"variant": "arm 3 cm", "r2": {"shoulder": 0.95, "wrist": 0.9},
           "sensitivity": {"shoulder": 0.05, "wrist": 0.02},
           "spread": {j: {"sincos_std": 0.7, "step_std": 0.05} for j in pc.JOINTS},
           "warnings": ["wrist_pos: not linearly readable"], "train_seconds": 100.0}
    text = pc.report([row], "python -m benchmarks.probe_coordinates")
    assert ("| arm 3 cm | 0.950 | 0.900 | – | 5.00% | 2.00% | 0.70 / 0.70 | 0.050 / 0.050 | "
            "100 |") in text
    row["frame_angles_r2"] = {"hand (absolute)": 0.97}
    assert "| arm 3 cm | 0.950 | 0.900 | 0.970 | 5.00% |" in pc.report([row], "cmd")
    assert "- arm 3 cm: wrist_pos: not linearly readable" in text


class _Identity(torch.nn.Module):
    """A stand-in world model whose latent is its input."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode(self, obs):
        return obs


class _Batches:
    """A stand-in datamodule: windows whose 'frames' are the link orientations themselves."""

    def __init__(self, seed):
        g = torch.Generator().manual_seed(seed)
        theta = (torch.rand(4000, 1, 2, generator=g) * 2 - 1) * torch.pi
        hand = theta[..., 0] + theta[..., 1]
        self.obs = torch.stack([theta[..., 0].sin(), theta[..., 0].cos(), hand.sin(), hand.cos()],
                               dim=-1)
        self.states = torch.cat([theta, torch.zeros_like(theta)], dim=-1)  # velocities zero

    def probe_dataloader(self, split):
        return [{"obs": self.obs[i:i + 500], "states": self.states[i:i + 500]}
                for i in range(0, 4000, 500)]


def test_a_latent_of_link_orientations_reads_the_relative_wrist_angle_worse():
    """What the frame shows is each link's absolute direction; the joint state's wrist angle is
    relative to the arm, a product of the two (not linear in them)."""
    r2 = pc.frame_angle_r2(_Identity(), _Batches(0))
    assert r2["shoulder"] == pytest.approx(1.0) and r2["hand (absolute)"] == pytest.approx(1.0)
    assert r2["wrist (relative)"] < 0.1
