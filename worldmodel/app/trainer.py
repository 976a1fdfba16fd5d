"""The Lightning ``Trainer`` of every run: loggers, plugins, callbacks and resume checks.

``train.py`` and the benchmarks build their Trainer here, so a run anywhere in the repository
gets the same crash-safe checkpoint writes, BatchNorm over the global batch under DDP, and the
SLURM handling of ``callbacks.preemption``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from lightning.pytorch.loggers import CSVLogger, Logger

from callbacks.preemption import AtomicCheckpointIO, Preemption
from envs.meta import ModelMeta
from worldmodel.distributed import GlobalBatchNormSync
from worldmodel.utils import non_finite_tensors

__all__ = ["LOGGERS", "SetupError", "build_trainer", "check_resumable", "local_processes",
           "make_logger"]

LOGGERS = ("csv", "tensorboard", "wandb", "none")
# what a resumed run must share with the run that wrote its checkpoint (the data meta)
RESUME_KEYS = ("env", "policy", "seed", "num_episodes", "history", "num_preds", "frameskip",
               "train_episodes", "split_seed")


class SetupError(ValueError):
    """A Trainer that cannot be built as configured: a logger not installed, a checkpoint this
    run cannot continue from."""


def make_logger(name: str, run_dir: Path, run_name: str, wandb: Any = None) -> Logger | bool:
    """``csv`` (no extra install), ``tensorboard`` or ``wandb`` (when installed), ``none``.

    ``wandb``: a ``WandbConfig`` (project, entity, tags, offline) for the W&B logger."""
    if name == "none":
        return False
    if name == "csv":
        return CSVLogger(run_dir, name="logs")
    if name == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        try:
            return TensorBoardLogger(run_dir, name="logs")
        except ModuleNotFoundError as err:
            raise SetupError("trainer.logger=tensorboard needs `pip install tensorboard` "
                             "(or worldmodel-lab[loggers])") from err
    if name == "wandb":
        try:
            import wandb as _  # noqa: F401
        except ModuleNotFoundError as err:
            raise SetupError("trainer.logger=wandb needs `pip install wandb` (or "
                             "worldmodel-lab[loggers])") from err
        from lightning.pytorch.loggers import WandbLogger

        w = wandb
        return WandbLogger(name=run_name, save_dir=str(run_dir),
                           project=getattr(w, "project", None), entity=getattr(w, "entity", None),
                           tags=list(getattr(w, "tags", None) or []) or None,
                           offline=bool(getattr(w, "offline", False)))
    raise SetupError(f"unknown trainer.logger {name!r}; use one of {list(LOGGERS)}")


def build_trainer(t: Any, run_dir: Path, callbacks: list[L.Callback], run_name: str = "run",
                  **kwargs: Any) -> L.Trainer:
    """A Trainer from ``TrainerConfig`` ``t`` writing under ``run_dir``; ``kwargs`` add to it."""
    plugins: list = [AtomicCheckpointIO()]
    if t.sync_batchnorm:  # BatchNorm over the global batch under DDP, on CPU and GPU alike
        plugins.append(GlobalBatchNormSync())
    if (any(isinstance(c, Preemption) for c in callbacks) and SLURMEnvironment.detect()
            and not TorchElasticEnvironment.detect()):  # torchrun inside SLURM: its ranks
        plugins.append(SLURMEnvironment(auto_requeue=False))  # requeue is Preemption's job
    return L.Trainer(
        max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision, plugins=plugins,
        logger=make_logger(t.logger, run_dir, run_name, getattr(t, "wandb", None)),
        callbacks=callbacks,
        enable_progress_bar=t.progress_bar, enable_model_summary=False,
        log_every_n_steps=t.log_every_n_steps, default_root_dir=run_dir, **kwargs)


# what a rerun may change and still resume: the step size and the loss weights, which a
# divergence's error names as the fix; everything else would continue another model or schedule
ADJUSTABLE = ("optim.lr", "loss.prediction_weight", "loss.regulariser_weight",
              "loss.rollout_weight")


def setting_changes(saved: dict[str, Any], now: dict[str, Any]) -> dict[str, str]:
    """``{"model.latent_dim": "model.latent_dim: 32 in the checkpoint, 16 now", ...}`` for every
    entry of ``model``, ``loss``, ``optim`` and ``max_steps`` that differs."""
    out = {}
    for key in ("model", "loss", "optim", "max_steps"):
        if key not in saved:
            continue
        a, b = saved[key], now.get(key)
        pairs = ({f"{key}.{k}": (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))}
                 if isinstance(a, dict) and isinstance(b, dict) else {key: (a, b)})
        out.update({name: f"{name}: {x!r} in the checkpoint, {y!r} now"
                    for name, (x, y) in pairs.items() if x != y})
    return out


def completed_settings(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's hyper-parameters with ``model``, ``loss`` and ``optim`` completed by this
    version's defaults, so a field added since (``model.vit_depth``, say) is no change."""
    from dataclasses import asdict

    from worldmodel.module import LossConfig, OptimConfig
    from worldmodel.world_model import ModelConfig

    out = dict(hparams)
    readers = {"model": lambda d: ModelConfig(**d), "loss": LossConfig.from_dict,
               "optim": lambda d: OptimConfig(**d)}
    for key, read in readers.items():
        if isinstance(out.get(key), dict):
            try:
                out[key] = asdict(read(out[key]))
            except (TypeError, ValueError):
                pass  # left as saved: the comparison names the difference
    return out


def local_processes(t: Any) -> int:
    """Training processes sharing this process's cores: torchrun's local count, else
    ``trainer.devices`` when Lightning starts CPU processes itself, else 1 (``srun`` gives
    every task its own CPUs already)."""
    if os.environ.get("LOCAL_WORLD_SIZE"):
        return max(int(os.environ["LOCAL_WORLD_SIZE"]), 1)
    if t.accelerator == "cpu" and isinstance(t.devices, int) and t.devices > 1:
        return t.devices
    return 1


def check_resumable(checkpoint: Path, meta: ModelMeta,
                    hparams: dict[str, Any] | None = None) -> list[str]:
    """Refuse to resume a run made on another dataset, window setting, model or schedule; the
    changes it allows (``ADJUSTABLE``: the learning rate and the loss weights), described.

    Raises:
        SetupError: naming the settings that differ and the ways out.
    """
    import torch

    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    old = saved.get("hyper_parameters", {}).get("data_meta") or {}
    old = ModelMeta.from_dict(old).to_dict() if old else {}  # older versions completed
    now = meta.to_dict()
    bad = non_finite_tensors(saved.get("state_dict", {}))
    if bad:
        raise SetupError(f"{checkpoint} holds non-finite weights ({len(bad)} tensors, first "
                         f"{bad[0]}): written by a run that diverged before this code guarded "
                         "against it; delete it (or set trainer.resume=false) and rerun")
    changes = setting_changes(completed_settings(saved.get("hyper_parameters", {})),
                              hparams) if hparams is not None else {}
    fixed = [k for k in changes if k not in ADJUSTABLE]
    if fixed:
        raise SetupError(f"{checkpoint} was trained with other settings than this config "
                         f"({changes[fixed[0]]}); resuming would continue another model or "
                         "schedule (only " + ", ".join(ADJUSTABLE) + " may change). Give "
                         "the run another name=..., or set trainer.resume=false to start over "
                         "in this folder")
    diff = [k for k in RESUME_KEYS if old.get(k) != now.get(k)]
    if diff:
        raise SetupError(f"{checkpoint} was trained with other {diff} than this config; "
                          "give the run another name=..., delete that folder, or set "
                          "trainer.resume=false to start over in it")
    return list(changes.values())
