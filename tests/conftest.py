"""Shared test set-up: headless rendering before any GL import, small thread counts."""

import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
# A shell without job control starts background jobs with SIGINT ignored, and Python then keeps
# ignoring it: the Ctrl-C tests (and the processes they start) need it to raise
# KeyboardInterrupt, as it does in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # train.py / plan.py live at the repository root
    sys.path.insert(0, str(ROOT))

import pytest

import envs  # noqa: F401  (selects headless rendering and registers the wm/ ids)

if os.environ.get("PYTEST_XDIST_WORKER"):  # one test process per core (pytest -n): one thread
    import torch

    torch.set_num_threads(1)

# Tiny training overrides: real Lightning runs of a few steps on shrunk models.
TINY_PIXELS = ["trainer.max_steps=6", "trainer.batch_size=8", "trainer.progress_bar=false",
               "trainer.num_threads=1", "trainer.val_every_n_steps=3",
               "trainer.checkpoint_every_n_steps=3", "model.feature_dim=32",
               "model.projector_dim=32", "model.latent_dim=8", "model.predictor_hidden=32",
               "loss.regulariser.num_directions=16", "data.val_fraction=0.3"]
TINY_SYNTHETIC = ["trainer.max_steps=30", "trainer.batch_size=64", "trainer.progress_bar=false",
                  "trainer.num_threads=1", "probe.num_samples=500",
                  "loss.regulariser.num_directions=32", "model.encoder_width=32",
                  "model.encoder_layers=2"]


@pytest.fixture
def tiny_pixels() -> list[str]:
    """``key=value`` overrides that shrink a pixel config to a seconds-long CPU run."""
    return list(TINY_PIXELS)


@pytest.fixture
def tiny_synthetic() -> list[str]:
    """``key=value`` overrides that shrink a synthetic config to a seconds-long CPU run."""
    return list(TINY_SYNTHETIC)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """Six short reacher episodes at 32 px in three shards, collected in-process."""
    from envs.collect import CollectConfig, EnvConfig, collect_rollouts

    root = tmp_path_factory.mktemp("data") / "reacher"
    collect_rollouts(root, EnvConfig(image_size=32),
                     CollectConfig(episodes=6, episode_steps=20, episodes_per_shard=2,
                                   workers=1, seed=3), progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """One tiny reacher world model trained on ``tiny_dataset`` (``TINY_PIXELS``, 32 px),
    shared by every test that only reads it or plans with it: the ``key=value`` overrides that
    find it, and its ``TrainResult``. Tests that write plan outputs give their own
    ``plan.out``, except ``tests/e2e/test_plan.py``, which owns ``run_dir / "plan-cem"``."""
    from configs.loader import load_config
    from worldmodel.app import train

    overrides = [*TINY_PIXELS, f"output_dir={tmp_path_factory.mktemp('runs')}",
                 f"data.path={tiny_dataset}", "env.image_size=32"]
    return overrides, train.train(load_config("reacher", overrides))


@pytest.fixture(scope="session")
def tiny_block_checkpoint(tiny_dataset, tmp_path_factory):
    """A tiny reacher model with a history of 2 frames and action blocks of 2 env steps: the
    checkpoint that loading, agents and export are tested on."""
    from configs.loader import load_config
    from worldmodel.app import train

    overrides = [*TINY_PIXELS, f"output_dir={tmp_path_factory.mktemp('runs')}",
                 f"data.path={tiny_dataset}", "env.image_size=32", "data.frameskip=2",
                 "data.history=2"]
    return train.train(load_config("reacher", overrides)).checkpoint


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
