"""The block-reversal diagnostic on a briefly trained point_mass model."""

import json
import math

import pytest
from conftest import TINY_PIXELS as TINY

from benchmarks import block_reversal
from configs.loader import load_config
from envs.collect import CollectConfig, EnvConfig, collect_rollouts
from worldmodel.app import train

POINT_MASS = [*TINY, "env.image_size=32", "data.frameskip=2", "data.history=2",
              "data.num_preds=1"]


def test_reversed_blocks_move_the_mass_less_and_the_report_is_complete(
        tmp_path, monkeypatch):
    data = tmp_path / "data"
    collect_rollouts(data, EnvConfig(id="wm/point_mass-v0", image_size=32,
                                     kwargs={"geom_radius": {"pointmass": 0.03}}),
                     CollectConfig(episodes=4, episode_steps=16, episodes_per_shard=2,
                                   workers=1, seed=0, policy="ou"), progress=False)
    cfg = load_config("point_mass", [*POINT_MASS, f"output_dir={tmp_path}", f"data.path={data}"])
    result = train.train(cfg)
    monkeypatch.setattr(block_reversal, "OUT", tmp_path / "out")
    checkpoint = str(result.run_dir / "model.ckpt")
    assert block_reversal.main([checkpoint, "--starts", "3", "--blocks", "2",
                                "--threads", "1"]) == 0
    report = json.loads(next((tmp_path / "out").glob("block_reversal-*.json")).read_text())
    assert report["frameskip"] == 2 and math.isfinite(report["readout_r2"])
    held, reversed_ = report["held"], report["last_step_reversed"]
    assert held["true"] > reversed_["true"] > 0  # the reversal brakes the mass
    assert math.isfinite(held["predicted"]) and math.isfinite(reversed_["predicted"])


def test_a_single_step_block_has_nothing_to_reverse(tmp_path, tiny_dataset):
    cfg = load_config("reacher", [*TINY, f"output_dir={tmp_path}",
                                  f"data.path={tiny_dataset}", "env.image_size=32"])
    result = train.train(cfg)
    with pytest.raises(SystemExit, match="frameskip 1"):
        block_reversal.measure(str(result.run_dir / "model.ckpt"))
