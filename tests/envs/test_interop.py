"""HDF5 interop: the stable-worldmodel layout, exact round trips, foreign files, clear errors."""

import json
import sys

import h5py
import numpy as np
import pytest

from envs.dataset import DatasetError, PixelDataset
from envs.hdf5_export import export_hdf5
from envs.interop import InteropError, import_hdf5


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in ("meta.json", ".verified")}


@pytest.mark.parametrize("name", ["tiny_dataset", "pendulum_dataset"])
def test_export_then_import_is_byte_exact(name, request, tmp_path):
    source = request.getfixturevalue(name)
    h5 = export_hdf5(source, tmp_path / "data.h5", progress=False)
    back = import_hdf5(h5, tmp_path / "back", progress=False)
    original, copy = _files(source), _files(back)
    assert sorted(copy) == sorted(original)  # same shards, arrays and shard.json
    for path, data in original.items():
        assert copy[path] == data, path  # pixels, actions with NaN rows, physics, ends, CRCs
    assert json.loads((back / "meta.json").read_text()) == PixelDataset(source).meta.to_dict()
    restored = PixelDataset(back)
    restored.verify()
    assert np.isnan(restored.episode(0)["actions"][-1]).all()
    np.testing.assert_array_equal(restored.episode_ends(), PixelDataset(source).episode_ends())


def test_the_file_has_the_stable_worldmodel_layout(pendulum_dataset, tmp_path):
    data = PixelDataset(pendulum_dataset)
    h5 = export_hdf5(pendulum_dataset, tmp_path / "data.h5", progress=False)
    with h5py.File(h5, "r", swmr=True) as f:  # how stable-worldmodel opens it
        lengths, offsets = f["ep_len"][:], f["ep_offset"][:]
        assert f["ep_len"].dtype == np.int32 and f["ep_offset"].dtype == np.int64
        np.testing.assert_array_equal(lengths, data.episodes()[:, 3])
        np.testing.assert_array_equal(offsets, np.cumsum(lengths) - lengths)
        n = int(lengths.sum())
        assert f["pixels"].dtype == np.uint8 and f["pixels"].shape == (n, 16, 16, 3)
        assert f["action"].shape == (n, 1) and f["state"].shape == (n, 4)
        assert {"reward", "terminated", "truncated", "step_idx", "physics"} <= set(f)
        ends = data.episode_ends()
        for e, (off, length) in enumerate(zip(offsets, lengths, strict=True)):
            rows = slice(off, off + length)
            ep = data.episode(e)
            np.testing.assert_array_equal(f["pixels"][rows], ep["pixels"])
            assert np.isnan(f["action"][off + length - 1]).all()  # no action after the last
            assert np.isnan(f["reward"][off])  # nothing led into the first frame
            np.testing.assert_array_equal(f["reward"][off + 1:off + length], ep["rewards"][:-1])
            np.testing.assert_array_equal(f["step_idx"][rows], np.arange(length))
            flags = np.column_stack([f["terminated"][rows], f["truncated"][rows]])
            assert not flags[:-1].any()
            np.testing.assert_array_equal(flags[-1], ends[e])
        assert json.loads(f.attrs["wml_meta"]) == data.meta.to_dict()


def _foreign(path, channels_first=False, state_key="observation", lengths=(5, 3, 4)):
    """A file as stable-worldmodel's recorder writes one: no extras, no meta."""
    rng = np.random.default_rng(0)
    n, offsets = sum(lengths), np.cumsum(lengths) - lengths
    pixels = rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    action = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    reward = rng.normal(size=n).astype(np.float32)
    terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
    for off, length in zip(offsets, lengths, strict=True):
        action[off + length - 1], reward[off] = np.nan, np.nan
    terminated[offsets[0] + lengths[0] - 1] = True
    truncated[offsets[1:] + np.asarray(lengths[1:]) - 1] = True
    columns = {"pixels": pixels.transpose(0, 3, 1, 2) if channels_first else pixels,
               "action": action, "reward": reward, "terminated": terminated,
               "truncated": truncated, state_key: rng.normal(size=(n, 3)),
               "step_idx": np.concatenate([np.arange(k) for k in lengths]),
               "ep_len": np.asarray(lengths, np.int32), "ep_offset": offsets.astype(np.int64)}
    with h5py.File(path, "w") as f:
        for key, value in columns.items():
            f.create_dataset(key, data=value)
    return columns


@pytest.mark.parametrize(("channels_first", "state_key"),
                         [(False, "observation"), (True, "proprio")])
def test_a_foreign_file_imports_with_the_env_given(tmp_path, channels_first, state_key):
    columns = _foreign(tmp_path / "lewm.h5", channels_first, state_key)
    root = import_hdf5(tmp_path / "lewm.h5", tmp_path / "out", env={"id": "wm/reacher-v0"},
                       episodes_per_shard=2, progress=False)
    data = PixelDataset(root)
    assert data.meta.env.id == "wm/reacher-v0" and data.meta.image_size == 12
    assert data.meta.state_dim == 3 and data.meta.source["state_key"] == state_key
    assert data.num_episodes == 3 and len(data.shards) == 2
    pixels = columns["pixels"].transpose(0, 2, 3, 1) if channels_first else columns["pixels"]
    for e, (off, length) in enumerate(zip(columns["ep_offset"], columns["ep_len"],
                                          strict=True)):
        ep, rows = data.episode(e), slice(off, off + length)
        np.testing.assert_array_equal(ep["pixels"], pixels[rows])
        np.testing.assert_array_equal(ep["actions"], columns["action"][rows])
        np.testing.assert_array_equal(ep["states"], columns[state_key][rows].astype(np.float32))
        np.testing.assert_array_equal(ep["rewards"][:-1], columns["reward"][off + 1:off + length])
        assert np.isnan(ep["rewards"][-1])
    np.testing.assert_array_equal(data.episode_ends(), [[True, False], [False, True],
                                                        [False, True]])
    data.verify()


def test_a_foreign_file_without_the_env_is_a_clear_error(tmp_path):
    _foreign(tmp_path / "lewm.h5")
    with pytest.raises(ValueError, match=r"no wml_meta .* env=\{'id': "):
        import_hdf5(tmp_path / "lewm.h5", tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="image_size=64 .* 12 px"):
        import_hdf5(tmp_path / "lewm.h5", tmp_path / "out", progress=False,
                    env={"id": "wm/reacher-v0", "image_size": 64})
    with pytest.raises(ValueError, match=r"unknown keys \['size'\]"):
        import_hdf5(tmp_path / "lewm.h5", tmp_path / "out", progress=False,
                    env={"id": "wm/reacher-v0", "size": 12})


def test_missing_h5py_names_the_extra(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'worldmodel-lab\[hdf5\]'"):
        export_hdf5(tiny_dataset, tmp_path / "data.h5", progress=False)
    with pytest.raises(ImportError, match=r"worldmodel-lab\[hdf5\]"):
        import_hdf5(tmp_path / "data.h5", tmp_path / "out", progress=False)


def _edit(path, drop=(), **replace):
    with h5py.File(path, "a") as f:
        for key in [*drop, *replace]:
            del f[key]
        for key, value in replace.items():
            f.create_dataset(key, data=value)


def test_bad_files_are_clear_errors(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="nothing.h5 not found"):
        import_hdf5(tmp_path / "nothing.h5", out, env={"id": "wm/reacher-v0"})
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InteropError, match="is not an HDF5 file"):
        import_hdf5(tmp_path / "text.h5", out, env={"id": "wm/reacher-v0"})
    cases = [({"drop": ["ep_offset"]}, r"lacks the dataset\(s\) \['ep_offset'\]"),
             ({"action": np.zeros((11, 2), np.float32)}, "action has 11 rows but pixels has 12"),
             ({"ep_len": np.asarray([5, 3], np.int32)}, "ep_len has 2 entries and ep_offset 3"),
             ({"ep_len": np.asarray([5, 3, 9], np.int32)}, "do not describe disjoint episodes"),
             ({"pixels": np.zeros((12, 8, 6, 3), np.uint8)}, "frames are 8x6"),
             ({"pixels": np.zeros((12, 8, 8, 3), np.float32)}, "expected uint8 RGB")]
    for k, (edit, message) in enumerate(cases):
        path = tmp_path / f"bad{k}.h5"
        _foreign(path)
        _edit(path, **edit)
        with pytest.raises(InteropError, match=message):
            import_hdf5(path, out, env={"id": "wm/reacher-v0"}, progress=False)
    assert not out.exists() or not any(out.iterdir())  # nothing written for a bad file


def test_an_interrupted_import_resumes_and_a_used_folder_is_refused(tiny_dataset, tmp_path,
                                                                   monkeypatch):
    from envs import interop

    h5 = export_hdf5(tiny_dataset, tmp_path / "data.h5", progress=False)
    real = interop.write_dataset_shard

    def fail_on_second(root, index, arrays):
        if index == 1:
            raise KeyboardInterrupt
        return real(root, index, arrays)

    monkeypatch.setattr(interop, "write_dataset_shard", fail_on_second)
    monkeypatch.setattr(interop, "SCRATCH_BYTES", 0)  # pixels staged on disk, as for big shards
    with pytest.raises(KeyboardInterrupt):
        import_hdf5(h5, tmp_path / "back", progress=False)
    with pytest.raises(DatasetError, match="incomplete"):
        PixelDataset(tmp_path / "back")
    monkeypatch.setattr(interop, "write_dataset_shard", real)
    import_hdf5(h5, tmp_path / "back", progress=False)
    assert _files(tmp_path / "back") == _files(tiny_dataset)
    assert not list((tmp_path / "back").glob(".import-*"))  # the staging files are gone
    _foreign(tmp_path / "other.h5")
    with pytest.raises(DatasetError, match="holds another dataset"):
        import_hdf5(tmp_path / "other.h5", tmp_path / "back", env={"id": "wm/reacher-v0"},
                    progress=False)


def test_a_foreign_file_without_states_imports_with_states_of_width_zero(tmp_path):
    _foreign(tmp_path / "lewm.h5")
    _edit(tmp_path / "lewm.h5", drop=["observation"])
    data = PixelDataset(import_hdf5(tmp_path / "lewm.h5", tmp_path / "out",
                                    env={"id": "wm/reacher-v0"}, progress=False))
    assert data.meta.state_dim == 0 and data.episode(1)["states"].shape == (3, 0)
    with pytest.raises(InteropError, match="no dataset 'qpos'"):
        import_hdf5(tmp_path / "lewm.h5", tmp_path / "out2", env={"id": "wm/reacher-v0"},
                    state_key="qpos", progress=False)
