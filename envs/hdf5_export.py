"""Data interop: a dataset exported to the stable-worldmodel / LeWM HDF5 layout.

The layout and its conventions are described in ``envs.interop``, which imports such a file
back; ``envs.hdf5_layout`` reads and checks one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from common.fileio import check_new_output
from envs.dataset import PixelDataset
from envs.hdf5_layout import META_ATTR, h5py_module

__all__ = ["export_hdf5"]


def export_hdf5(dataset: str | Path, out: str | Path, *, progress: bool = True,
                force: bool = False) -> Path:
    """Write the dataset at ``dataset`` to the HDF5 file ``out`` (the layout of ``envs.interop``).

    Episodes go in order of their index, one at a time; the file is written under a temporary
    name and renamed when complete. Returns ``out``. An existing ``out`` is replaced only with
    ``force``; one inside ``dataset`` never is (``OutputError``).
    """
    h5py = h5py_module()
    from tqdm.auto import tqdm

    out = check_new_output(out, (dataset,), force, "the HDF5 file")
    data = PixelDataset(dataset)
    table = data.episodes()  # (E, 4) [episode, shard, first row, length]
    order = np.argsort(table[:, 0], kind="stable")
    lengths = table[order, 3]
    ends = data.episode_ends()[order]  # (E, 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w", libver="latest") as f, \
                tqdm(total=int(lengths.sum()), unit="frame", desc=f"export {out.name}",
                     disable=not progress, dynamic_ncols=True) as bar:
            columns = _create_columns(f, data, int(lengths.sum()))
            f.create_dataset("ep_len", data=lengths.astype(np.int32))
            f.create_dataset("ep_offset", data=np.cumsum(lengths) - lengths)  # int64
            f.attrs[META_ATTR] = json.dumps(data.meta.to_dict())
            row = 0
            for (index, k, start, length), end in zip(table[order], ends, strict=True):
                for name, values in _episode_rows(data, int(k), int(start), int(length),
                                                  int(index), end).items():
                    columns[name][row:row + length] = values
                row += int(length)
                bar.update(int(length))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _create_columns(f, data: PixelDataset, n: int) -> dict[str, Any]:
    m, size = data.meta, data.meta.image_size
    specs = {"pixels": (np.uint8, (size, size, 3)), "action": (np.float32, (m.action_dim,)),
             "reward": (np.float32, ()), "terminated": (np.bool_, ()),
             "truncated": (np.bool_, ()), "step_idx": (np.int64, ()),
             "episode_idx": (np.int64, ()), "state": (np.float32, (m.state_dim,))}
    if data.has_physics:
        specs["physics"] = (np.float64, (m.physics_dim,))
    return {name: f.create_dataset(name, shape=(n, *shape), dtype=dtype,
                                   chunks=(1, *shape) if name == "pixels" else None)
            for name, (dtype, shape) in specs.items()}


def _episode_rows(data: PixelDataset, k: int, start: int, length: int, index: int,
                  end: np.ndarray) -> dict[str, np.ndarray]:
    """One episode's rows of every exported column, in the file's conventions."""
    shard, rows = data.shards[k], slice(start, start + length)
    reward = np.full(length, np.nan, np.float32)  # the step into frame t, not out of it
    reward[1:] = shard.array("rewards")[start:start + length - 1]
    flags = np.zeros((2, length), bool)
    flags[:, -1] = end
    out = {"pixels": shard.array("pixels")[rows], "action": shard.array("actions")[rows],
           "reward": reward, "terminated": flags[0], "truncated": flags[1],
           "step_idx": np.arange(length), "episode_idx": np.full(length, index),
           "state": shard.array("states")[rows]}
    if data.has_physics:
        out["physics"] = shard.array("physics")[rows]
    return out
