"""Train a model from a config: ``wml train [--config NAME|PATH] [key=value ...]``.

``python train.py`` is the same command.

config -> data -> LightningModule -> Trainer.fit -> checkpoint + metrics.json. A config of
``mode: pixels`` trains a world model on a pixel dataset, collecting it first when it is
missing (the default, ``configs/reacher.yaml``); ``mode: synthetic`` trains on a synthetic
world (the identifiability lab). Both train the same ``JEPAModule``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import OmegaConf

from callbacks.finite_guard import FiniteGuard, NonFiniteError
from callbacks.identifiability import SyntheticIdentifiabilityProbe, identifiability_summary
from callbacks.latent_stats import LatentStats
from callbacks.planning_eval import PlanningEval
from callbacks.preemption import Preemption, install_signal_flags, remove_stale_temporaries
from callbacks.state_probe import StateProbe, probe_summary
from common.fileio import FolderLock, OutputError, check_writable, is_launch_rank_zero
from configs.loader import ConfigError, load_config, print_config
from configs.schema import ExperimentConfig
from envs.collect import array_task_shard, collect_rollouts, default_dataset_dir, ensure_dataset
from envs.dataset import DatasetError
from envs.meta import ModelMeta
from envs.registry import UnknownEnvError
from worldmodel.app.cli import config_parser
from worldmodel.app.trainer import SetupError, build_trainer, check_resumable, local_processes
from worldmodel.data import PixelDataModule
from worldmodel.module import JEPAModule
from worldmodel.streams import SyntheticDataModule
from worldmodel.utils import atomic_write_text, configure_threads, keep_freed_memory

log = logging.getLogger("train")


@dataclass
class TrainResult:
    """What a run produced: its folder, checkpoint, final metrics and the trained module, and
    the config's ``mode`` (``pixels`` or ``synthetic``), which says what the metrics hold."""

    run_dir: Path
    checkpoint: Path
    metrics: dict[str, Any]
    module: JEPAModule
    mode: str = "pixels"


def dataset_path(cfg: ExperimentConfig) -> Path:
    """The default dataset folder for this env and collection setting."""
    return default_dataset_dir(Path(cfg.output_dir) / "datasets", cfg.env, cfg.collect)


def build_module(cfg: ExperimentConfig, data_meta: ModelMeta) -> JEPAModule:
    """The LightningModule of ``cfg`` for data described by ``data_meta``."""
    return JEPAModule.from_configs(cfg.model, cfg.loss, cfg.optim, data_meta,
                                   cfg.trainer.max_steps, cfg.trainer.cpu_bf16)


def _finish(cfg: ExperimentConfig, trainer: L.Trainer, module: JEPAModule, run_dir: Path,
            metrics: dict[str, Any]) -> TrainResult:
    checkpoint = run_dir / "model.ckpt"
    trainer.save_checkpoint(checkpoint, weights_only=False)  # rank 0 writes; optimiser kept
    failed = getattr(trainer.strategy.checkpoint_io, "failed", {}).get(checkpoint)
    if failed is not None:
        last = run_dir / "checkpoints" / "last.ckpt"
        where = (f"the last good checkpoint is {last}" if last.exists() else
                 "no checkpoint was written")
        raise OutputError(f"could not write {checkpoint} ({failed.strerror or failed}); {where}: "
                          "free space and rerun the same command to resume")
    if trainer.is_global_zero:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    return TrainResult(run_dir, checkpoint, metrics, module, cfg.mode)


def train_synthetic(cfg: ExperimentConfig, run_dir: Path) -> TrainResult:
    """Encoder on a synthetic world; identifiability metrics on fresh samples."""
    world = cfg.world.build()
    data = SyntheticDataModule(world, cfg.trainer.batch_size, cfg.seed)
    module = build_module(cfg, data.model_meta)
    probe = SyntheticIdentifiabilityProbe(world, cfg.probe.num_samples, cfg.probe.seed,
                                          cfg.probe.every_n_steps)
    trainer = build_trainer(cfg.trainer, run_dir, [FiniteGuard(divergence_hint(cfg)), probe],
                            cfg.name, enable_checkpointing=False,
                            limit_val_batches=0, num_sanity_val_steps=0)
    with warnings.catch_warnings():  # a stream of fresh batches has no validation split
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`")
        trainer.fit(module, datamodule=data)
    return _finish(cfg, trainer, module, run_dir, probe.metrics)


def train_pixels(cfg: ExperimentConfig, run_dir: Path,
                 extra_callbacks: list[L.Callback] = ()) -> TrainResult:
    """Pixel world model: collect the dataset if missing, train, probe the latent."""
    t = cfg.trainer
    if cfg.data.path:  # the user's dataset, used as it is (its meta travels with the model)
        path = Path(cfg.data.path)
    else:  # the default dataset of this env and collection setting: collected when missing
        path = dataset_path(cfg)
    if is_launch_rank_zero():  # relative paths are taken from the current folder: say where
        log.info("run %s: writes %s, reads the dataset %s", cfg.name, run_dir.resolve(),
                 Path(path).resolve())
    if not cfg.data.path:
        path = ensure_dataset(path, cfg.env, cfg.collect, t.progress_bar)
    data = PixelDataModule(path, cfg.data, t.batch_size, cfg.seed)
    module = build_module(cfg, data.model_meta)
    resume = run_dir / "checkpoints" / "last.ckpt"
    probe = StateProbe.from_meta(data.model_meta, cfg.probe.every_n_steps)
    stats = LatentStats(every_n_steps=max(t.log_every_n_steps, 1),
                        min_rank_fraction=t.collapse_rank_fraction)
    planning = None
    if cfg.plan.train_eval.every_n_steps > 0:  # plan/success and plan/distance while training
        planning = PlanningEval(cfg.plan.train_eval, data.model_meta, cfg.plan.planner.name,
                                cfg.plan.planner.settings(), cfg.plan.eval)
    callbacks = [FiniteGuard(divergence_hint(cfg, resume)),
                 ModelCheckpoint(run_dir / "checkpoints", save_last=True, save_top_k=0,
                                 every_n_train_steps=t.checkpoint_every_n_steps),
                 probe, stats, Preemption(resume, t.requeue, t.requeue_on_sigterm),
                 *([planning] if planning else []), *extra_callbacks]
    # the datamodule splits every global batch over the ranks itself (worldmodel/data.py)
    trainer = build_trainer(t, run_dir, callbacks, cfg.name, val_check_interval=t.val_every_n_steps,
                            check_val_every_n_epoch=None, num_sanity_val_steps=0,
                            limit_val_batches=20, use_distributed_sampler=False)
    for tmp in remove_stale_temporaries(resume.parent):
        log.info("removed %s, left by a checkpoint write that was killed", tmp)
    ckpt_path = str(resume) if t.resume and resume.exists() else None
    if ckpt_path:
        adjusted = check_resumable(resume, data.model_meta, dict(module.hparams))
        log.info("resuming from %s%s", resume,
                 "".join(f"\n  with {change}" for change in adjusted))
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics.update(probe.metrics)
    metrics.update({f"latent/{k}": v for k, v in stats.last.items()})
    if planning is not None and planning.history:
        metrics.update({k: v for k, v in planning.history[-1].items() if k != "step"})
    metrics["dataset"] = str(path)
    return _finish(cfg, trainer, module, run_dir, metrics)


def divergence_hint(cfg: ExperimentConfig, resume: Path | None = None) -> str:
    """What a diverged run's error says: the settings that usually cause it, and the way on."""
    w = cfg.loss
    again = f"; rerunning resumes from {resume}" if resume is not None else ""
    return (f"Likely causes: a learning rate too large (optim.lr={cfg.optim.lr}) or loss "
            f"weights too large (loss.prediction_weight={w.prediction_weight}, "
            f"loss.regulariser_weight={w.regulariser_weight}, "
            f"loss.rollout_weight={w.rollout_weight}); lower them{again}.")


def train(cfg: ExperimentConfig, run_dir: Path | None = None,
          extra_callbacks: list[L.Callback] = ()) -> TrainResult:
    """Train what ``cfg`` describes; files go to ``run_dir`` (rank 0 only).

    ``extra_callbacks`` join the pixel world model's own (benchmarks use it for timing).
    """
    configure_threads(cfg.trainer.num_threads, processes=local_processes(cfg.trainer))
    keep_freed_memory()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(run_dir or Path(cfg.output_dir) / cfg.name)
    lock: contextlib.AbstractContextManager = contextlib.nullcontext()
    if is_launch_rank_zero():  # before a dataset is collected or a step is taken
        check_writable(run_dir, "output_dir")
        # one run per folder: a second run of the same name would mix its checkpoints in
        lock = FolderLock(run_dir / ".train.lock", f"the run folder {run_dir}")
    with lock:
        if cfg.mode == "synthetic":
            return train_synthetic(cfg, run_dir)
        return train_pixels(cfg, run_dir, extra_callbacks)


def collect_only(cfg: ExperimentConfig) -> int:
    """Collect (this array task's shards of) the dataset ``train.py`` will read for ``cfg``."""
    if cfg.mode != "pixels":
        raise ConfigError(f"--collect-only needs a config of mode pixels, got mode={cfg.mode}")
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
    if result.mode == "synthetic":
        lines.append(identifiability_summary(m))
    else:
        lines += [f"dataset:    {m['dataset']}", probe_summary(m)]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = config_parser(prog, __doc__.splitlines()[0])
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
        if args.print_config:
            print_config(cfg)
            return 0
        if args.collect_only:
            return collect_only(cfg)
        result = train(cfg)
    except (ConfigError, DatasetError, SetupError, NonFiniteError, UnknownEnvError,
            OutputError) as err:
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
