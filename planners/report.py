"""Files of a closed-loop evaluation: ``report.json``, agent | goal GIFs, a distance plot.

A sharded evaluation (``plan.eval.num_shards > 1``: array tasks or parallel processes) writes
one ``shards/shard-<i>-of-<n>.json`` per shard; ``merge_shards`` checks they belong to one
evaluation and merges them into the ``report.json`` a single process would have written
(timings aside).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from envs.fileio import atomic_write_text
from planners.evaluate import summarize

__all__ = ["ShardError", "merge_shards", "plot_distances", "shard_path", "write_report",
           "write_shard", "write_videos"]

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


class ShardError(ValueError):
    """Shard files that do not form one evaluation (missing, duplicated or mismatched)."""


def shard_path(folder: Path, index: int, count: int) -> Path:
    return Path(folder) / "shards" / f"shard-{index:04d}-of-{count:04d}.json"


def write_shard(result: dict, folder: Path) -> Path:
    """This shard's rows (JSON) and the videos of its recorded episodes."""
    shard = result["shard"]
    write_videos(result["agent"]["rows"], Path(folder) / "videos")
    return atomic_write_text(shard_path(folder, shard["index"], shard["count"]),
                             json.dumps(_strip(result), indent=2))


# what must agree between shards of one evaluation (the config but its shard index)
_SAME = ("goal", "budget_env_steps", "env_id", "checkpoint_sha256", "planner", "precision")


def merge_shards(folder: Path, count: int | None = None) -> dict | None:
    """The merged result of ``folder/shards``, or None while shards are still missing.

    Raises:
        ShardError: shards of other evaluations, or of different shard counts, are mixed.
    """
    files = sorted((Path(folder) / "shards").glob("shard-*-of-*.json"))
    if not files:
        raise ShardError(f"no shard files in {Path(folder) / 'shards'}")
    shards = [json.loads(f.read_text()) for f in files]
    counts = {s["shard"]["count"] for s in shards}
    if len(counts) > 1 or (count is not None and counts != {count}):
        raise ShardError(f"{Path(folder) / 'shards'} mixes shard counts {sorted(counts)}; "
                         "delete the stale shard files and rerun")
    n = counts.pop()
    present = sorted(s["shard"]["index"] for s in shards)
    if len(present) != len(set(present)):
        raise ShardError(f"duplicate shards in {Path(folder) / 'shards'}")
    first = shards[0]
    reference = _unsharded(first["config"])
    for s in shards[1:]:
        differ = [k for k in _SAME if s.get(k) != first.get(k)] + (
            ["config"] if _unsharded(s["config"]) != reference else [])
        if differ:
            raise ShardError(f"shard {s['shard']['index']} and shard "
                             f"{first['shard']['index']} differ in {differ}: they are not "
                             "parts of one evaluation")
    if len(present) < n:
        return None
    merged = {k: v for k, v in first.items() if k not in (*RUNS, "shard", "seeds")}
    order = np.argsort(np.concatenate([s["shard"]["episodes"] for s in shards]), kind="stable")
    merged["seeds"] = [int(x) for x in np.concatenate([s["seeds"] for s in shards])[order]]
    for run in RUNS:
        parts = [s.get(run) for s in shards]
        if any(p is None for p in parts):
            continue
        if any("skipped" in p for p in parts):
            merged[run] = parts[0]
            continue
        rows = [r for p in parts for r in p["rows"]]
        rows = [rows[i] for i in order]
        merged[run] = {**summarize(rows), "rows": rows}
    merged["wall_seconds"] = max(s["wall_seconds"] for s in shards)  # in parallel
    merged["process_seconds"] = sum(s["wall_seconds"] for s in shards)
    merged["shards"] = n
    merged["config"] = reference
    return merged


def _unsharded(config: dict) -> dict:
    """A shard's plan config without its shard index: equal for all shards of one evaluation."""
    return {**config, "eval": {**config["eval"], "shard": None}}
