"""The ``meta.json`` a collection writes, and the check that a resumed collection matches it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from common.fileio import atomic_write_text
from envs.config import CollectConfig, EnvConfig
from envs.dataset import META, DatasetError, read_meta
from envs.meta import DatasetMeta
from envs.rollouts import make_env, physics_dim

__all__ = ["build_meta", "differences", "open_dataset", "package_versions"]




def package_versions() -> dict[str, str]:
    """Python and the versions of the packages that decide what a run produces."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "mujoco", "dm-control", "gymnasium", "torch", "lightning"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def build_meta(env_cfg: EnvConfig, collect: CollectConfig) -> DatasetMeta:
    """The meta of a dataset of ``env_cfg`` collected as ``collect`` (its env is built once)."""
    env = make_env(env_cfg)
    try:
        meta = DatasetMeta(
            env=env_cfg, goal=env.goal, action_dim=int(env.action_space.shape[0]),
            state_dim=int(env.state_dim), state_names=list(env.state_names),
            state_angles=dict(env.state_angles), physics_dim=physics_dim(env),
            render_fps=env.metadata.get("render_fps"),
            policy={"name": collect.policy, "kwargs": dict(collect.policy_kwargs)},
            seed=collect.seed, num_episodes=collect.episodes,
            episode_steps=collect.episode_steps, episodes_per_shard=collect.episodes_per_shard,
            num_shards=-(-collect.episodes // collect.episodes_per_shard),
            versions=package_versions())
    finally:
        env.close()
    try:
        json.dumps(meta.to_dict(), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"env kwargs, goal and policy kwargs must be plain JSON values: {err}"
                         ) from None
    return meta


def open_dataset(root: Path, meta: DatasetMeta) -> None:
    """Create ``root`` with ``meta``, or check the dataset there was collected the same way."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / META).exists():
        if any(p.name.startswith("shard-") for p in root.iterdir()):
            raise DatasetError(f"{root} holds shards but no {META}; it is not a dataset this "
                               "collector can resume: use an empty --out directory")
        atomic_write_text(root / META, json.dumps(meta.to_dict(), indent=2))
        return
    details = differences(read_meta(root).identity(), meta.identity())
    if details:
        raise DatasetError(f"{root} was collected with other settings ({details}); choose "
                           "another --out directory, or delete this one to start over")


def differences(on_disk: dict[str, Any], requested: dict[str, Any]) -> str:
    """``"key: on disk a, requested b; ..."`` for every requested key that differs, else ``""``."""
    return "; ".join(f"{k}: on disk {on_disk.get(k)!r}, requested {v!r}"
                     for k, v in requested.items()
                     if json.dumps(on_disk.get(k), sort_keys=True) != json.dumps(v, sort_keys=True))
