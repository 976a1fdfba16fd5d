"""Files the framework reads are untrusted: nothing in them reaches outside their own place."""

import shutil

import numpy as np
import pytest

from envs.dataset import PixelDataset


def test_a_symlinked_verification_stamp_is_replaced_not_written_through(tiny_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    victim = tmp_path / "someone-elses-file"
    victim.write_text("precious")
    stamp = data / "shard-00000" / ".verified"
    stamp.unlink(missing_ok=True)
    stamp.symlink_to(victim)
    shard = PixelDataset(data).shards[0]
    assert shard.verify_once()  # the link is not taken for a stamp: the shard is read
    assert victim.read_text() == "precious"
    assert not stamp.is_symlink() and stamp.is_file()
    assert not shard.verify_once()  # the real stamp now says it passed


@pytest.mark.parametrize("storage", ["external", "virtual", "external_link"])
def test_an_hdf5_import_refuses_data_kept_outside_the_file(tmp_path, storage):
    h5py = pytest.importorskip("h5py")
    from envs.hdf5_layout import InteropError
    from envs.interop import import_hdf5

    secret = tmp_path / "id_rsa"
    secret.write_bytes(np.arange(2 * 8 * 8 * 3, dtype=np.uint8).tobytes())
    path = tmp_path / "hostile.h5"
    with h5py.File(path, "w") as f:
        if storage == "external":
            f.create_dataset("pixels", shape=(2, 8, 8, 3), dtype=np.uint8,
                             external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        elif storage == "virtual":
            with h5py.File(tmp_path / "other.h5", "w") as g:
                g.create_dataset("x", data=np.zeros((2, 8, 8, 3), np.uint8))
            layout = h5py.VirtualLayout(shape=(2, 8, 8, 3), dtype=np.uint8)
            layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "x", shape=(2, 8, 8, 3))
            f.create_virtual_dataset("pixels", layout)
        else:
            with h5py.File(tmp_path / "other.h5", "w") as g:
                g.create_dataset("pixels", data=np.zeros((2, 8, 8, 3), np.uint8))
            f["pixels"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "pixels")
        f.create_dataset("action", data=np.zeros((2, 2), np.float32))
        f.create_dataset("ep_len", data=np.array([2], np.int32))
        f.create_dataset("ep_offset", data=np.array([0], np.int64))
    with pytest.raises(InteropError, match="'pixels' (keeps its data outside the file|is a "
                                           "link to another file)"):
        import_hdf5(path, tmp_path / "out", env={"id": "wm/reacher-v0"}, progress=False)
    assert not (tmp_path / "out" / "shard-00000").exists()


def test_a_policy_name_cannot_move_the_default_dataset_folder(tmp_path):
    from envs.collect import default_dataset_dir
    from envs.config import CollectConfig, EnvConfig

    folder = default_dataset_dir(tmp_path, EnvConfig(),
                                 CollectConfig(policy="random:../../../x"))
    assert folder.parent == tmp_path and ".." not in folder.name.split("-")[0]
    assert default_dataset_dir(tmp_path, EnvConfig(), CollectConfig()).name.startswith(
        "wm-reacher-v0-64px-ou-1000x100-seed0-")  # the usual names are unchanged


@pytest.mark.parametrize("name", ["os:truncate", "os:_exit", "subprocess:Popen", "math:pi"])
def test_a_config_names_only_a_policy_class_never_another_callable(tmp_path, name):
    from envs.policies import make_policy

    log = tmp_path / "stderr.log"
    log.write_text("the user's log")
    with pytest.raises(ValueError, match="is not a policy class: a plug-in policy is "
                                         "'module:Class'"):
        make_policy(name, 2, {"length": 0, "path": str(log)})
    assert log.read_text() == "the user's log"


@pytest.mark.parametrize("change, says", [
    ({"num_shards": 10**12}, "num_shards=1000000000000, but 6 episodes of 2 per shard make 3"),
    ({"num_shards": 1e12}, r"num_shards=1000000000000\.0: counts are whole numbers"),
    ({"num_episodes": -1}, "num_episodes=-1: counts are whole numbers"),
    ({"action_dim": True}, "action_dim=True: counts are whole numbers")])
def test_a_tampered_meta_json_is_one_clear_error_before_any_loop(tiny_dataset, tmp_path,
                                                                 change, says):
    import json

    from envs.dataset import DatasetError

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    meta = json.loads((data / "meta.json").read_text())
    (data / "meta.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(DatasetError, match=says):
        PixelDataset(data)


def test_wml_verify_says_a_dataset_with_a_missing_shard_is_incomplete(tiny_dataset, tmp_path,
                                                                      capsys):
    from worldmodel.app.cli import main as wml

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    shutil.rmtree(data / "shard-00001")
    assert wml(["verify", str(data)]) == 1
    err = capsys.readouterr().err
    assert "INCOMPLETE" in err and "2 of 3 shards (1 missing)" in err
    assert wml(["verify", str(tiny_dataset)]) == 0


@pytest.mark.parametrize("damage, says", [
    ("nan_action", r"1 actions are not finite or lie outside \[-1, 1\]"),
    ("big_action", r"1 actions are not finite or lie outside \[-1, 1\].*rescale"),
    ("float_lengths", "ep_len is float64; episode lengths and offsets are whole numbers")])
def test_an_import_refuses_actions_and_episode_tables_it_would_misread(tiny_dataset, tmp_path,
                                                                       damage, says):
    h5py = pytest.importorskip("h5py")
    from envs.hdf5_export import export_hdf5
    from envs.hdf5_layout import InteropError
    from envs.interop import import_hdf5

    h5 = export_hdf5(tiny_dataset, tmp_path / "data.h5", progress=False)
    with h5py.File(h5, "r+") as f:
        if damage == "float_lengths":
            lengths = f["ep_len"][:].astype(np.float64)
            del f["ep_len"]
            f["ep_len"] = lengths
        else:
            actions = f["action"][:]
            actions[3, 0] = np.nan if damage == "nan_action" else 7.5
            f["action"][...] = actions
    with pytest.raises(InteropError, match=says):
        import_hdf5(h5, tmp_path / "back", progress=False)
    assert not (tmp_path / "back" / "shard-00000").exists()  # refused before any write
    assert len(import_hdf5(export_hdf5(tiny_dataset, tmp_path / "ok.h5", progress=False),
                           tmp_path / "fine", progress=False).name) > 0  # the clean file imports
