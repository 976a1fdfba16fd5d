"""Fault injection: a run that diverges stops at once, keeps its last good checkpoint, and the
planner refuses non-finite weights (issue: reliability)."""

import numpy as np
import pytest
import torch
from conftest import TINY_PIXELS as TINY

from callbacks.finite_guard import NonFiniteError
from configs.loader import load_config
from worldmodel.app import plan, train
from worldmodel.checkpoint import load_world_model
from worldmodel.module import JEPAModule


def _poison_loss_from(step, monkeypatch):
    """Make the training loss NaN from global step ``step`` on (as a huge lr or weight does)."""
    losses = JEPAModule.losses

    def poisoned(self, batch):
        out, z = losses(self, batch)
        if self.training and self.trainer is not None and self.trainer.global_step >= step:
            out = {**out, "loss": out["loss"] * float("nan")}
        return out, z

    monkeypatch.setattr(JEPAModule, "losses", poisoned)


def _overrides(tiny_dataset, tmp_path):
    return [*TINY, f"output_dir={tmp_path}", f"data.path={tiny_dataset}", "env.image_size=32",
            "trainer.max_steps=8"]


def test_a_diverging_run_stops_at_the_step_and_keeps_its_last_good_checkpoint(
        tiny_dataset, tmp_path, monkeypatch, capsys):
    _poison_loss_from(4, monkeypatch)
    overrides = _overrides(tiny_dataset, tmp_path)
    assert train.main(["--config", "reacher", *overrides]) == 2
    err = capsys.readouterr().err
    assert "training diverged at step 4" in err and "non-finite gradients" in err
    assert "optim.lr=0.0003" in err and "loss.regulariser_weight=0.1" in err
    last = tmp_path / "reacher" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 3  # the periodic checkpoint before the divergence
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values()
               if t.is_floating_point())
    assert not (tmp_path / "reacher" / "model.ckpt").exists()
    monkeypatch.undo()  # a rerun, fixed, resumes from the good checkpoint and finishes
    assert train.main(["--config", "reacher", *overrides]) == 0


def test_the_divergence_advice_works_a_lower_lr_resumes_from_the_last_good_step(
        tiny_dataset, tmp_path, monkeypatch, caplog):
    """The guard says to lower optim.lr or a loss weight and rerun: that rerun resumes (it is
    not refused as "other settings") and continues at the new rate."""
    import logging

    import lightning as L

    _poison_loss_from(4, monkeypatch)
    overrides = _overrides(tiny_dataset, tmp_path)
    assert train.main(["--config", "reacher", *overrides]) == 2
    monkeypatch.undo()
    seen = []

    class LearningRate(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append((trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"]))

    caplog.set_level(logging.INFO, logger="train")
    lower = [*overrides, "optim.lr=0.0001", "loss.regulariser_weight=0.05"]
    result = train.train(load_config("reacher", lower), extra_callbacks=[LearningRate()])
    assert "optim.lr: 0.0003 in the checkpoint, 0.0001 now" in caplog.text
    assert "loss.regulariser_weight: 0.1 in the checkpoint, 0.05 now" in caplog.text
    assert seen[0][0] == 3  # resumed at the last good step, not from scratch
    from worldmodel.module import cosine_after_constant

    for step, lr in seen:  # the new rate, on the run's schedule
        assert lr == pytest.approx(1e-4 * cosine_after_constant(step, 8, 0.5))
    assert result.module.loss_cfg.regulariser_weight == 0.05


def test_no_checkpoint_is_written_with_non_finite_weights(tiny_dataset, tmp_path):
    from callbacks.preemption import AtomicCheckpointIO

    good = tmp_path / "good.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}}, good)
    before = good.read_bytes()
    with pytest.raises(NonFiniteError, match="refusing to write .* the previous checkpoint is "
                                             "kept"):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float(
            "inf")])}}, good)
    assert good.read_bytes() == before and list(tmp_path.iterdir()) == [good]


def test_plan_and_resume_refuse_a_checkpoint_with_non_finite_weights(tiny_dataset, tmp_path,
                                                                     capsys):
    overrides = _overrides(tiny_dataset, tmp_path)
    result = train.train(load_config("reacher", overrides))
    saved = torch.load(result.checkpoint, weights_only=True)
    name = next(k for k, v in saved["state_dict"].items() if v.is_floating_point())
    saved["state_dict"][name] = saved["state_dict"][name] * float("nan")
    broken = tmp_path / "diverged.ckpt"
    torch.save(saved, broken)
    with pytest.raises(ValueError, match="non-finite weights .* diverged"):
        load_world_model(broken)
    assert plan.main(["--config", "reacher", *overrides, f"plan.checkpoint={broken}"]) == 2
    assert "non-finite weights" in capsys.readouterr().err
    last = result.run_dir / "checkpoints" / "last.ckpt"
    torch.save(saved, last)  # as an older version of this code could leave it
    more = [*overrides, "trainer.max_steps=12"]
    assert train.main(["--config", "reacher", *more]) == 2
    assert "holds non-finite weights" in capsys.readouterr().err


def test_an_unknown_env_id_is_one_clear_error(tmp_path, capsys):
    assert train.main(["--config", "reacher", f"output_dir={tmp_path}", "env.id=wm/reachr-v0",
                       "trainer.progress_bar=false"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown env id 'wm/reachr-v0'") and "Did you mean" in err
    assert "Traceback" not in err and "module:EnvName-v0" in err


def test_evaluation_counts_are_range_checked():
    from planners.eval_config import ClosedLoopConfig

    with pytest.raises(ValueError, match="videos must be >= 0"):
        ClosedLoopConfig(videos=-1)
    with pytest.raises(ValueError, match="ceiling_samples must be >= 2"):
        ClosedLoopConfig(ceiling_samples=1)


def _int_keys(node, prefix=""):
    from omegaconf import OmegaConf

    for key in node:
        child = node._get_node(key)
        if OmegaConf.is_dict(child):
            yield from _int_keys(child, f"{prefix}{key}.")
        elif type(child._value()) is int:
            yield f"{prefix}{key}"


def test_every_count_in_the_schema_is_range_checked():
    """Before: collect.episodes=0, negative seeds, worker and thread counts, model sizes and
    SIGReg directions were accepted (some failing late, after a dataset was collected)."""
    from omegaconf import OmegaConf

    from configs.loader import ConfigError
    from configs.schema import MODE_SECTIONS, ExperimentConfig

    keys = list(_int_keys(OmegaConf.structured(ExperimentConfig)))
    assert len(keys) > 40 and "collect.episodes" in keys and "plan.eval.videos" in keys
    for key in keys:
        config = "identifiability" if key.split(".")[0] in MODE_SECTIONS["synthetic"] else "reacher"
        with pytest.raises(ConfigError, match=rf"command line: {key}=-5"):
            load_config(config, [f"{key}=-5"])


def test_ctrl_c_in_training_says_how_to_resume(tiny_dataset, tmp_path, capsys):
    import os
    import signal

    import lightning as L

    class CtrlCAt(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == 5:
                os.kill(os.getpid(), signal.SIGINT)

    cfg = load_config("reacher", _overrides(tiny_dataset, tmp_path))
    try:
        with pytest.raises((SystemExit, KeyboardInterrupt)):
            train.train(cfg, extra_callbacks=[CtrlCAt()])
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning ignores it after
    err = capsys.readouterr().err
    last = tmp_path / "reacher" / "checkpoints" / "last.ckpt"
    assert "interrupted at step" in err and f"resume from {last}" in err
    assert torch.load(last, weights_only=True)["global_step"] == 3  # the periodic checkpoint


def test_a_checkpoint_write_killed_midway_leaves_no_temporary_behind(tiny_dataset, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    folder = tmp_path / "reacher" / "checkpoints"
    folder.mkdir(parents=True)
    stale = folder / f".last.ckpt.tmp-{dead}"  # what a kill during torch.save leaves
    stale.write_bytes(b"\0" * 4096)
    mine = folder / f".last.ckpt.tmp-{__import__('os').getppid()}"  # a live process's: kept
    mine.write_bytes(b"\0")
    train.train(load_config("reacher", _overrides(tiny_dataset, tmp_path)))
    assert not stale.exists() and mine.exists()


@pytest.fixture
def trained_tiny(tiny_run):
    return tiny_run


def test_unreadable_checkpoints_and_devices_are_clear_errors(trained_tiny, tmp_path, capsys):
    overrides, result = trained_tiny
    whole = result.checkpoint.read_bytes()
    cases = {"truncated.ckpt": whole[: len(whole) // 2],
             "random.ckpt": __import__("os").urandom(4096)}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        assert plan.main(["--config", "reacher", *overrides,
                          f"plan.checkpoint={tmp_path / name}"]) == 2
        err = capsys.readouterr().err
        assert "is not a readable world-model checkpoint" in err and "Traceback" not in err
    if not torch.cuda.is_available():
        assert plan.main(["--config", "reacher", *overrides, "plan.device=cuda"]) == 2
        assert "no CUDA GPU is visible" in capsys.readouterr().err


def test_resuming_with_other_model_or_optimiser_settings_is_refused(trained_tiny, capsys):
    overrides, result = trained_tiny
    last = result.run_dir / "checkpoints" / "last.ckpt"
    assert last.exists()
    for change, says in (("model.latent_dim=16", "model.latent_dim: 8 in the checkpoint, 16 now"),
                         ("optim.weight_decay=0.1",
                          "optim.weight_decay: 0.0 in the checkpoint, 0.1 now"),
                         ("trainer.max_steps=9", "max_steps: 6 in the checkpoint, 9 now")):
        assert train.main(["--config", "reacher", *overrides, change]) == 2
        err = capsys.readouterr().err
        assert says in err and "trainer.resume=false" in err, err


def test_a_plug_in_module_missing_from_the_path_is_a_clear_error(tmp_path, capsys):
    assert train.main(["--config", "reacher", f"output_dir={tmp_path}",
                       "env.id=no_such_module:MyEnv-v0", "trainer.progress_bar=false"]) == 2
    err = capsys.readouterr().err
    assert "cannot import 'no_such_module'" in err and "PYTHONPATH" in err
    assert "Traceback" not in err


def test_flipped_bytes_are_found_when_a_dataset_is_opened_or_resumed(tiny_dataset, tmp_path,
                                                                     capsys):
    import shutil

    import numpy as np

    from envs.dataset import DatasetError, PixelDataset
    from worldmodel.app.collect import main as collect_main
    from worldmodel.data import PixelDataModule

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    cfg = load_config("reacher", _overrides(tiny_dataset, tmp_path))
    PixelDataModule(data, cfg.data, 8)  # sound: verified once, remembered
    assert PixelDataset(data).verify_once() == 0  # nothing read again
    pixels = data / "shard-00001" / "pixels.npy"
    raw = bytearray(pixels.read_bytes())
    raw[-4096:] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    pixels.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="shard-00001/pixels.npy fails its checksum.*rerun "
                                           "the collect command"):
        PixelDataModule(data, cfg.data, 8)
    meta = PixelDataset(data, allow_incomplete=True).meta
    assert collect_main(["--out", str(data), "--episodes", str(meta.num_episodes),
                         "--steps", str(meta.episode_steps), "--image-size", "32",
                         "--episodes-per-shard", str(meta.episodes_per_shard),
                         "--seed", str(meta.seed), "--workers", "1", "--no-progress"]) == 2
    assert "fails its checksum" in capsys.readouterr().err


def test_an_edited_meta_json_is_refused_naming_the_key(tiny_dataset, tmp_path):
    import json
    import shutil

    from envs.collect import CollectConfig, EnvConfig, collect_rollouts
    from envs.dataset import DatasetError, PixelDataset

    root = tmp_path / "fresh"  # shards written by this code record what they were collected as
    collect_rollouts(root, EnvConfig(image_size=16), CollectConfig(
        episodes=2, episode_steps=4, episodes_per_shard=1, workers=1), progress=False)
    PixelDataset(root)
    meta = json.loads((root / "meta.json").read_text())
    meta["env"]["id"] = "wm/point_mass-v0"  # same shapes: only the record can tell
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="does not describe shard-00000: env is .*point_mass"
                                           ".* collected with .*reacher.* Restore meta.json"):
        PixelDataset(root)
    old = tmp_path / "old"  # shards from before carry no record: still read
    shutil.copytree(tiny_dataset, old)
    for info in old.glob("shard-*/shard.json"):
        d = json.loads(info.read_text())
        d.pop("meta", None)
        info.write_text(json.dumps(d))
    PixelDataset(old)


@pytest.mark.parametrize("override, says", [
    ("model.encoder=foo", "unknown model.encoder 'foo'"),
    ("model.predictor=bar", "unknown model.predictor 'bar'"),
    ("env.image_size=7", "env.image_size must be >= 8"),
    ("trainer.batch_size=0", "trainer.batch_size must be >= 1"),
    ("optim.lr=-1", "optim.lr must be > 0"),
])
def test_bad_values_are_one_line_blaming_the_command_line(tmp_path, capsys, override, says):
    assert train.main(["--config", "reacher", f"output_dir={tmp_path}", override]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: invalid config (command line: {override})") and says in err
    assert not list(tmp_path.iterdir())  # refused before anything was collected or written


def test_unwritable_outputs_are_refused_before_the_work(trained_tiny, tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        blocked = tmp_path / "file-not-folder"  # root may write anywhere: block with a file
        blocked.write_text("x")
        target = blocked / "out"
    else:
        target = tmp_path / "ro" / "out"
        (tmp_path / "ro").mkdir(mode=0o500)
    overrides, _ = trained_tiny
    assert plan.main(["--config", "reacher", *overrides, f"plan.out={target}"]) == 2
    err = capsys.readouterr().err
    assert f"plan.out={target} cannot be written" in err and "Nothing was run" in err
    assert train.main(["--config", "reacher", f"output_dir={target}"]) == 2
    assert f"output_dir={target / 'reacher'} cannot be written" in capsys.readouterr().err
    from worldmodel.app.collect import main as collect_main

    assert collect_main(["--out", str(target), "--episodes", "1", "--no-progress"]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_a_report_that_cannot_be_written_at_the_end_goes_somewhere_safe(trained_tiny, tmp_path,
                                                                        monkeypatch, caplog):
    from worldmodel.app import plan as plan_module

    calls = []
    real = plan_module.write_report

    def flaky(report, out):
        calls.append(out)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied")
        return real(report, out)

    monkeypatch.setattr(plan_module, "write_report", flaky)
    overrides, _ = trained_tiny
    small = ["plan.eval.episodes=1", "plan.eval.budget=3", "plan.eval.goal_offset=2",
             "plan.planner.samples=8", "plan.planner.elites=2", "plan.planner.iterations=1",
             "plan.planner.horizon=2", "plan.eval.progress=false", f"plan.out={tmp_path / 'p'}"]
    assert plan.main(["--config", "reacher", *overrides, *small]) == 0
    assert len(calls) == 2 and calls[1] != tmp_path / "p"
    assert (calls[1] / "report.json").is_file()
    assert "wrote it to" in caplog.text


def test_a_run_says_where_it_reads_and_writes(trained_tiny, tmp_path, capsys, caplog,
                                              monkeypatch):
    import logging

    overrides, _ = trained_tiny
    caplog.set_level(logging.INFO, logger="train")
    train.train(load_config("reacher", [*overrides, "trainer.resume=false",
                                        f"output_dir={tmp_path}"]))
    assert f"writes {(tmp_path / 'reacher').resolve()}" in caplog.text
    monkeypatch.chdir(tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("WML_HOME", str(home))
    assert plan.main(["--config", "reacher", "output_dir=elsewhere"]) == 2
    err = capsys.readouterr().err
    assert f"no checkpoint at {home.resolve() / 'elsewhere'}" in err and "WML_HOME" in err


def test_relative_outputs_are_found_from_any_folder(tmp_path, monkeypatch):
    """Before: a relative output_dir was taken from the current folder, so train.py started
    elsewhere collected a fresh dataset there and plan.py said "train one first"."""
    from configs.loader import CONFIG_DIR

    monkeypatch.delenv("WML_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_config("reacher").output_dir == str(CONFIG_DIR.parent / "outputs")
    assert load_config("reacher", ["output_dir=/abs/runs"]).output_dir == "/abs/runs"
    monkeypatch.setenv("WML_HOME", str(tmp_path / "h"))
    assert load_config("reacher", ["output_dir=r"]).output_dir == str(tmp_path / "h" / "r")


def test_an_identifiability_checkpoint_given_to_plan_py_is_a_clear_error(tiny_synthetic,
                                                                         tmp_path, capsys):
    """Before: ``TypeError: ... missing 3 required positional arguments``."""
    result = train.train(load_config("identifiability",
                                     [*tiny_synthetic, "trainer.max_steps=2",
                                      f"output_dir={tmp_path}"]))
    assert plan.main(["--config", "reacher", f"plan.checkpoint={result.checkpoint}",
                      "plan.device=cpu"]) == 2
    err = capsys.readouterr().err
    assert "holds no pixel dataset meta (a synthetic-world encoder?)" in err
    assert "Traceback" not in err


def test_two_runs_of_the_same_name_do_not_share_a_folder(tiny_dataset, tmp_path, capsys):
    import socket
    import subprocess
    import sys

    run = tmp_path / "reacher"
    run.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live run of this host holds the folder
        (run / ".train.lock").write_text(f"{socket.gethostname()} {sleeper.pid}")
        assert train.main(["--config", "reacher", *_overrides(tiny_dataset, tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"the run folder {run} is in use by process {sleeper.pid}" in err
        assert not (run / "model.ckpt").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the owner is gone (killed without cleaning up): its lock is taken over, and released
    assert train.main(["--config", "reacher", *_overrides(tiny_dataset, tmp_path)]) == 0
    assert (run / "model.ckpt").exists() and not (run / ".train.lock").exists()


@pytest.mark.parametrize("states", ["absent", "nan"])
def test_imported_data_without_usable_states_trains_to_a_checkpoint(tiny_dataset, tmp_path,
                                                                    capsys, states):
    """The probe reads the data's states; data without them (a documented import case) still
    trains to its model.ckpt, and the probe says why it was skipped."""
    h5py = pytest.importorskip("h5py")
    from envs.hdf5_export import export_hdf5
    from envs.interop import import_hdf5

    h5 = export_hdf5(tiny_dataset, tmp_path / "data.h5", progress=False)
    with h5py.File(h5, "r+") as f:
        del f.attrs["wml_meta"]  # a foreign file: the env is given on import
        if states == "absent":
            del f["state"]
        else:
            f["state"][...] = np.nan
    data = import_hdf5(h5, tmp_path / "imported", env={"id": "wm/reacher-v0"}, progress=False)
    overrides = [*TINY, f"output_dir={tmp_path / 'runs'}", f"data.path={data}",
                 "env.image_size=32"]
    assert train.main(["--config", "reacher", *overrides]) == 0
    out = capsys.readouterr().out
    assert "state probe skipped:" in out
    assert (tmp_path / "runs" / "reacher" / "model.ckpt").is_file()


@pytest.mark.parametrize("full_at", ["last.ckpt", "model.ckpt"])
def test_a_full_disk_at_a_checkpoint_keeps_the_run_and_names_the_last_good_one(
        tiny_dataset, tmp_path, monkeypatch, capsys, caplog, full_at):
    import errno

    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    save = TorchCheckpointIO.save_checkpoint

    def full(self, checkpoint, path, storage_options=None):
        if f".{full_at}.tmp" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", full)
    run = tmp_path / "reacher"
    code = train.main(["--config", "reacher", *_overrides(tiny_dataset, tmp_path)])
    if full_at == "last.ckpt":  # periodic checkpoints: logged, and the run goes on
        assert code == 0 and (run / "model.ckpt").is_file()
        assert "could not write the checkpoint" in caplog.text
        assert "No space left on device" in caplog.text
    else:  # the model itself: one line naming the last good checkpoint, and a rerun resumes
        assert code == 2 and not (run / "model.ckpt").exists()
        err = capsys.readouterr().err
        assert f"could not write {run / 'model.ckpt'} (No space left on device)" in err
        assert f"the last good checkpoint is {run / 'checkpoints' / 'last.ckpt'}" in err
        monkeypatch.undo()
        assert train.main(["--config", "reacher", *_overrides(tiny_dataset, tmp_path)]) == 0
        assert torch.load(run / "model.ckpt", weights_only=True)["global_step"] == 8
