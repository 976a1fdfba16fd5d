"""Files of a closed-loop evaluation: ``report.json``, agent | goal GIFs, a distance plot, and
the pages that show them (``report.html``, ``report.md``: ``planners.report_html``).

A sharded evaluation (``plan.eval.num_shards > 1``: array tasks or parallel processes) writes
one ``shards/shard-<i>-of-<n>.json`` per shard; ``merge_shards`` checks they belong to one
evaluation and merges them into the ``report.json`` a single process would have written
(timings aside).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from common.fileio import atomic_write_text
from planners.report_html import write_pages
from planners.results import RUNS, EpisodeRow, EvalReport, RunSummary

__all__ = ["ShardError", "merge_shards", "plot_distances", "recorded_videos", "shard_path",
           "video_path", "write_eval_shard", "write_report", "write_videos"]


def video_path(folder: Path, seed: int) -> Path:
    """Where ``write_videos`` puts the GIF of the episode with ``seed``."""
    return Path(folder) / f"episode-{seed:05d}.gif"


def recorded_videos(report: EvalReport, folder: Path) -> list[Path]:
    """The GIFs of ``report``'s recorded episodes (the first ``plan.eval.videos``, or every
    episode when the report has no config) that exist in ``folder``, in episode order."""
    settings = report.eval_settings
    count = settings.videos if settings is not None else len(report.seeds)
    paths = [video_path(folder, seed) for seed in report.seeds[:count]]
    return [p for p in paths if p.is_file()]


def write_videos(rows: list[EpisodeRow], folder: Path, fps: int = 10, scale: int = 3
                 ) -> list[Path]:
    """One GIF per recorded episode: the agent's frames beside its goal frame."""
    import imageio.v2 as imageio

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in rows:
        if not row.frames:
            continue
        goal = row.goal_frame
        gap = np.full((goal.shape[0], 2, 3), 255, np.uint8)
        frames = [np.concatenate([f, gap, goal], axis=1) for f in row.frames]
        frames = [f.repeat(scale, 0).repeat(scale, 1) for f in frames]
        path = video_path(folder, row.seed)
        tmp = path.with_suffix(".tmp.gif")
        imageio.mimsave(tmp, frames, duration=1000 / fps, loop=0)
        tmp.replace(path)
        paths.append(path)
    return paths


def plot_distances(report: EvalReport, path: Path, tolerance: float) -> Path:
    """Median (and 25-75% band) distance to goal over steps, for agent, floor and ceiling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    colors = dict(zip(RUNS, ("C0", "C7", "C2")))
    for key, run in report.runs():
        if not run.rows:
            continue
        length = max(len(r.distance) for r in run.rows)
        traces = np.array([r.distance + [r.distance[-1]] * (length - len(r.distance))
                           for r in run.rows])  # (E, T): finished episodes hold their last value
        steps = np.arange(length)
        ax.plot(steps, np.median(traces, 0), color=colors[key],
                label=f"{key} ({run.success_rate:.0%})")
        ax.fill_between(steps, *np.percentile(traces, [25, 75], axis=0), color=colors[key],
                        alpha=0.2)
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


def write_report(report: EvalReport, folder: Path) -> Path:
    """``report.json``, the videos of the recorded agent episodes, ``distance.png``, then
    ``report.html`` and ``report.md``; returns the path of ``report.json``.

    A merged report holds no frames: its videos are the ones its shards wrote to ``folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_videos(report.agent.rows, folder / "videos")
    plot = plot_distances(report, folder / "distance.png", report.goal.tolerance)
    path = folder / "report.json"
    atomic_write_text(path, json.dumps(report.to_dict(), indent=2))
    write_pages(report, folder, plot, recorded_videos(report, folder / "videos"))
    return path


class ShardError(ValueError):
    """Shard files that do not form one evaluation (missing, duplicated or mismatched)."""


def shard_path(folder: Path, index: int, count: int) -> Path:
    return Path(folder) / "shards" / f"shard-{index:04d}-of-{count:04d}.json"


def write_eval_shard(report: EvalReport, folder: Path) -> Path:
    """This shard's rows (JSON) and the videos of its recorded episodes."""
    if report.shard is None:
        raise ValueError("write_eval_shard needs the report of one shard (report.shard is None)")
    write_videos(report.agent.rows, Path(folder) / "videos")
    return atomic_write_text(shard_path(folder, report.shard.index, report.shard.count),
                             json.dumps(report.to_dict(), indent=2))


# what must agree between shards of one evaluation (the config but its shard index)
_SAME = ("goal", "budget_env_steps", "env_id", "checkpoint_sha256", "planner", "precision")


def _read_shards(folder: Path, count: int | None) -> tuple[list[EvalReport], int]:
    """The shard files of ``folder`` (sorted by name) and their shard count, checked."""
    files = sorted((Path(folder) / "shards").glob("shard-*-of-*.json"))
    if not files:
        raise ShardError(f"no shard files in {Path(folder) / 'shards'}")
    shards = [EvalReport.from_dict(json.loads(f.read_text())) for f in files]
    if any(s.shard is None for s in shards):
        raise ShardError(f"{Path(folder) / 'shards'} holds a file without shard information")
    counts = {s.shard.count for s in shards}
    if len(counts) > 1 or (count is not None and counts != {count}):
        raise ShardError(f"{Path(folder) / 'shards'} mixes shard counts {sorted(counts)}; "
                         "delete the stale shard files and rerun")
    present = [s.shard.index for s in shards]
    if len(present) != len(set(present)):
        raise ShardError(f"duplicate shards in {Path(folder) / 'shards'}")
    first, reference = shards[0], _unsharded(shards[0].config)
    for s in shards[1:]:
        differ = [k for k in _SAME if getattr(s, k) != getattr(first, k)] + (
            ["config"] if _unsharded(s.config) != reference else [])
        if differ:
            raise ShardError(f"shard {s.shard.index} and shard {first.shard.index} differ in "
                             f"{differ}: they are not parts of one evaluation")
    return shards, counts.pop()


def merge_shards(folder: Path, count: int | None = None) -> EvalReport | None:
    """The merged report of ``folder/shards``, or None while shards are still missing.

    Raises:
        ShardError: shards of other evaluations, or of different shard counts, are mixed.
    """
    shards, n = _read_shards(folder, count)
    if len(shards) < n:
        return None
    order = np.argsort(np.concatenate([s.shard.episodes for s in shards]), kind="stable")
    runs = {}
    for run in RUNS:
        parts = [getattr(s, run) for s in shards]
        if any(p is None for p in parts):
            runs[run] = None
        elif any(p.skipped is not None for p in parts):
            runs[run] = parts[0]
        else:
            rows = [r for p in parts for r in p.rows]
            runs[run] = RunSummary.from_rows([rows[i] for i in order])
    seeds = np.concatenate([s.seeds for s in shards])[order]
    wall = [s.wall_seconds for s in shards]
    pairs = None
    if shards[0].pairs is not None:
        every = [p for s in shards for p in s.pairs]
        pairs = [every[i] for i in order]
    return replace(shards[0], **runs, shard=None, seeds=[int(x) for x in seeds], pairs=pairs,
                   wall_seconds=max(wall), process_seconds=sum(wall), shards=n,
                   config=_unsharded(shards[0].config))  # wall time: the shards ran in parallel


def _unsharded(config: dict) -> dict:
    """A shard's plan config without its shard index: equal for all shards of one evaluation."""
    return {**config, "eval": {**config["eval"], "shard": None}}
