"""Writing one dataset shard atomically (the layout is described in ``envs.dataset``).

A shard is written under a temporary name and renamed when complete, so a reader (or a resumed
collector) never sees half a shard.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common.fileio import array_crc32, current_umask
from envs.dataset import ARRAYS, META, OPTIONAL_ARRAYS, read_meta, shard_name

__all__ = ["write_dataset_shard"]

# the meta fields a shard records of what it was collected as, checked on every read
SHARD_META_KEYS = ("env", "state_names", "state_dim", "action_dim", "policy", "seed")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_dataset_shard(root: str | Path, index: int, arrays: dict[str, np.ndarray]) -> Path:
    """Write one complete shard atomically: temp directory, fsync, rename.

    Args:
        arrays: ``pixels, actions, states, rewards, episodes`` as in ``envs.dataset``'s docstring,
            ``physics`` where the env has a physics state, and ``episode_ends``.
    """
    root = Path(root)
    missing = set(ARRAYS) - set(arrays)
    if missing:
        raise ValueError(f"shard arrays missing {sorted(missing)}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{shard_name(index)}.tmp-", dir=root))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700 directories
        files = {}
        kinds = {**ARRAYS, **{k: v for k, v in OPTIONAL_ARRAYS.items() if k in arrays}}
        for name, dtype in kinds.items():
            array = np.ascontiguousarray(arrays[name], dtype=dtype)
            with open(tmp / f"{name}.npy", "wb") as f:
                np.save(f, array, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files[name] = {"shape": list(array.shape), "dtype": np.dtype(dtype).name,
                           "crc32": array_crc32(array)}
        info = {"index": index, "num_frames": int(arrays["pixels"].shape[0]),
                "num_episodes": int(arrays["episodes"].shape[0]), "files": files}
        if (root / META).is_file():  # what the shard was collected as, checked on every read
            meta = read_meta(root).to_dict()
            info["meta"] = {k: meta[k] for k in SHARD_META_KEYS if k in meta}
        (tmp / "shard.json").write_text(json.dumps(info, indent=1))
        _fsync_dir(tmp)
        final = root / shard_name(index)
        os.rename(tmp, final)  # atomic; fails if a complete shard already exists
        _fsync_dir(root)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
