"""How episodes end: terminated and truncated recorded per episode, checksummed, and inferred
for datasets collected before they were recorded."""

import json
import shutil

import numpy as np
import pytest

from envs.dataset import DatasetError, PixelDataset
from envs.policies import UniformRandomPolicy
from envs.registry import make_pixel_env
from envs.rollouts import EpisodeEnd, collect_episode, run_episode

FALL_ANGLE = 0.2  # InvertedPendulum-v5 terminates once |hinge angle| exceeds this


def test_a_fallen_pole_is_terminated_and_a_cut_episode_truncated(pendulum_dataset):
    data = PixelDataset(pendulum_dataset)
    assert data.has_episode_ends
    ends, lengths = data.episode_ends(), data.episodes()[:, 3]
    assert ends.dtype == bool and ends.shape == (6, 2)
    assert ends[:, 0].any() and ends[:, 1].any()  # the fixture holds both kinds
    assert not (ends[:, 0] & ends[:, 1]).any() and (ends[:, 0] | ends[:, 1]).all()
    hinge = data.meta.state_names.index("hinge_pos")
    for row, (index, _, _, length) in enumerate(data.episodes()):
        fell = bool(abs(data.episode(int(index))["states"][-1, hinge]) > FALL_ANGLE)
        assert ends[row].tolist() == [fell, not fell]
        assert fell or length == 5  # only the limit of 4 actions cuts a standing pole
    assert ends[lengths < 5, 0].all()


def test_reacher_never_terminates_so_every_episode_is_truncated(tiny_dataset):
    ends = PixelDataset(tiny_dataset).episode_ends()
    assert ends.shape == (6, 2) and not ends[:, 0].any() and ends[:, 1].all()


def test_run_episode_reports_the_step_limit_as_truncation():
    env = make_pixel_env("wm/reacher-v0", image_size=16)
    policy = UniformRandomPolicy(env.action_space.shape[0])
    assert run_episode(env, policy, 0, 0, 3) == EpisodeEnd(4, False, True)
    assert collect_episode(env, policy, 0, 0, 3) == 4  # still the length alone
    env.close()


def test_the_checksums_cover_the_episode_ends(pendulum_dataset, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pendulum_dataset, copy)
    info = json.loads((copy / "shard-00001" / "shard.json").read_text())
    assert info["files"]["episode_ends"]["shape"] == [2, 2]
    path = copy / "shard-00001" / "episode_ends.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1  # a terminated flag flips
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="shard-00001/episode_ends.npy fails its checksum"):
        PixelDataset(copy).verify()


def _without_ends(source, root):
    shutil.copytree(source, root)
    for shard in root.glob("shard-*"):
        (shard / "episode_ends.npy").unlink()
        info = json.loads((shard / "shard.json").read_text())
        del info["files"]["episode_ends"]
        (shard / "shard.json").write_text(json.dumps(info))
    return root


def test_datasets_collected_before_the_ends_were_recorded_still_load(pendulum_dataset,
                                                                     tiny_dataset, tmp_path):
    old = PixelDataset(_without_ends(pendulum_dataset, tmp_path / "pendulum"))
    old.verify()
    assert not old.has_episode_ends
    lengths, ends = old.episodes()[:, 3], old.episode_ends()
    np.testing.assert_array_equal(ends[:, 1], lengths == 5)  # full length: cut by the limit
    np.testing.assert_array_equal(ends[:, 0], lengths < 5)
    np.testing.assert_array_equal(old.episode(0)["pixels"],
                                  PixelDataset(pendulum_dataset).episode(0)["pixels"])
    reacher = PixelDataset(_without_ends(tiny_dataset, tmp_path / "reacher")).episode_ends()
    np.testing.assert_array_equal(reacher, PixelDataset(tiny_dataset).episode_ends())
