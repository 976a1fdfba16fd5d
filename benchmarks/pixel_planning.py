"""The paper's planning test and LQR check on pixel encoders (SCIENCE.md section 4, "Pixels").

Used by ``benchmarks.pixel_identifiability`` on every encoder it trains (and on snapshots taken
during training, which are less identifiable):

- **Planning**: start/goal frames rendered at joint angles ``z ~ N(0, I)`` kept inside
  ``|theta| < pi - 0.25``; the straight line between the encoded start and goal in latent
  space, decoded to joint angles by a distance-weighted k-NN regressor (k = 5) fitted on
  labelled frames of the same law, endpoints pinned to the true angles; reported as
  ``J(latent plan) / J(straight line in theta)`` with
  ``J = sum_t |theta_t - theta_goal|^2 + sum_t |theta_{t+1} - theta_t|^2`` (ideal 1;
  ``worldmodel.identifiability.latent_line_plan_ratio``).
- **LQR**: ``A = [[0.95, 0.05], [-0.03, 0.92]]``, ``B = 0.3 I``, ``W = R = I``; the Riccati
  equation solved in true coordinates and in the encoder's push-forward coordinates (OLS map
  ``z -> h``), and the relative error of the value function on 200 held-out points
  (``worldmodel.identifiability.lqr_value_error``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel.identifiability import (
    knn_regressor,
    latent_line_plan_ratio,
    lqr_value_error,
    r2_score,
)

__all__ = [
    "LQR_A",
    "LQR_B",
    "PAPER",
    "PlanningFrames",
    "planning_metrics",
    "planning_table",
    "plot_planning",
]

LQR_A = [[0.95, 0.05], [-0.03, 0.92]]
LQR_B = [[0.3, 0.0], [0.0, 0.3]]
MARGIN = 0.25  # start and goal angles inside |theta| < pi - MARGIN
# the paper's medians and IQRs of J(latent) / J(theta line)
PAPER = {"ou": (1.0, 0.99, 1.05), "trajectories": (1.15, 1.0, 1.35)}


def boxed_gaussian_angles(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` joint-angle pairs ``z ~ N(0, I)`` with both inside ``|theta| < pi - MARGIN``."""
    out = np.empty((0, 2))
    while len(out) < n:
        z = rng.standard_normal((2 * n, 2))
        out = np.concatenate([out, z[(np.abs(z) < math.pi - MARGIN).all(1)]])
    return out[:n]


class PlanningFrames:
    """The frames every encoder is tested on: labelled frames for the k-NN decoder and the LQR
    map, and start/goal pairs, rendered once (reacher at rest, target hidden)."""

    def __init__(self, render, labelled: int = 3000, pairs: int = 40, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.theta = boxed_gaussian_angles(labelled, rng)  # (L, 2)
        self.pair_theta = boxed_gaussian_angles(2 * pairs, rng).reshape(pairs, 2, 2)
        self.frames = render(self.theta)  # uint8 (L, H, W, 3)
        self.pair_frames = render(self.pair_theta.reshape(-1, 2))  # (2P, H, W, 3)


def planning_metrics(encode, frames: PlanningFrames, steps: int = 20, k: int = 5
                     ) -> dict[str, Any]:
    """Plan ratios (one per pair, with median and IQR), R²(h -> theta) and the LQR value error
    of one encoder (``encode``: ``uint8 (N, H, W, 3) -> (N, 2)`` latents)."""
    h = encode(torch.from_numpy(frames.frames)).double()
    theta = torch.from_numpy(frames.theta)
    decode = knn_regressor(h, theta, k=k)
    hp = encode(torch.from_numpy(frames.pair_frames)).double().reshape(-1, 2, h.shape[1])
    tp = torch.from_numpy(frames.pair_theta)
    ratios = [latent_line_plan_ratio(hp[i, 0], hp[i, 1], tp[i, 0], tp[i, 1], decode, steps)
              for i in range(len(tp))]
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    fit = len(h) - 200  # the LQR map is fitted on all but 200 labelled frames
    lqr = lqr_value_error(theta, h, LQR_A, LQR_B, fit=fit)
    return {"plan_ratios": [float(r) for r in ratios], "plan_ratio_median": float(median),
            "plan_ratio_iqr": [float(q1), float(q3)], "plan_ratio_mean": float(np.mean(ratios)),
            "r2_h_to_theta": float(r2_score(h, theta)["r2"]), **lqr}


def planning_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown rows: each final encoder's plan ratio and LQR error beside the paper's."""
    lines = [("| encoder | R²(h→θ) | J ratio median (IQR) | paper | LQR value error (median) | "
             "map orthogonality error |"), "|---|---|---|---|---|---|"]
    for r in rows:
        p = r["planning"]
        kind = "ou" if r["rho"] is not None else "trajectories"
        paper = "{:.2f} ({:.2f}-{:.2f})".format(*PAPER[kind])
        lines.append(f"| {r['data']} | {p['r2_h_to_theta']:.3f} | {p['plan_ratio_median']:.3f} "
                     f"({p['plan_ratio_iqr'][0]:.3f}-{p['plan_ratio_iqr'][1]:.3f}) | {paper} | "
                     f"{p['value_error_median']:.3f} | {p['map_orthogonality_error']:.3f} |")
    return lines


def plot_planning(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``planning_box.png`` (ratios per final encoder) and ``planning_vs_r2.png`` (mean ratio
    against R²(h -> theta) over every encoder and snapshot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.boxplot([r["planning"]["plan_ratios"] for r in rows], showfliers=True)
    ax.set_xticks(range(1, len(rows) + 1), [r["data"].replace("policy trajectories",
                                                              "trajectories") for r in rows],
                  fontsize=7)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    for i, r in enumerate(rows, start=1):  # the paper's median and IQR beside each box
        median, low, high = PAPER["ou" if r["rho"] is not None else "trajectories"]
        ax.errorbar(i + 0.35, median, yerr=[[median - low], [high - median]], fmt="D",
                    color="C3", ms=4, capsize=3, label="paper: median, IQR" if i == 1 else None)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_yscale("log")  # a few far outliers would flatten the boxes near 1
    ax.set_ylabel("J(latent plan) / J(θ line), log scale")
    fig.tight_layout()
    box = out / "planning_box.png"
    fig.savefig(box, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for r in rows:
        points = [*r.get("snapshots", []), {"step": None, **r["planning"]}]
        ax.plot([p["r2_h_to_theta"] for p in points], [p["plan_ratio_mean"] for p in points],
                "o-", ms=4, label=r["data"].replace("policy trajectories", "trajectories"))
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.axvline(0.9, color="C7", lw=0.8, ls=":")
    ax.set_xlabel("R²(h → θ)")
    ax.set_ylabel("mean J ratio")
    ax.legend(fontsize=7)
    fig.tight_layout()
    scatter = out / "planning_vs_r2.png"
    fig.savefig(scatter, dpi=120)
    plt.close(fig)
    return [box, scatter]
