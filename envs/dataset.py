"""Reading the on-disk dataset format: ``meta.json`` + complete, memory-mappable shards.

Layout (DESIGN.md section 2)::

    <dataset>/meta.json                 what was collected, how, and with which versions
    <dataset>/shard-00000/pixels.npy    uint8   (N, H, W, 3)
                          actions.npy   float32 (N, A)  action taken after frame t
                          states.npy    float32 (N, S)  info["state"] at frame t
                          rewards.npy   float32 (N,)    reward after action t
                          episodes.npy  int64   (E, 3)  [episode index, first row, length]
                          physics.npy   float64 (N, P)  full physics state at frame t (MuJoCo
                                                        envs: ``PixelEnv.physics_state()``)
                          episode_ends.npy bool (E, 2)  [terminated, truncated] of every episode,
                                                        in the rows of ``episodes.npy``
                          shard.json    counts, shapes and CRC32 of every array

``physics.npy`` restores a frame's simulator state exactly (``PixelEnv.restore_state
(physics_state=...)``), for the dataset goal protocol; datasets collected before it was
recorded, and envs that are not MuJoCo, have none (``meta.json``'s ``physics_dim`` is absent).

``episode_ends.npy`` says how each episode ended, as Gymnasium's ``step`` does: ``terminated``
when the env reached a terminal state (the pole fell), ``truncated`` when it was cut short, by
the env's own time limit or by the collection's ``episode_steps``. Shards written before it was
recorded have none; ``PixelDataset.episode_ends()`` then infers the flags from the lengths (see
there) and ``PixelDataset.has_episode_ends`` is False.

An episode of ``L`` frames has ``L - 1`` actions; its last action and reward rows are NaN.
Arrays are plain ``.npy`` files loaded with ``allow_pickle=False``. This module reads datasets;
``envs.dataset_write`` writes a shard, never seen half written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.fileio import array_crc32, atomic_write_text
from envs.meta import DatasetMeta, MetaError

__all__ = ["DatasetError", "PixelDataset", "Shard", "read_meta", "shard_name"]

META = "meta.json"
VERIFIED = ".verified"  # per shard: the file sizes and times its checksums last passed at
ARRAYS = {"pixels": np.uint8, "actions": np.float32, "states": np.float32,
          "rewards": np.float32, "episodes": np.int64}
OPTIONAL_ARRAYS = {"physics": np.float64, "episode_ends": np.bool_}


class DatasetError(RuntimeError):
    """A dataset directory that is missing, incomplete, corrupt or does not match."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def read_meta(root: str | Path) -> DatasetMeta:
    """The ``meta.json`` of a dataset directory, read by its versioned reader."""
    path = Path(root) / META
    if not path.is_file():
        raise DatasetError(f"{path} not found: {root} is not a dataset directory (collect one "
                           "with `wml collect --out DIR ...`)")
    try:
        return DatasetMeta.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is corrupt ({err}); delete the dataset directory and "
                           "collect again") from None
    except (MetaError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: {err}") from None


@dataclass
class Shard:
    """One complete shard; arrays are memory-mapped on first access in each process."""

    path: Path
    info: dict[str, Any]

    def __post_init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:  # DataLoader workers re-open their own maps
        return {"path": self.path, "info": self.info}

    def __setstate__(self, state: dict) -> None:
        self.path, self.info = state["path"], state["info"]
        self.__post_init__()

    @property
    def num_frames(self) -> int:
        return int(self.info["num_frames"])

    def array(self, name: str) -> np.ndarray:
        """The memory-mapped array ``name`` (``pixels``, ``actions``, ...)."""
        if self._pid != os.getpid():
            self._arrays, self._pid = {}, os.getpid()
        if name not in self._arrays:
            self._arrays[name] = self._open(name)
        return self._arrays[name]

    def _open(self, name: str) -> np.ndarray:
        file = self.path / f"{name}.npy"
        expected = self.info["files"][name]
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"{file} is corrupt or truncated ({err}); delete {self.path} "
                               "and rerun the collect command to rewrite it") from None
        if list(array.shape) != expected["shape"] or array.dtype.name != expected["dtype"]:
            raise DatasetError(f"{file} holds {array.dtype.name} {list(array.shape)}, shard.json "
                               f"says {expected['dtype']} {expected['shape']}; delete "
                               f"{self.path} and rerun the collect command")
        return array

    def verify(self) -> None:
        """Check every array's CRC32 against shard.json (reads the whole shard)."""
        for name, expected in self.info["files"].items():
            if array_crc32(self.array(name)) != expected["crc32"]:
                raise DatasetError(f"{self.path / (name + '.npy')} fails its checksum: its "
                                   f"bytes changed after it was written; delete {self.path} "
                                   "and rerun the collect command, which rewrites that shard")

    def _stamp(self) -> dict[str, list[int]]:
        return {name: [(st := (self.path / f"{name}.npy").stat()).st_size, st.st_mtime_ns]
                for name in self.info["files"]}

    def verify_once(self) -> bool:
        """``verify`` unless this shard passed it before with its files unchanged (size and
        modification time, remembered in ``.verified`` where the folder is writable); whether
        it read the shard."""
        stamp_file = self.path / VERIFIED
        try:  # a symlink is never read or written through: it is replaced by a stamp
            if not stamp_file.is_symlink() and json.loads(stamp_file.read_text()) == self._stamp():
                return False
        except (OSError, ValueError):
            pass
        self.verify()
        try:
            atomic_write_text(stamp_file, json.dumps(self._stamp()))
        except OSError:  # a read-only dataset: verified again next time
            pass
        return True


class PixelDataset:
    """A collected dataset: its meta and complete shards, checked against each other.

    Args:
        root: the dataset directory.
        allow_incomplete: accept a dataset with shards still missing (a collection that is
            running or was interrupted); by default that is an error naming the shards.
    """

    def __init__(self, root: str | Path, allow_incomplete: bool = False) -> None:
        self.root = Path(root)
        self.meta = read_meta(self.root)
        expected = self.meta.num_shards
        self.shards: list[Shard] = []
        missing = []
        for index in range(expected):
            path = self.root / shard_name(index)
            if not path.is_dir():
                missing.append(index)
                continue
            self.shards.append(Shard(path, self._read_info(path, index)))
        if missing and not allow_incomplete:
            raise DatasetError(f"{self.root} is incomplete: {len(missing)} of {expected} shards "
                               f"missing (first: {shard_name(missing[0])}); rerun the collect "
                               "command to resume it")
        if not self.shards:
            raise DatasetError(f"{self.root} has no complete shard yet")
        self._episodes: np.ndarray | None = None

    def _read_info(self, path: Path, index: int) -> dict[str, Any]:
        file = path / "shard.json"
        try:
            info = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DatasetError(f"{file} is missing or corrupt ({err}); delete {path} and rerun "
                               "the collect command") from None
        m, files = self.meta, info.get("files", {})
        size, n = m.image_size, info.get("num_frames")
        want = {"pixels": [n, size, size, 3], "actions": [n, m.action_dim],
                "states": [n, m.state_dim], "rewards": [n]}
        if m.physics_dim is not None:
            want["physics"] = [n, m.physics_dim]
        if "episode_ends" in files:  # absent in shards written before it was recorded
            want["episode_ends"] = [info.get("num_episodes"), 2]
        for name, shape in want.items():
            got = files.get(name, {}).get("shape")
            if got != shape:
                raise DatasetError(f"{path / (name + '.npy')} has shape {got}, the dataset's "
                                   f"meta.json implies {shape}: the shard was collected with "
                                   "other settings; delete it and rerun the collect command")
        if info.get("index") != index or "episodes" not in files:
            raise DatasetError(f"{file} does not describe {shard_name(index)}; delete {path}")
        recorded = DatasetMeta.shard_record(info.get("meta", {}))  # {} in older shards
        ours = m.to_dict()
        changed = [k for k in recorded if json.dumps(recorded[k], sort_keys=True)
                   != json.dumps(ours.get(k), sort_keys=True)]
        if changed:
            k = changed[0]
            raise DatasetError(f"{self.root / META} does not describe {shard_name(index)}: "
                               f"{k} is {ours.get(k)!r} there but the shard was collected with "
                               f"{recorded[k]!r}; meta.json was edited or the shard comes "
                               "from another dataset. Restore meta.json, or collect again")
        return info

    # -- views ---------------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        return sum(s.num_frames for s in self.shards)

    @property
    def has_physics(self) -> bool:
        """Whether every frame's full physics state is recorded (``physics`` arrays)."""
        return self.meta.physics_dim is not None

    def arrays(self) -> tuple[str, ...]:
        """The per-frame arrays of this dataset's episodes."""
        return ("pixels", "actions", "states", "rewards") + (("physics",) if self.has_physics
                                                             else ())

    @property
    def num_episodes(self) -> int:
        return sum(int(s.info["num_episodes"]) for s in self.shards)

    def episodes(self) -> np.ndarray:
        """``int64 (E, 4)``: [episode index, shard position, first row, length] of every episode."""
        if self._episodes is None:
            rows = [np.column_stack([s.array("episodes")[:, 0],
                                     np.full(len(s.array("episodes")), k),
                                     s.array("episodes")[:, 1:]])
                    for k, s in enumerate(self.shards)]
            self._episodes = np.concatenate(rows).astype(np.int64)
        return self._episodes

    @property
    def has_episode_ends(self) -> bool:
        """Whether every shard records how its episodes ended (``episode_ends`` arrays)."""
        return all("episode_ends" in s.info["files"] for s in self.shards)

    def episode_ends(self) -> np.ndarray:
        """``bool (E, 2)``: [terminated, truncated] of every episode, in the rows of
        ``episodes()``.

        Shards written before this was recorded infer it from the lengths: an episode of the
        full ``episode_steps + 1`` frames was truncated by the collection, a shorter one is
        taken as terminated (the env ended it; its own time limit cannot be told apart there).
        """
        full = self.meta.episode_steps + 1
        rows = []
        for s in self.shards:
            if "episode_ends" in s.info["files"]:
                rows.append(np.asarray(s.array("episode_ends"), bool))
            else:
                cut = s.array("episodes")[:, 2] >= full
                rows.append(np.column_stack([~cut, cut]))
        return np.concatenate(rows)

    def episode(self, index: int, names: Sequence[str] | None = None
                ) -> dict[str, np.ndarray]:
        """The per-frame arrays ``names`` (None: all of them, ``physics`` too where recorded)
        of the episode with global index ``index``, as copies."""
        names = self.arrays() if names is None else tuple(names)
        unknown = set(names) - set(self.arrays())
        if unknown:
            raise KeyError(f"{sorted(unknown)} are not arrays of {self.root}; it has "
                           f"{list(self.arrays())}")
        table = self.episodes()
        row = np.flatnonzero(table[:, 0] == index)
        if row.size == 0:
            raise KeyError(f"episode {index} is not in {self.root}")
        _, k, start, length = table[row[0]]
        shard = self.shards[k]
        return {name: np.array(shard.array(name)[start:start + length]) for name in names}

    def verify(self) -> None:
        """Check every shard's checksums (reads the whole dataset)."""
        for shard in self.shards:
            shard.verify()

    def verify_once(self) -> int:
        """Check the checksums of every shard not verified since its files last changed
        (``Shard.verify_once``): once per dataset in practice; the shards read."""
        return sum(shard.verify_once() for shard in self.shards)
