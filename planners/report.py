"""Files of a closed-loop evaluation: ``report.json``, agent | goal GIFs, a distance plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from envs.fileio import atomic_write_text

__all__ = ["plot_distances", "write_report", "write_videos"]

RUNS = ("agent", "floor", "ceiling")


def _strip(result: dict) -> dict:
    """The result without frames (JSON-ready)."""
    out = {}
    for key, value in result.items():
        if key in RUNS and isinstance(value, dict) and "rows" in value:
            rows = [{k: v for k, v in row.items() if k not in ("frames", "goal_frame")}
                    for row in value["rows"]]
            value = {**value, "rows": rows}
        out[key] = value
    return out


def write_videos(rows: list[dict], folder: Path, fps: int = 10, scale: int = 3) -> list[Path]:
    """One GIF per recorded episode: the agent's frames beside its goal frame."""
    import imageio.v2 as imageio

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        if not row.get("frames"):
            continue
        goal = row["goal_frame"]
        gap = np.full((goal.shape[0], 2, 3), 255, np.uint8)
        frames = [np.concatenate([f, gap, goal], axis=1) for f in row["frames"]]
        frames = [f.repeat(scale, 0).repeat(scale, 1) for f in frames]
        path = folder / f"episode-{row['seed']:05d}.gif"
        tmp = path.with_suffix(".tmp.gif")
        imageio.mimsave(tmp, frames, duration=1000 / fps, loop=0)
        tmp.replace(path)
        paths.append(path)
    return paths


def plot_distances(result: dict, path: Path, tolerance: float) -> Path:
    """Median (and 25-75% band) distance to goal over steps, for agent, floor and ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, color in zip(RUNS, ("C0", "C7", "C2")):
        rows = result.get(key, {}).get("rows")
        if not rows:
            continue
        length = max(len(r["distance"]) for r in rows)
        traces = np.array([r["distance"] + [r["distance"][-1]] * (length - len(r["distance"]))
                           for r in rows])  # (E, T): finished episodes hold their last value
        steps = np.arange(length)
        rate = result[key]["success_rate"]
        ax.plot(steps, np.median(traces, 0), color=color, label=f"{key} ({rate:.0%})")
        ax.fill_between(steps, *np.percentile(traces, [25, 75], axis=0), color=color, alpha=0.2)
    ax.axhline(tolerance, color="k", ls="--", lw=0.8, label="tolerance")
    ax.set_yscale("log")
    ax.set_xlabel("env step")
    ax.set_ylabel("distance to goal")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(result: dict, folder: Path) -> Path:
    """``report.json``, the videos of the recorded agent episodes and ``distance.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_videos(result["agent"]["rows"], folder / "videos")
    plot_distances(result, folder / "distance.png", result["goal"]["tolerance"])
    path = folder / "report.json"
    atomic_write_text(path, json.dumps(_strip(result), indent=2))
    return path
