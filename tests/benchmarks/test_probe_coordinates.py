"""The per-coordinate identifiability benchmark's measurements, on the tiny reacher dataset."""

import numpy as np
import pytest

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
    assert "| arm 3 cm | 0.950 | 0.900 | 5.00% | 2.00% | 0.70 / 0.70 | 0.050 / 0.050 | 100 |" \
        in text
    assert "- arm 3 cm: wrist_pos: not linearly readable" in text
