"""Train a model from a config: ``python train.py [--config NAME|PATH] [key=value ...]``.

config -> data -> LightningModule -> Trainer.fit -> checkpoint + metrics.json. A config with
an ``env`` trains a pixel world model, collecting its dataset first when it is missing; one
without trains an encoder on a synthetic world (the identifiability lab, the default).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import OmegaConf

from callbacks.identifiability import SyntheticIdentifiabilityProbe
from callbacks.latent_stats import LatentStats
from callbacks.preemption import AtomicCheckpointIO, Preemption, install_signal_flags
from callbacks.state_probe import StateProbe, state_probe
from configs.loader import ConfigError, load_config
from configs.schema import ExperimentConfig
from envs.collect import array_task_shard, collect_rollouts, default_dataset_dir, ensure_dataset
from envs.dataset import DatasetError
from envs.fileio import is_launch_rank_zero
from worldmodel.data import PixelDataModule
from worldmodel.distributed import GlobalBatchNormSync
from worldmodel.module import JEPAModule
from worldmodel.synthetic import SyntheticDataModule, SyntheticWorld
from worldmodel.utils import atomic_write_text, configure_threads, keep_freed_memory
from worldmodel.world_module import WorldModelModule

log = logging.getLogger("train")


@dataclass
class TrainResult:
    """What a run produced: its folder, checkpoint and final metrics."""

    run_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]


def build_world(cfg: ExperimentConfig) -> SyntheticWorld:
    """The synthetic world of ``cfg.world``."""
    w = cfg.world
    rho = w.rho_per_dim if w.rho_per_dim is not None else w.rho
    return SyntheticWorld(w.latent_dim, w.law, w.alpha, rho, w.mixing, w.mixing_layers,
                          w.mixing_seed)


def dataset_path(cfg: ExperimentConfig) -> Path:
    """The default dataset folder for this env and collection setting."""
    return default_dataset_dir(Path(cfg.output_dir) / "datasets", cfg.env, cfg.collect)


def make_logger(name: str, run_dir: Path, run_name: str):
    """``csv`` (no extra install), ``tensorboard`` or ``wandb`` (when installed)."""
    if name == "csv":
        return CSVLogger(run_dir, name="logs")
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        try:
            return TensorBoardLogger(run_dir, name="logs")
        except ModuleNotFoundError as err:
            raise ConfigError("trainer.logger=tensorboard needs `pip install tensorboard`"
                              ) from err
    if name == "wandb":
        try:
            import wandb  # noqa: F401
        except ModuleNotFoundError as err:
            raise ConfigError("trainer.logger=wandb needs `pip install wandb`") from err
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(name=run_name, save_dir=str(run_dir))
    raise ConfigError(f"unknown trainer.logger {name!r}; use csv, tensorboard or wandb")


def _trainer(cfg: ExperimentConfig, run_dir: Path, callbacks: list, **kwargs: Any) -> L.Trainer:
    t = cfg.trainer
    plugins: list = [AtomicCheckpointIO()]
    if t.sync_batchnorm:  # BatchNorm over the global batch under DDP, on CPU and GPU alike
        plugins.append(GlobalBatchNormSync())
    if (any(isinstance(c, Preemption) for c in callbacks) and SLURMEnvironment.detect()
            and not TorchElasticEnvironment.detect()):  # torchrun inside SLURM: its ranks
        plugins.append(SLURMEnvironment(auto_requeue=False))  # requeue is Preemption's job
    return L.Trainer(
        max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
        plugins=plugins,
        logger=make_logger(t.logger, run_dir, cfg.name), callbacks=callbacks,
        enable_progress_bar=t.progress_bar, enable_model_summary=False,
        log_every_n_steps=t.log_every_n_steps, default_root_dir=run_dir, **kwargs)


def local_processes(cfg: ExperimentConfig) -> int:
    """Training processes sharing this process's cores: torchrun's local count, else
    ``trainer.devices`` when Lightning starts CPU processes itself, else 1 (``srun`` gives
    every task its own CPUs already)."""
    if os.environ.get("LOCAL_WORLD_SIZE"):
        return max(int(os.environ["LOCAL_WORLD_SIZE"]), 1)
    devices = cfg.trainer.devices
    if cfg.trainer.accelerator == "cpu" and isinstance(devices, int) and devices > 1:
        return devices
    return 1


def _finish(cfg: ExperimentConfig, trainer: L.Trainer, run_dir: Path,
            metrics: dict[str, Any]) -> TrainResult:
    checkpoint = run_dir / "model.ckpt"
    trainer.save_checkpoint(checkpoint, weights_only=False)  # rank 0 writes; optimiser kept
    if trainer.is_global_zero:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    return TrainResult(run_dir, checkpoint, metrics)


def train_synthetic(cfg: ExperimentConfig, run_dir: Path) -> TrainResult:
    """Encoder on a synthetic world; identifiability metrics on fresh samples."""
    world = build_world(cfg)
    module = JEPAModule.from_configs(
        obs_dim=world.latent_dim, latent_dim=cfg.model.latent_dim, encoder=cfg.model.encoder,
        objective=cfg.objective, optim=cfg.optim, predictor=cfg.model.predictor,
        max_steps=cfg.trainer.max_steps)
    probe = SyntheticIdentifiabilityProbe(world, cfg.eval.num_samples, cfg.eval.seed,
                                          cfg.eval.every_n_steps)
    trainer = _trainer(cfg, run_dir, [probe], enable_checkpointing=False, limit_val_batches=0,
                       num_sanity_val_steps=0)
    trainer.fit(module, datamodule=SyntheticDataModule(world, cfg.trainer.batch_size, cfg.seed))
    return _finish(cfg, trainer, run_dir, probe.metrics)


def train_world_model(cfg: ExperimentConfig, run_dir: Path,
                      extra_callbacks: list[L.Callback] = ()) -> TrainResult:
    """Pixel world model: collect the dataset if missing, train, probe the latent."""
    if cfg.data.path:  # the user's dataset, used as it is (its meta travels with the model)
        path = Path(cfg.data.path)
    else:  # the default dataset of this env and collection setting: collected when missing
        path = ensure_dataset(dataset_path(cfg), cfg.env, cfg.collect, cfg.trainer.progress_bar)
    data = PixelDataModule(path, cfg.data, cfg.trainer.batch_size, cfg.seed)
    meta = data.model_meta
    module = WorldModelModule.from_configs(cfg.world_model, cfg.loss, cfg.optim, meta,
                                           cfg.trainer.max_steps)
    t = cfg.trainer
    last = ModelCheckpoint(run_dir / "checkpoints", save_last=True, save_top_k=0,
                           every_n_train_steps=t.checkpoint_every_n_steps)
    goal = meta.get("goal") or {}
    angular = [i for i, a in zip(goal.get("indices", []), goal.get("angular", [])) if a]
    probe = StateProbe(meta["state_names"], angular, cfg.eval.every_n_steps)
    stats = LatentStats(every_n_steps=max(t.log_every_n_steps, 1),
                        min_rank_fraction=t.collapse_rank_fraction)
    resume = run_dir / "checkpoints" / "last.ckpt"
    preemption = Preemption(resume, requeue=t.requeue, requeue_on_sigterm=t.requeue_on_sigterm)
    # the datamodule splits every global batch over the ranks itself (worldmodel/data.py)
    trainer = _trainer(cfg, run_dir, [last, probe, stats, preemption, *extra_callbacks],
                       val_check_interval=t.val_every_n_steps, check_val_every_n_epoch=None,
                       num_sanity_val_steps=0, limit_val_batches=20,
                       use_distributed_sampler=False)
    ckpt_path = str(resume) if t.resume and resume.exists() else None
    if ckpt_path:
        _check_resumable(resume, meta)
        log.info("resuming from %s", resume)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    if trainer.is_global_zero and not probe.metrics:  # resumed a finished run: measure now
        probe.metrics = state_probe(module.world_model, data.probe_dataloader("train"),
                                    data.probe_dataloader("val"), meta["state_names"], angular)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics.update(probe.metrics)
    metrics.update({f"latent/{k}": v for k, v in stats.last.items()})
    metrics["dataset"] = str(path)
    return _finish(cfg, trainer, run_dir, metrics)


def _check_resumable(checkpoint: Path, meta: dict[str, Any]) -> None:
    """Refuse to resume a run made on another dataset or window setting."""
    import torch

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    old = saved.get("hyper_parameters", {}).get("data_meta", {})
    keys = ("env", "policy", "seed", "num_episodes", "history", "num_preds", "frameskip")
    diff = [k for k in keys if old.get(k) != meta.get(k)]
    if diff:
        raise ConfigError(f"{checkpoint} was trained with other {diff} than this config; "
                          "give the run another name=..., delete that folder, or set "
                          "trainer.resume=false to start over in it")


def train(cfg: ExperimentConfig, run_dir: Path | None = None,
          extra_callbacks: list[L.Callback] = ()) -> TrainResult:
    """Train what ``cfg`` describes; files go to ``run_dir`` (rank 0 only).

    ``extra_callbacks`` join the pixel world model's own (benchmarks use it for timing).
    """
    configure_threads(cfg.trainer.num_threads, processes=local_processes(cfg))
    keep_freed_memory()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(run_dir or Path(cfg.output_dir) / cfg.name)
    if cfg.env is None:
        return train_synthetic(cfg, run_dir)
    return train_world_model(cfg, run_dir, extra_callbacks)


def collect_only(cfg: ExperimentConfig) -> int:
    """Collect (this array task's shards of) the dataset ``train.py`` will read for ``cfg``."""
    if cfg.env is None:
        raise ConfigError("--collect-only needs a config with an env (a pixel world model)")
    if cfg.data.path:
        raise ConfigError("--collect-only writes the config's default dataset; drop data.path")
    shard = array_task_shard()
    result = collect_rollouts(dataset_path(cfg), cfg.env, cfg.collect, shard,
                              cfg.trainer.progress_bar)
    state = "complete" if result.complete else "waiting for other array tasks"
    print(f"{result.path}: shard {shard[0]} of {shard[1]}: wrote {len(result.shards_written)} "
          f"shards in {result.seconds:.0f} s; dataset {state}")
    return 0


def _summary(result: TrainResult) -> str:
    m = result.metrics
    lines = [f"\ncheckpoint: {result.checkpoint}", f"metrics:    {result.run_dir / 'metrics.json'}"]
    if "r2_h_to_z" in m:
        lines.append(f"R2(h->z) = {m['r2_h_to_z']:.6f}  (mixing alone R2(x->z) = "
                     f"{m['r2_x_to_z']:.4f})")
        if "bound" in m:
            lines.append(f"Procrustes error {m['procrustes_error']:.2e} <= Theorem-3 bound "
                         f"{m['bound']:.2e}")
    else:
        per_dim = ", ".join(f"{k.removeprefix('probe/r2_')} {v:.3f}" for k, v in m.items()
                            if k.startswith("probe/r2_"))
        lines.append(f"dataset:    {m['dataset']}")
        lines.append(f"held-out linear probe R2(latent -> state; angles as sin, cos) = "
                     f"{m['probe/r2']:.3f} ({per_dim})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="name in configs/ or a YAML path")
    parser.add_argument("--collect-only", action="store_true",
                        help="collect the config's dataset and stop; in a SLURM array every "
                             "task writes its own shards (SLURM_ARRAY_TASK_ID)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.max_steps=500")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    install_signal_flags()  # SLURM's warning signal must not kill a run between its steps
    try:
        cfg = load_config(args.config, args.overrides)
        if args.collect_only:
            return collect_only(cfg)
        result = train(cfg)
    except (ConfigError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SIGTERMException:  # Preemption saved the step's checkpoint (and requeued on SLURM)
        last = Path(cfg.output_dir) / cfg.name / "checkpoints" / "last.ckpt"
        if is_launch_rank_zero():
            print("stopped by a signal; " + (
                f"rerun the same command to resume from {last}" if last.exists() else
                "this run writes no checkpoint to resume from"), file=sys.stderr)
        return 143  # 128 + SIGTERM: torchrun --max-restarts and schedulers see an interruption
    if is_launch_rank_zero():
        print(_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
