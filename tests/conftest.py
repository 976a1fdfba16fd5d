"""Shared test set-up: headless rendering before any GL import, small thread counts."""

import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # train.py / plan.py live at the repository root
    sys.path.insert(0, str(ROOT))

import pytest

import envs  # noqa: F401  (registers the wm/ ids, selects headless rendering)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Six short reacher episodes at 32 px in three shards, collected in-process."""
    from envs.collect import CollectConfig, EnvConfig, collect_rollouts

    root = tmp_path_factory.mktemp("data") / "reacher"
    collect_rollouts(root, EnvConfig(image_size=32),
                     CollectConfig(episodes=6, episode_steps=20, episodes_per_shard=2,
                                   workers=1, seed=3), progress=False)
    return root
