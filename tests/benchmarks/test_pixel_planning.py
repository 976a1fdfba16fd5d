"""The paper's planning test and LQR check, on encoders with known answers (no rendering)."""

import math

import numpy as np
import pytest
import torch

from benchmarks.pixel_planning import MARGIN, PlanningFrames, planning_metrics


@pytest.fixture(scope="module")
def frames():
    return PlanningFrames(lambda theta: theta.copy(), labelled=2000, pairs=30, seed=0)


def test_pairs_and_labels_stay_inside_the_box(frames):
    assert frames.pair_theta.shape == (30, 2, 2) and frames.frames.shape == (2000, 2)
    assert np.abs(frames.theta).max() < math.pi - MARGIN
    assert np.abs(frames.pair_theta).max() < math.pi - MARGIN


def test_a_rotated_encoder_plans_like_the_true_coordinates(frames):
    c, s = math.cos(0.9), math.sin(0.9)
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    out = planning_metrics(lambda x: x.double() @ rotation.T + 1.0, frames)
    assert len(out["plan_ratios"]) == 30 and out["r2_h_to_theta"] > 0.999
    assert out["plan_ratio_median"] == pytest.approx(1.0, abs=0.03)  # 5-NN decoding error only
    assert out["value_error_median"] < 1e-9 and out["map_orthogonality_error"] < 1e-9


def test_a_bent_encoder_plans_worse_and_a_stretched_one_mis_values(frames):
    def spiral(x):
        x = x.double()
        angle = 0.8 * x.norm(dim=-1, keepdim=True)
        return torch.cat([torch.cos(angle) * x[:, :1] - torch.sin(angle) * x[:, 1:],
                          torch.sin(angle) * x[:, :1] + torch.cos(angle) * x[:, 1:]], -1)

    bent = planning_metrics(spiral, frames)
    assert bent["plan_ratio_mean"] > 1.05 and bent["r2_h_to_theta"] < 0.95
    stretched = planning_metrics(lambda x: x.double() * torch.tensor([3.0, 0.3]), frames)
    assert stretched["r2_h_to_theta"] > 0.999  # linear: perfectly readable, but not a rotation
    assert stretched["value_error_median"] > 0.1 and stretched["map_orthogonality_error"] > 1


def test_the_planning_latency_benchmark_builds_the_default_model():
    """Before: ``benchmarks.planning`` still read ``cfg.world_model``, removed by the one-stack
    redesign, and failed at start."""
    from benchmarks.planning import default_model

    model, history = default_model(None)
    assert model.observation_shape == (64, 64, 3) and history == 3 and model.action_dim == 2


def test_closed_loop_cost_ratios_match_pairs_by_seed_and_leave_out_solved_starts():
    from benchmarks.thm4_planning import cost_ratios, episode_cost
    from planners.results import EpisodeRow

    def row(seed, distance):
        return EpisodeRow(seed, distance[-1] < 0.1, len(distance) - 1, distance[-1],
                          min(distance), distance)

    assert episode_cost([5.0, 2.0, 1.0]) == pytest.approx(30.0)  # the start included
    agent = [row(0, [1.0, 0.6, 0.3]), row(1, [0.05, 0.04]), row(2, [1.0, 0.9, 0.5])]
    ceiling = [row(2, [1.0, 0.3, 0.05]), row(1, [0.05, 0.01]), row(0, [1.0, 0.6, 0.3])]
    ratios, at_start = cost_ratios(agent, ceiling, tolerance=0.1)
    assert at_start == 1 and ratios[0] == pytest.approx(1.0)
    assert ratios[1] == pytest.approx((1 + 0.81 + 0.25) / (1 + 0.09 + 0.0025))


def test_thm4_report_shows_the_scale_free_error_and_marks_rows_without_it():
    from benchmarks.thm4_planning import report_md

    base = {"env": "wm/point_mass-v0", "pairs": 20, "solved_at_start": 0,
            "ceiling_success": 1.0, "r2_positions": 0.999, "orthogonality_error": 7.1,
            "procrustes_error": 33.8, "agent_success": 1.0, "cost_ratio_median": 1.01,
            "cost_ratio_iqr": [1.0, 1.02], "cost_ratio_mean": 1.02}
    text = report_md([{**base, "step": 500, "scaled_orthogonality_error": 0.123},
                      {**base, "step": 1000}], "point_mass", "python -m benchmarks.thm4_planning")
    assert "| 500 | 0.999 | 7.100 | 0.123 | 33.800 | 100% | 1.01 (1.00-1.02) | 1.02 |" in text
    assert "| 1000 | 0.999 | 7.100 | – | 33.800 |" in text
