"""What a dataset holds: counts, state and action statistics, a contact sheet and a GIF.

``inspect_dataset`` reads the arrays shard by shard (memory-mapped; only sums are kept), so
it works on datasets larger than memory; ``DatasetReport.text()`` is the summary ``wml
inspect`` prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.dataset import DatasetError, PixelDataset

__all__ = ["ActionStats", "DatasetReport", "StateStats", "inspect_dataset"]

BOUND_TOLERANCE = 1e-6  # an action within this of +-1 counts as at the bound
MIN_TILE = 64  # frames smaller than this are scaled up by an integer factor in the images
GAP = 2  # pixels between tiles
MAX_GIF_FRAMES = 300  # longer episodes are shown with a stride


@dataclass
class StateStats:
    """Range and moments of one state entry over every frame."""

    name: str
    min: float
    max: float
    mean: float
    std: float


@dataclass
class ActionStats:
    """Moments and range of one action dimension over every action taken (NaN rows left out),
    and the fraction of those at the bounds -1 or +1."""

    dim: int
    mean: float
    std: float
    min: float
    max: float
    at_bounds: float


@dataclass
class DatasetReport:
    """The summary of one dataset; ``text()`` renders it, ``to_dict()`` for JSON."""

    path: str
    env_id: str
    image_size: int
    policy: dict[str, Any]
    seed: int | None
    num_shards: int
    num_episodes: int
    num_frames: int
    episode_length: tuple[int, float, int]  # min, median, max
    terminated: int
    truncated: int
    ends_recorded: bool  # False: inferred from the lengths (shards older than the record)
    size_bytes: int
    states: list[StateStats] = field(default_factory=list)
    actions: list[ActionStats] = field(default_factory=list)
    contact_sheet: str | None = None
    gif: str | None = None
    verified: bool | None = None  # None: not checked
    verify_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """An aligned, human-readable summary."""
        lo, median, hi = self.episode_length
        kwargs = f" {self.policy.get('kwargs')}" if self.policy.get("kwargs") else ""
        ends = "recorded" if self.ends_recorded else "inferred from lengths"
        size = (f"{self.num_shards} shards, {self.num_episodes} episodes, {self.num_frames} "
                f"frames, {_bytes(self.size_bytes)} on disk")
        rows = [("dataset", self.path),
                ("env", f"{self.env_id}  ({self.image_size}x{self.image_size} px)"),
                ("policy", f"{self.policy.get('name')}{kwargs}  (seed {self.seed})"),
                ("size", size),
                ("episode length", f"min {lo}, median {median:g}, max {hi}"),
                ("episode ends", f"{self.terminated} terminated, {self.truncated} truncated, "
                                 + ends)]
        if self.contact_sheet:
            rows.append(("contact sheet", self.contact_sheet))
        if self.gif:
            rows.append(("gif", self.gif))
        rows.append(("verify", _verdict(self.verified, self.verify_error)))
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        lines += ["", "states"] + _table(["name", "min", "max", "mean", "std"],
                                         [[s.name, s.min, s.max, s.mean, s.std]
                                          for s in self.states])
        lines += ["", "actions"] + _table(["dim", "mean", "std", "min", "max", "at +-1"],
                                          [[a.dim, a.mean, a.std, a.min, a.max,
                                            f"{a.at_bounds:.1%}"] for a in self.actions])
        return "\n".join(lines)


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _verdict(verified: bool | None, error: str | None) -> str:
    if verified is None:
        return "not run (verify=True checks every CRC32)"
    return "ok: every array matches its CRC32" if verified else f"FAILED: {error}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    cells = [header] + [[c if isinstance(c, str) else f"{c:.4g}" for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]


def inspect_dataset(dataset: str | Path | PixelDataset, out_dir: str | Path | None = None, *,
                    episodes: int = 4, frames: int = 8, verify: bool = False) -> DatasetReport:
    """Summarise ``dataset``; with ``out_dir``, also write ``contact_sheet.png`` (``episodes``
    evenly spaced episodes as rows, ``frames`` evenly spaced frames as columns) and
    ``episodes.gif`` (those episodes side by side). ``verify`` checks every CRC32 and records
    a failure, naming the file, in the report."""
    if episodes < 1 or frames < 1:
        raise ValueError(f"episodes and frames must be >= 1, got {episodes} and {frames}")
    data = dataset if isinstance(dataset, PixelDataset) else PixelDataset(dataset)
    m, table, ends = data.meta, data.episodes(), data.episode_ends()
    lengths = table[:, 3]
    report = DatasetReport(
        path=str(data.root), env_id=m.env.id, image_size=m.image_size,
        policy=dict(m.policy), seed=m.seed, num_shards=len(data.shards),
        num_episodes=len(table), num_frames=data.num_frames,
        episode_length=(int(lengths.min()), float(np.median(lengths)), int(lengths.max())),
        terminated=int(ends[:, 0].sum()), truncated=int(ends[:, 1].sum()),
        ends_recorded=data.has_episode_ends,
        size_bytes=sum(p.stat().st_size for p in data.root.rglob("*") if p.is_file()),
        states=_state_stats(data), actions=_action_stats(data))
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        picks = _pick_episodes(data, episodes)
        report.contact_sheet = str(_write_contact_sheet(picks, frames, out / "contact_sheet.png"))
        report.gif = str(_write_gif(picks, out / "episodes.gif", m.render_fps or 20))
    if verify:
        try:
            data.verify()
            report.verified = True
        except DatasetError as err:
            report.verified, report.verify_error = False, str(err)
    return report


# -- statistics --------------------------------------------------------------------------------


def _moments(chunks, dim: int) -> tuple[np.ndarray, ...]:
    """min, max, mean, std per column of a stream of ``(n, dim)`` chunks (float64 sums; NaN
    where there are no rows)."""
    count, total, squares = 0, np.zeros(dim), np.zeros(dim)
    lo, hi = np.full(dim, np.inf), np.full(dim, -np.inf)
    for x in chunks:
        x = np.asarray(x, np.float64)
        count += len(x)
        total, squares = total + x.sum(0), squares + np.square(x).sum(0)
        lo, hi = np.minimum(lo, x.min(0, initial=np.inf)), np.maximum(hi, x.max(0, initial=-np.inf))
    if count == 0:
        return (np.full(dim, np.nan),) * 4
    mean = total / count
    return lo, hi, mean, np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))


def _state_stats(data: PixelDataset) -> list[StateStats]:
    dim = data.meta.state_dim
    lo, hi, mean, std = _moments((s.array("states") for s in data.shards), dim)
    names = list(data.meta.state_names)
    names += [f"state_{i}" for i in range(len(names), dim)]
    return [StateStats(names[i], float(lo[i]), float(hi[i]), float(mean[i]), float(std[i]))
            for i in range(dim)]


def _taken(data: PixelDataset):
    for s in data.shards:  # the NaN rows are episodes' last frames: no action follows them
        actions = np.asarray(s.array("actions"))
        yield actions[np.isfinite(actions).all(1)]


def _action_stats(data: PixelDataset) -> list[ActionStats]:
    dim = data.meta.action_dim
    lo, hi, mean, std = _moments(_taken(data), dim)
    at_bound, count = np.zeros(dim), 0
    for a in _taken(data):
        at_bound += (np.abs(a) >= 1 - BOUND_TOLERANCE).sum(0)
        count += len(a)
    share = at_bound / count if count else np.full(dim, np.nan)
    return [ActionStats(i, float(mean[i]), float(std[i]), float(lo[i]), float(hi[i]),
                        float(share[i])) for i in range(dim)]


# -- images ------------------------------------------------------------------------------------


def _pick_episodes(data: PixelDataset, count: int) -> list[np.ndarray]:
    """The pixels ``(L, H, W, 3)`` of ``count`` episodes spread evenly over the dataset."""
    index = np.sort(data.episodes()[:, 0])
    rows = np.unique(np.linspace(0, len(index) - 1, min(count, len(index))).round().astype(int))
    return [data.episode(int(index[r]))["pixels"] for r in rows]


def _scale(frame: np.ndarray) -> np.ndarray:
    k = max(1, -(-MIN_TILE // frame.shape[0]))
    return frame.repeat(k, 0).repeat(k, 1) if k > 1 else frame


def _grid(tiles: list[list[np.ndarray | None]]) -> np.ndarray:
    """Tiles (``None``: blank) laid out in rows with ``GAP`` white pixels between them."""
    side = next(t for row in tiles for t in row if t is not None).shape[0]
    rows, cols = len(tiles), max(len(r) for r in tiles)
    sheet = np.full((rows * (side + GAP) - GAP, cols * (side + GAP) - GAP, 3), 255, np.uint8)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if tile is not None:
                y, x = i * (side + GAP), j * (side + GAP)
                sheet[y:y + side, x:x + side] = tile
    return sheet


def _write_contact_sheet(picks: list[np.ndarray], frames: int, path: Path) -> Path:
    import imageio.v3 as iio

    tiles = []
    for pixels in picks:
        at = np.unique(np.linspace(0, len(pixels) - 1, min(frames, len(pixels))).round())
        tiles.append([_scale(pixels[int(t)]) for t in at])
    iio.imwrite(path, _grid(tiles))
    return path


def _write_gif(picks: list[np.ndarray], path: Path, fps: float) -> Path:
    import imageio.v3 as iio

    longest = max(len(p) for p in picks)
    stride = -(-longest // MAX_GIF_FRAMES)
    movie = [_grid([[_scale(p[min(t, len(p) - 1)]) for p in picks]])  # ended ones hold still
             for t in range(0, longest, stride)]
    iio.imwrite(path, np.stack(movie), duration=1000 * stride / fps, loop=0)
    return path
