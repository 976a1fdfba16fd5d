"""train.py on pixels: auto-collection, a few real training steps, checkpoint, resume."""

import json
import math
import os
import signal

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from configs.loader import load_config
from envs.dataset import PixelDataset
from worldmodel.app import train
from worldmodel.app.trainer import SetupError
from worldmodel.module import JEPAModule


def test_pixel_run_on_a_collected_dataset_reloads_identically(tiny_dataset, tmp_path,
                                                              tiny_pixels):
    cfg = load_config("reacher", [*tiny_pixels, f"output_dir={tmp_path}", f"data.path={tiny_dataset}",
                                  "env.image_size=32"])
    result = train.train(cfg)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for key in ("train/loss", "val/pred_loss", "val/sigreg", "probe/r2", "probe/r2_wrist_pos",
                "probe/orthogonality_error", "probe/procrustes_error", "latent/effective_rank"):
        assert math.isfinite(metrics[key]), key
    module = JEPAModule.load_from_checkpoint(result.checkpoint, weights_only=True)
    assert module.data_meta.env.id == "wm/reacher-v0"
    batch = PixelDataset(tiny_dataset).episode(0)
    pixels = torch.from_numpy(batch["pixels"][None, :4])  # (1, 4, 32, 32, 3)
    state = torch.load(result.checkpoint, weights_only=True)["state_dict"]
    trained = result.module.world_model.eval()  # the model in memory at the end of training
    reloaded = module.world_model.eval()
    torch.testing.assert_close(reloaded.encode(pixels), trained.encode(pixels), rtol=0, atol=0)
    z, actions = trained.encode(pixels), torch.from_numpy(batch["actions"][None, :4])
    torch.testing.assert_close(reloaded.rollout(z[:, :2], actions[:, :3]),
                               trained.rollout(z[:, :2], actions[:, :3]), rtol=0, atol=0)
    # rerunning resumes from the last periodic checkpoint (step 6 = max_steps: nothing to do),
    # so another seed changes nothing; without resuming it would start from another init. The
    # held-out split must stay (data.split_seed=0): a resumed run never moves its split
    assert (result.run_dir / "checkpoints" / "last.ckpt").exists()
    rerun = [*tiny_pixels, f"output_dir={tmp_path}", f"data.path={tiny_dataset}",
             "env.image_size=32", "seed=1"]
    with pytest.raises(SetupError, match="split_seed"):
        train.train(load_config("reacher", rerun))
    again = train.train(load_config("reacher", [*rerun, "data.split_seed=0"]))
    resumed = torch.load(again.checkpoint, weights_only=True)
    assert resumed["global_step"] == 6
    assert math.isfinite(again.metrics["probe/r2"])  # measured although no step ran (on_fit_end)
    for key, value in state.items():
        torch.testing.assert_close(resumed["state_dict"][key], value, msg=key)


def test_missing_dataset_is_collected_by_train(tmp_path, tiny_pixels):
    cfg = load_config("reacher", [*tiny_pixels, f"output_dir={tmp_path}", "env.image_size=32",
                                  "collect.episodes=4", "collect.episode_steps=12",
                                  "collect.workers=1", "trainer.max_steps=2"])
    result = train.train(cfg)
    data = PixelDataset(result.metrics["dataset"])
    assert data.num_episodes == 4 and data.meta.complete
    assert str(tmp_path / "datasets") in result.metrics["dataset"]


def test_a_missing_dataset_path_is_a_clear_cli_error(tmp_path, capsys):
    code = train.main(["--config", "reacher", f"data.path={tmp_path / 'nothing'}",
                       f"output_dir={tmp_path}", "trainer.progress_bar=false"])
    assert code == 2
    assert "not a dataset directory" in capsys.readouterr().err


def test_resuming_a_run_of_other_windows_is_refused(tiny_dataset, tmp_path, tiny_pixels):
    base = [*tiny_pixels, f"output_dir={tmp_path}", f"data.path={tiny_dataset}", "env.image_size=32",
            "trainer.max_steps=2"]
    train.train(load_config("reacher", base))
    with pytest.raises(SetupError, match=r"trained with other \['num_preds'\]"):
        train.train(load_config("reacher", [*base, "data.num_preds=1"]))


@pytest.fixture(scope="module")
def tiny_cube_dataset(tmp_path_factory):
    """Two 40-step oracle cube episodes at 32 px (11 windows of six 5-step blocks each)."""
    from envs.collect import CollectConfig, EnvConfig, collect_rollouts

    root = tmp_path_factory.mktemp("data") / "cube"
    collect_rollouts(root, EnvConfig(id="wm/cube-single-v0", image_size=32),
                     CollectConfig(episodes=2, episode_steps=40, policy="ogbench_plan",
                                   episodes_per_shard=1, workers=1), progress=False)
    return root


@pytest.mark.parametrize("name, dataset, env_id", [
    ("reacher_gpu", "tiny_dataset", "wm/reacher-v0"),
    ("cube_gpu", "tiny_cube_dataset", "wm/cube-single-v0")])
def test_gpu_configs_build_and_train_when_shrunk_to_cpu(name, dataset, env_id, request, tmp_path,
                                                         tiny_pixels):
    cfg = load_config(name, [
        *tiny_pixels, f"output_dir={tmp_path}", f"data.path={request.getfixturevalue(dataset)}",
        "env.image_size=32", "trainer.accelerator=cpu", "trainer.precision=32-true",
        "trainer.max_steps=2", "data.num_workers=0", "model.predictor_hidden=32",
        "model.predictor_layers=1", "data.val_fraction=0.5", "model.vit_width=32",
        "model.vit_depth=1", "model.vit_heads=2"])
    assert cfg.model.encoder == "vit" and cfg.model.predictor == "transformer"
    assert cfg.env.id == env_id
    result = train.train(cfg)
    module = JEPAModule.load_from_checkpoint(result.checkpoint, weights_only=True)
    assert module.hparams.model["encoder"] == "vit" and math.isfinite(result.metrics["train/loss"])
    vit = module.world_model.encoder
    assert len(vit.blocks.layers) == 1 and vit.cls.shape[-1] == 32  # the shrunk ViT was built
    assert module.data_meta.env.id == env_id


class SignalAt(L.Callback):
    """Sends ``signum`` to this process once, at the end of training step ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum, self.sent = step, signum, False

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.sent:
            self.sent = True
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signalled_run_resumes_to_the_weights_of_an_uninterrupted_one(tiny_dataset, tmp_path,
                                                                          signum, tiny_pixels):
    base = [*tiny_pixels, f"data.path={tiny_dataset}", "env.image_size=32", "trainer.max_steps=8",
            "trainer.val_every_n_steps=4", "trainer.checkpoint_every_n_steps=100"]
    full = train.train(load_config("reacher", [*base, f"output_dir={tmp_path / 'full'}"]))
    cfg = load_config("reacher", [*base, f"output_dir={tmp_path / 'cut'}"])
    before = signal.getsignal(signum)
    with pytest.raises(SIGTERMException):
        train.train(cfg, extra_callbacks=[SignalAt(3, signum)])
    last = tmp_path / "cut" / cfg.name / "checkpoints" / "last.ckpt"
    stopped = torch.load(last, weights_only=True)
    assert 3 <= stopped["global_step"] <= 4  # the step in progress finished, then it stopped
    assert not (last.parent.parent / "model.ckpt").exists()  # not mistaken for a finished run
    assert signal.getsignal(signum) == before  # the handlers of the process are back
    resumed = train.train(cfg)  # the same command again
    a = torch.load(full.checkpoint, weights_only=True)
    b = torch.load(resumed.checkpoint, weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    for key, value in a["state_dict"].items():
        assert torch.equal(b["state_dict"][key], value), key
    for x, y in zip(a["optimizer_states"][0]["state"].values(),
                    b["optimizer_states"][0]["state"].values()):
        assert torch.equal(x["exp_avg_sq"], y["exp_avg_sq"])


def test_a_stopped_run_exits_143_and_says_how_to_resume(monkeypatch, tmp_path, capsys):
    def stopped(cfg):
        raise SIGTERMException()

    monkeypatch.setattr(train, "train", stopped)
    assert train.main(["--config", "reacher", f"output_dir={tmp_path}"]) == 143
    assert "writes no checkpoint to resume from" in capsys.readouterr().err
    last = tmp_path / "reacher" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.touch()
    assert train.main(["--config", "reacher", f"output_dir={tmp_path}"]) == 143
    err = capsys.readouterr().err
    assert "rerun the same command to resume" in err and str(last) in err


def test_collect_only_writes_this_array_tasks_shards_of_the_default_dataset(tmp_path,
                                                                            monkeypatch, capsys):
    args = ["--config", "reacher", "--collect-only", f"output_dir={tmp_path}",
            "env.image_size=24", "collect.episodes=4", "collect.episode_steps=6",
            "collect.episodes_per_shard=1", "collect.workers=1", "trainer.progress_bar=false"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert train.main(args) == 0
    assert "shard 1 of 2: wrote 2 shards" in capsys.readouterr().out
    cfg = load_config("reacher", args[3:])
    path = train.dataset_path(cfg)
    assert sorted(p.name for p in path.glob("shard-*")) == ["shard-00001", "shard-00003"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert train.main(args) == 0
    assert "dataset complete" in capsys.readouterr().out
    assert PixelDataset(path).num_episodes == 4
    assert train.main([*args, "data.path=/elsewhere"]) == 2


def test_a_warning_signal_before_training_stops_the_run_after_its_first_step(tiny_dataset,
                                                                             tmp_path, tiny_pixels):
    from callbacks.preemption import install_signal_flags

    cfg = load_config("reacher", [*tiny_pixels, f"data.path={tiny_dataset}", "env.image_size=32",
                                  f"output_dir={tmp_path}"])
    before = signal.getsignal(signal.SIGUSR1)
    try:
        install_signal_flags()  # what train.py's main does first
        os.kill(os.getpid(), signal.SIGUSR1)  # e.g. while the dataset is being collected
        with pytest.raises(SIGTERMException):
            train.train(cfg)
    finally:
        signal.signal(signal.SIGUSR1, before)
    last = torch.load(tmp_path / cfg.name / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 1
