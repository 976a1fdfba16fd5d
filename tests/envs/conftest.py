"""Datasets shared by the env tests (the session-wide ``tiny_dataset`` is in tests/conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def pendulum_dataset(tmp_path_factory):
    """Six inverted-pendulum episodes of at most 4 random actions at 16 px, in two shards: some
    fall (terminated), the others are cut by the step limit (truncated)."""
    from envs.collect import CollectConfig, EnvConfig, collect_rollouts

    root = tmp_path_factory.mktemp("data") / "pendulum"
    collect_rollouts(root, EnvConfig(id="wm/gym-inverted_pendulum-v5", image_size=16),
                     CollectConfig(episodes=6, episode_steps=4, episodes_per_shard=4,
                                   policy="random", workers=1, seed=0), progress=False)
    return root
