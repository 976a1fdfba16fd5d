"""inspect_dataset: counts and statistics that match the arrays, images, CRC verification."""

import re
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from envs.dataset import PixelDataset
from envs.inspection import inspect_dataset


def _all(data, name):
    return np.concatenate([np.asarray(s.array(name), np.float64) for s in data.shards])


def test_counts_and_ranges_match_the_arrays(tiny_dataset):
    data, report = PixelDataset(tiny_dataset), inspect_dataset(tiny_dataset)
    assert (report.num_episodes, report.num_frames, report.num_shards) == (6, 126, 3)
    assert report.episode_length == (21, 21.0, 21)
    assert (report.terminated, report.truncated, report.ends_recorded) == (0, 6, True)
    assert report.env_id == "wm/reacher-v0" and report.image_size == 32
    assert report.policy["name"] == "ou" and report.seed == 3
    assert report.size_bytes > 126 * 32 * 32 * 3  # the pixels alone
    states = _all(data, "states")
    assert [s.name for s in report.states] == data.meta.state_names
    for i, s in enumerate(report.states):
        np.testing.assert_allclose([s.min, s.max, s.mean, s.std],
                                   [states[:, i].min(), states[:, i].max(),
                                    states[:, i].mean(), states[:, i].std()], rtol=1e-9,
                                   atol=1e-12)
    actions = _all(data, "actions")
    taken = actions[np.isfinite(actions).all(1)]
    assert len(taken) == 6 * 20  # every episode's last row has no action
    for a in report.actions:
        column = taken[:, a.dim]
        np.testing.assert_allclose([a.mean, a.std, a.min, a.max],
                                   [column.mean(), column.std(), column.min(), column.max()],
                                   rtol=1e-9, atol=1e-12)
        assert a.at_bounds == pytest.approx(np.mean(np.abs(column) >= 1 - 1e-6))
    assert report.verified is None


def test_terminated_and_truncated_counts(pendulum_dataset):
    report = inspect_dataset(pendulum_dataset)
    ends = PixelDataset(pendulum_dataset).episode_ends()
    assert (report.terminated, report.truncated) == tuple(ends.sum(0))
    assert report.terminated > 0 and report.truncated > 0


def test_the_text_is_aligned_and_names_what_matters(tiny_dataset):
    text = inspect_dataset(tiny_dataset).text()
    assert "wm/reacher-v0" in text and "6 episodes, 126 frames" in text
    assert "0 terminated, 6 truncated" in text and "not run" in text
    header, table = text.splitlines()[:6], text.split("\nstates\n")[1].split("\n\n")[0]
    assert len({re.match(r".*?\S {2,}", line).end() for line in header}) == 1  # one column
    rows = table.splitlines()
    assert len(rows) == 1 + len(PixelDataset(tiny_dataset).meta.state_names)
    assert len({len(r) for r in rows}) == 1  # right-aligned numbers: equal widths
    assert "shoulder_pos" in table


def test_contact_sheet_and_gif(tiny_dataset, tmp_path):
    report = inspect_dataset(tiny_dataset, tmp_path / "out", episodes=4, frames=5)
    tile = 64 + 2  # 32 px frames are shown at 2x, 2 px apart
    sheet = iio.imread(report.contact_sheet)
    assert sheet.shape == (4 * tile - 2, 5 * tile - 2, 3)
    data = PixelDataset(tiny_dataset)
    first, last = data.episode(0)["pixels"], data.episode(5)["pixels"]  # rows: episodes 0..5
    np.testing.assert_array_equal(sheet[:64, :64], first[0].repeat(2, 0).repeat(2, 1))
    np.testing.assert_array_equal(sheet[-64:, -64:], last[-1].repeat(2, 0).repeat(2, 1))
    movie = iio.imread(report.gif, index=None)
    assert movie.shape[:3] == (21, 64, 4 * tile - 2)  # 21 frames, four episodes side by side
    assert str(tmp_path / "out" / "contact_sheet.png") in report.text()


def test_verify_reports_flipped_bytes_by_file(tiny_dataset, tmp_path):
    good = inspect_dataset(tiny_dataset, verify=True)
    assert good.verified and good.verify_error is None and "ok" in good.text()
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    pixels = copy / "shard-00002" / "pixels.npy"
    raw = bytearray(pixels.read_bytes())
    raw[-100] ^= 0xFF
    pixels.write_bytes(bytes(raw))
    bad = inspect_dataset(copy, verify=True)
    assert bad.verified is False and "shard-00002/pixels.npy fails its checksum" in bad.verify_error
    assert "FAILED" in bad.text()
