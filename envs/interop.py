"""Data interop: the stable-worldmodel / LeWM HDF5 layout, and a file in it imported as a dataset.

The layout, as stable-worldmodel's HDF5 format documents it (``docs/api/dataset.md``) and its
``World`` records it: one ``.h5`` file, every column a root-level dataset with one row per
frame of all episodes back to back, plus two per-episode datasets::

    pixels      uint8   (N, H, W, 3)  RGB frame t (readers also accept (N, 3, H, W))
    action      float32 (N, A)        action taken after frame t; NaN on an episode's last row
    reward      float32 (N,)          reward received on arriving at frame t; NaN on its first
    terminated  bool    (N,)          the step that arrived at frame t ended the episode so
    truncated   bool    (N,)          ... or cut it short
    step_idx    int64   (N,)          t within the episode
    state       float32 (N, S)        low-dimensional state (LeWM's files call theirs
                                      ``observation``, ``proprio`` or ``state``)
    ep_len      int32   (E,)          frames of each episode
    ep_offset   int64   (E,)          row of each episode's first frame

What is established: the dataset names ``pixels``, ``action``, ``reward``, ``terminated``,
``truncated``, ``step_idx``, ``ep_len`` (int32) and ``ep_offset`` (int64); channels-last uint8
pixels; frames per row and episodes by length and offset; the action of row t being the one
taken after frame t with the last one NaN (their recorder sets the reset action to NaN and
moves it to the end), and the reward and flags being those of the step into frame t, so the
first reward is NaN. LeWM's configs load ``pixels``, ``action`` and ``observation`` (reacher,
cube) or ``proprio`` and ``state`` (PushT). Not established: the float widths (their recorder
keeps each value's own dtype, so a file may hold float64 actions or rewards; we write float32
and read any numeric type), and the published files themselves, which were not opened here.
What is our choice: the state column is written as
``state``, and imports look for ``state``, ``observation`` then ``proprio`` unless told; our
extras are the per-frame columns ``physics`` (float64 (N, P)) and ``episode_idx`` (int64, our
episode index), and the root attribute ``wml_meta`` (our ``meta.json`` as a JSON string).
Every extra is a per-frame column because their reader, unless told which keys to load, loads
every root dataset but ``ep_len`` and ``ep_offset`` as one.

Files are written (``envs.hdf5_export``) uncompressed, pixels chunked one frame at a time and
in the latest HDF5 format, as their recorder does (their reader opens files in SWMR mode); a
compressed published file needs ``hdf5plugin`` installed to be read. ``envs.hdf5_layout`` reads
and checks a file.

A file written by ``export_hdf5`` imports back byte for byte. A foreign file has no
``wml_meta``: the env must then be given (``env={"id": "wm/reacher-v0"}``); its per-episode
[terminated, truncated] are read from the flags of the episode's last row (a file with
``terminated`` only counts every other episode as truncated, one with neither all of them).
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from common.fileio import atomic_write_text, check_writable
from envs.config import EnvConfig
from envs.dataset import META, DatasetError, read_meta, shard_name
from envs.dataset_write import write_dataset_shard
from envs.hdf5_layout import (
    HDF5_INSTALL,
    META_ATTR,
    STATE_KEYS,
    InteropError,
    Layout,
    h5py_module,
    read_layout,
)
from envs.meta import DATASET_FORMAT_VERSION, DatasetMeta, MetaError

log = logging.getLogger(__name__)

__all__ = ["HDF5_INSTALL", "InteropError", "import_hdf5"]

DONE_KEYS = ("complete", "num_frames", "num_episodes_written")  # written once all shards are
SCRATCH_BYTES = 256 << 20  # shard pixels larger than this are staged on disk, not in memory



def import_hdf5(source: str | Path, out: str | Path, *, env: dict | None = None,
                episodes_per_shard: int | None = None, state_key: str | None = None,
                progress: bool = True) -> Path:
    """Write the HDF5 file ``source`` (module docstring layout) as a dataset in ``out``.

    Args:
        source: an ``.h5`` file from ``export_hdf5``, stable-worldmodel or LeWM.
        out: the dataset directory: new, empty, or an interrupted import of the same file
            (its complete shards are kept).
        env: ``EnvConfig`` fields (``{"id": "wm/reacher-v0"}``) of the env the file was
            recorded in; required for a file without our meta, checked against it otherwise.
        episodes_per_shard: default the exported dataset's own, else 50.
        state_key: the column holding states; default the first of ``state``,
            ``observation``, ``proprio`` present (none: states of width 0).
        progress: show a progress bar.

    Raises:
        ImportError: h5py is not installed. FileNotFoundError: no ``source``.
        InteropError: ``source`` is not HDF5 or not in the layout. ValueError: ``env`` missing
            or not fitting. DatasetError: ``out`` holds another dataset.
    """
    h5py, source = h5py_module(), Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source} not found: give the path of an .h5 file written by "
                                "`wml export`, stable-worldmodel or LeWM")
    if not h5py.is_hdf5(source):
        raise InteropError(f"{source} is not an HDF5 file; give an .h5 file in the "
                           "stable-worldmodel layout (pixels, action, ep_len, ep_offset)")
    from tqdm.auto import tqdm

    with h5py.File(source, "r") as f:
        layout = read_layout(f, source, state_key)
        _check_actions(f, layout, source)
        meta = _import_meta(layout, env, episodes_per_shard, source)
        root = _open_output(Path(out), meta)
        with tqdm(total=int(layout.lengths.sum()), unit="frame", desc=f"import {source.name}",
                  disable=not progress, dynamic_ncols=True) as bar:
            for k in range(meta.num_shards):
                first = k * meta.episodes_per_shard
                episodes = range(first, min(first + meta.episodes_per_shard,
                                            len(layout.lengths)))
                if not (root / shard_name(k)).is_dir():  # else kept from an interrupted import
                    _write_shard(f, layout, root, k, episodes, meta)
                bar.update(int(layout.lengths[list(episodes)].sum()))
    meta = replace(meta, complete=True, num_frames=int(layout.lengths.sum()),
                   num_episodes_written=len(layout.lengths))
    atomic_write_text(root / META, json.dumps(meta.to_dict(), indent=2))
    return root


def _import_meta(layout: Layout, env: dict | None, episodes_per_shard: int | None,
                 source: Path) -> DatasetMeta:
    env_cfg = _env_config(env, layout, source)
    meta = layout.meta
    if meta is None:
        from envs.dataset_meta import package_versions

        names = [f"{layout.state_key}_{i}" for i in range(layout.state_dim)]
        if layout.state_key is None:
            log.warning("%s has none of the state columns %s: importing states of width 0",
                        source, ", ".join(STATE_KEYS))
        meta = {"format_version": DATASET_FORMAT_VERSION, "env": asdict(env_cfg),
                "goal": env_cfg.goal, "action_dim": layout.action_dim,
                "state_dim": layout.state_dim, "state_names": names, "physics_dim": None,
                "render_fps": None, "policy": {"name": "imported", "kwargs": {}}, "seed": None,
                "num_episodes": len(layout.lengths),
                "episode_steps": int(layout.lengths.max()) - 1,
                "source": {"format": "stable-worldmodel hdf5", "path": str(source.resolve()),
                           "state_key": layout.state_key},
                "versions": package_versions()}
    else:
        meta = {k: v for k, v in meta.items() if k not in DONE_KEYS}
    per_shard = episodes_per_shard or meta.get("episodes_per_shard") or 50
    if per_shard < 1:
        raise ValueError(f"episodes_per_shard must be >= 1, got {per_shard}")
    meta.update(episodes_per_shard=per_shard, num_shards=-(-len(layout.lengths) // per_shard))
    try:
        typed = DatasetMeta.from_dict(meta)
    except (MetaError, TypeError, ValueError) as err:
        raise InteropError(f"{source}: its {META_ATTR} is not a dataset meta this code reads "
                           f"({err}); remove the attribute to import it as foreign") from None
    if layout.meta is not None:
        _check_own_meta(typed, layout, source)
    return typed


def _env_config(env: dict | None, layout: Layout, source: Path) -> EnvConfig:
    """The env of a foreign file from ``env``; for our own, ``env`` checked against the meta."""
    if layout.meta is not None:
        recorded = layout.meta["env"]
        clash = {k: v for k, v in (env or {}).items() if recorded.get(k) != v}
        if clash:
            raise ValueError(f"env {clash} does not match the env {source} was recorded in "
                             f"({recorded}); leave env out to import it as recorded")
        return EnvConfig(**recorded)
    if not env or "id" not in env:
        raise ValueError(f"{source} has no {META_ATTR} attribute (it was not written by `wml "
                         "export`), so the env it was recorded in is unknown: give it as "
                         "env={'id': 'wm/reacher-v0'} (`wml import --env wm/reacher-v0`), with "
                         "any other EnvConfig field it needs (action_repeat, kwargs)")
    known = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(env) - known)
    if unknown:
        raise ValueError(f"env has unknown keys {unknown}; EnvConfig fields are {sorted(known)}")
    if env.get("image_size", layout.image_size) != layout.image_size:
        raise ValueError(f"env image_size={env['image_size']} but the frames of {source} are "
                         f"{layout.image_size} px; leave image_size out to take theirs")
    return EnvConfig(**{**env, "image_size": layout.image_size})


def _check_own_meta(meta: DatasetMeta, layout: Layout, source: Path) -> None:
    want = {"image_size": (meta.image_size, layout.image_size),
            "action_dim": (meta.action_dim, layout.action_dim),
            "state_dim": (meta.state_dim, layout.state_dim),
            "physics": (meta.physics_dim is not None, layout.has_physics)}
    for key, (said, got) in want.items():
        if said != got:
            raise InteropError(f"{source}: its {META_ATTR} says {key}={said} but the columns "
                               f"give {got}; the file was edited after `wml export`: export "
                               "it again, or remove the attribute to import it as foreign")


def _open_output(root: Path, meta: DatasetMeta) -> Path:
    """Create ``root`` with ``meta`` (less the completion keys), or resume an import there."""
    check_writable(root, "the dataset folder (out)")
    if (root / META).is_file():
        on_disk = {k: v for k, v in read_meta(root).to_dict().items() if k not in DONE_KEYS}
        if json.dumps(on_disk, sort_keys=True) != json.dumps(meta.to_dict(), sort_keys=True):
            raise DatasetError(f"{root} holds another dataset; import into an empty folder, or "
                               "delete this one")
        for stale in [*root.glob(".shard-*.tmp-*"), *root.glob(".import-*.npy")]:
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    elif any(root.iterdir()):
        raise DatasetError(f"{root} is not empty and holds no dataset; import into an empty "
                           "folder")
    else:
        atomic_write_text(root / META, json.dumps(meta.to_dict(), indent=2))
    return root


def _write_shard(f, layout: Layout, root: Path, k: int, episodes: range,
                 meta: DatasetMeta) -> None:
    lengths, offsets = layout.lengths[list(episodes)], layout.offsets[list(episodes)]
    n, size = int(lengths.sum()), layout.image_size
    scratch = root / f".import-{shard_name(k)}-pixels.npy"
    if n * size * size * 3 > SCRATCH_BYTES:  # staged on disk: memory stays one episode
        pixels = np.lib.format.open_memmap(scratch, "w+", np.uint8, (n, size, size, 3))
    else:
        pixels = np.empty((n, size, size, 3), np.uint8)
    arrays = {"pixels": pixels, "actions": np.empty((n, layout.action_dim), np.float32),
              "states": np.empty((n, layout.state_dim), np.float32),
              "rewards": np.full(n, np.nan, np.float32)}
    if meta.physics_dim is not None:
        arrays["physics"] = np.empty((n, meta.physics_dim), np.float64)
    table, ends, row = [], [], 0
    try:
        for e, off, length in zip(episodes, offsets, lengths, strict=True):
            index, end = _read_episode(f, layout, int(off), int(length), arrays, row)
            table.append((e if index is None else index, row, length))
            ends.append(end)
            row += int(length)
        arrays["episodes"] = np.asarray(table, np.int64)
        arrays["episode_ends"] = np.asarray(ends, bool)
        write_dataset_shard(root, k, arrays)
    finally:
        del arrays, pixels
        scratch.unlink(missing_ok=True)


def _check_actions(f, layout: Layout, source: Path) -> None:
    """Refuse actions that are not finite or outside [-1, 1] before anything is written (the
    last action of each episode, which no frame follows, is not read)."""
    actions = np.asarray(f["action"][:], np.float64).reshape(len(f["action"]), -1)
    taken = np.ones(len(actions), bool)
    taken[layout.offsets + layout.lengths - 1] = False
    bad = taken & ~(np.isfinite(actions).all(1) & (np.abs(actions) <= 1.0 + 1e-6).all(1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InteropError(f"{source}: {int(bad.sum())} actions are not finite or lie outside "
                           f"[-1, 1], this format's action space (first at row {first}: "
                           f"{actions[first].tolist()}); rescale the file's actions to "
                           "[-1, 1] and drop the episodes with NaN actions")


def _read_episode(f, layout: Layout, off: int, length: int, arrays: dict[str, np.ndarray],
                  row: int) -> tuple[int | None, tuple[bool, bool]]:
    """Copy one episode into ``arrays`` from ``row``; its recorded index and end flags."""
    src, dst = slice(off, off + length), slice(row, row + length)
    pixels = f["pixels"][src]
    arrays["pixels"][dst] = pixels.transpose(0, 2, 3, 1) if layout.channels_first else pixels
    arrays["actions"][dst] = f["action"][src].reshape(length, -1)
    arrays["actions"][row + length - 1] = np.nan  # no frame follows the last one
    if layout.state_key:
        arrays["states"][dst] = f[layout.state_key][src].reshape(length, -1)
    if "reward" in f:  # the step into frame t + 1 is the reward after action t
        arrays["rewards"][row:row + length - 1] = f["reward"][off + 1:off + length]
    if "physics" in arrays:
        arrays["physics"][dst] = f["physics"][src]
    last = off + length - 1
    terminated = bool(f["terminated"][last]) if "terminated" in f else False
    truncated = bool(f["truncated"][last]) if "truncated" in f else not terminated
    index = int(f["episode_idx"][off]) if "episode_idx" in f else None
    return index, (terminated, truncated)
