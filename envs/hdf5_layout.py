"""Reading a stable-worldmodel / LeWM HDF5 file: its columns checked, its episode table
validated (the layout is described in ``envs.interop``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.dataset import DatasetError

__all__ = ["HDF5_INSTALL", "META_ATTR", "STATE_KEYS", "InteropError", "Layout", "h5py_module",
           "read_layout"]

HDF5_INSTALL = "pip install 'worldmodel-lab[hdf5]'"
META_ATTR = "wml_meta"  # our meta.json, as a JSON string attribute of the file's root
STATE_KEYS = ("state", "observation", "proprio")  # where foreign files keep a state


class InteropError(DatasetError):
    """An HDF5 file that is not in the layout this module reads, or does not fit its meta."""


def h5py_module():
    """``h5py``, or an ImportError naming the extra to install."""
    try:
        import h5py
    except ImportError:
        raise ImportError(f"reading and writing HDF5 datasets needs h5py: {HDF5_INSTALL}"
                          ) from None
    try:  # compression filters some published files use, where installed
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    return h5py



@dataclass
class Layout:
    """The validated columns of a file to import."""

    lengths: np.ndarray  # (E,) int64
    offsets: np.ndarray  # (E,) int64
    channels_first: bool
    image_size: int
    action_dim: int
    state_key: str | None
    state_dim: int
    has_physics: bool
    meta: dict[str, Any] | None  # our meta.json, when we wrote the file


def read_layout(f, source: Path, state_key: str | None) -> Layout:
    """The columns of the open file ``f`` checked against the layout, or an ``InteropError``
    naming what does not fit; ``state_key`` None picks the first of ``STATE_KEYS`` present."""
    keys = sorted(f.keys())
    missing = [k for k in ("pixels", "action", "ep_len", "ep_offset") if k not in f]
    if missing:
        raise InteropError(f"{source} lacks the dataset(s) {missing} of the stable-worldmodel "
                           f"HDF5 layout (it holds {keys}); export it with stable-worldmodel "
                           "(format='hdf5') or with `wml export`")
    _refuse_outside_storage(f, source)
    pixels, n = f["pixels"], f["pixels"].shape[0]
    if pixels.ndim != 4 or pixels.dtype != np.uint8 or 3 not in (pixels.shape[1],
                                                                   pixels.shape[-1]):
        raise InteropError(f"{source}: pixels is {pixels.dtype} {pixels.shape}; expected uint8 "
                           "RGB frames (N, H, W, 3) or (N, 3, H, W)")
    channels_first = pixels.shape[-1] != 3
    h, w = pixels.shape[2:] if channels_first else pixels.shape[1:3]
    if h != w:
        raise InteropError(f"{source}: frames are {h}x{w}; this dataset format holds square "
                           "frames only: resize them to a square size first")
    if state_key is None:
        state_key = next((k for k in STATE_KEYS if k in f and f[k].ndim in (1, 2)), None)
    elif state_key not in f:
        raise InteropError(f"{source} has no dataset {state_key!r} to read states from "
                           f"(it holds {keys}); choose one of them, or none")
    per_frame = [k for k in ("action", "reward", "terminated", "truncated", "episode_idx",
                             "physics", state_key) if k is not None and k in f]
    for k in per_frame:
        if f[k].shape[0] != n:
            raise InteropError(f"{source}: {k} has {f[k].shape[0]} rows but pixels has {n}; "
                               "every per-frame column must have one row per frame")
    lengths, offsets = _episode_table(f, source, n)
    meta = json.loads(f.attrs[META_ATTR]) if META_ATTR in f.attrs else None
    return Layout(lengths, offsets, channels_first, int(h), _width(f["action"]), state_key,
                   _width(f[state_key]) if state_key else 0, "physics" in f, meta)


def _refuse_outside_storage(f, source: Path) -> None:
    """Refuse datasets whose bytes live outside the file (HDF5 external storage, virtual
    datasets, external links): reading them would copy another file into the import."""
    for name in f:
        link = f.get(name, getlink=True)
        if not isinstance(link, h5py_module().HardLink):
            raise InteropError(f"{source}: {name!r} is a link to another file or path; "
                               "refused, as an imported file may only hold its own data")
        item = f[name]
        if hasattr(item, "shape") and (item.external or item.is_virtual):
            raise InteropError(f"{source}: the dataset {name!r} keeps its data outside the file "
                               "(HDF5 external or virtual storage); refused, as an import may "
                               "only copy the file's own bytes. Rewrite it with its data inside")


def _width(dataset) -> int:
    return int(np.prod(dataset.shape[1:], dtype=np.int64))


def _episode_table(f, source: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    kinds = {k: f[k].dtype for k in ("ep_len", "ep_offset") if f[k].dtype.kind not in "iu"}
    if kinds:
        raise InteropError(f"{source}: {', '.join(f'{k} is {v}' for k, v in kinds.items())}; "
                           "episode lengths and offsets are whole numbers (an integer dtype): "
                           "write them as integers")
    lengths = np.asarray(f["ep_len"][:], np.int64).reshape(-1)
    offsets = np.asarray(f["ep_offset"][:], np.int64).reshape(-1)
    if lengths.shape != offsets.shape or lengths.size == 0:
        raise InteropError(f"{source}: ep_len has {lengths.size} entries and ep_offset "
                           f"{offsets.size}; they need one entry per episode, at least one")
    spans = np.argsort(offsets, kind="stable")
    ends = offsets[spans] + lengths[spans]
    if lengths.min() < 1 or offsets.min() < 0 or ends.max() > n or np.any(
            offsets[spans][1:] < ends[:-1]):
        raise InteropError(f"{source}: ep_len / ep_offset do not describe disjoint episodes "
                           f"within the {n} frames (lengths {lengths.min()}..{lengths.max()}, "
                           f"offsets {offsets.min()}..{offsets.max()}); the file is corrupt")
    return lengths, offsets
