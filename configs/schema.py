"""Dataclass schema of an experiment config; YAML files in this folder are merged onto it.

Component configs (model, loss, optimiser, data, env, planner) live next to their components
and are composed here; every component receives only its own sub-config. ``mode`` says what a
config trains: ``pixels`` (a world model on a pixel dataset: ``env``, ``collect``, ``data``,
``plan``) or ``synthetic`` (the identifiability lab: ``world``); the loader refuses a key of
the other mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.checks import require_at_least
from envs.config import CollectConfig, EnvConfig
from planners.base import PlannerConfig
from planners.eval_config import ClosedLoopConfig, TrainEvalConfig
from worldmodel.data import DataConfig
from worldmodel.module import LossConfig, OptimConfig
from worldmodel.synthetic import SyntheticWorldConfig
from worldmodel.world_model import ModelConfig

__all__ = [
    "MODES",
    "MODE_SECTIONS",
    "ExperimentConfig",
    "ModelConfig",
    "PlanConfig",
    "PlannerSection",
    "ProbeConfig",
    "SyntheticWorldConfig",
    "TrainerConfig",
    "WandbConfig",
]


@dataclass
class WandbConfig:
    """The W&B run of ``trainer.logger=wandb``: ``offline`` writes it locally (``wandb sync``
    uploads it later); None takes W&B's own default (``WANDB_PROJECT``, ...)."""

    project: str | None = None
    entity: str | None = None
    tags: list[str] = field(default_factory=list)
    offline: bool = False


@dataclass
class TrainerConfig:
    """Lightning Trainer knobs; ``num_threads = 0`` sizes torch threads to the free cores
    (shared among the processes of this node).

    ``batch_size`` is the global batch: windows per optimiser step over all processes
    (``devices x num_nodes``), so the same config trains the same model on any number of them.
    """

    max_steps: int = 20000
    batch_size: int = 256
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_threads: int = 0
    log_every_n_steps: int = 100
    progress_bar: bool = True
    logger: str = "csv"  # csv | tensorboard | wandb (the last two when installed) | none
    wandb: WandbConfig = field(default_factory=WandbConfig)  # with logger=wandb
    cpu_bf16: bool = True  # bf16 autocast of the model on CPUs with native bf16
    val_every_n_steps: int = 500  # pixel world models: validation losses
    checkpoint_every_n_steps: int = 500  # pixel world models: last.ckpt for resuming
    resume: bool = True  # continue from <run>/checkpoints/last.ckpt when it exists
    sync_batchnorm: bool = True  # several processes: BatchNorm statistics over the global batch
    requeue: bool = True  # on SIGUSR1 (and SIGTERM): checkpoint, then `scontrol requeue`
    requeue_on_sigterm: bool = True  # False where scancel / SLURM's own preemption requeue
    # LatentStats warns of a collapse under this effective rank / latent_dim (a 2-D state in
    # a 32-D latent under a weak SIGReg sits at ~0.2 by design: configs/point_mass.yaml)
    collapse_rank_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1:
            raise ValueError(f"trainer.max_steps and trainer.batch_size must be >= 1, got "
                             f"{self.max_steps} and {self.batch_size}")
        require_at_least("trainer", self, {"num_nodes": 1, "num_threads": 0,
                                           "log_every_n_steps": 1, "val_every_n_steps": 1,
                                           "checkpoint_every_n_steps": 1})


@dataclass
class ProbeConfig:
    """What the latent is measured against during and after training (every n steps if > 0).

    Pixels: a held-out linear probe of ``info["state"]`` (``every_n_steps`` only; setting
    ``num_samples`` or ``seed`` there is refused); synthetic: every identifiability metric of
    the paper on ``num_samples`` fresh latents drawn with ``seed``.
    """

    num_samples: int = 10000
    every_n_steps: int = 0
    seed: int = 12345

    def __post_init__(self) -> None:
        require_at_least("probe", self, {"num_samples": 10, "every_n_steps": 0, "seed": 0})


@dataclass
class PlannerSection(PlannerConfig):
    """A registered planner (``cem``, ``mppi``) and its knobs."""

    name: str = "cem"

    def settings(self) -> PlannerConfig:
        return PlannerConfig(**{k: v for k, v in self.__dict__.items() if k != "name"})


@dataclass
class PlanConfig:
    """What ``plan.py`` reads: which checkpoint, planner and evaluation protocol.

    ``checkpoint = None`` takes ``<output_dir>/<name>/model.ckpt`` (what ``train.py`` wrote);
    ``env_id`` evaluates on another env with the same pixels and actions; ``out = None``
    writes next to the checkpoint, in ``plan-<planner>``.
    """

    checkpoint: str | None = None
    env_id: str | None = None
    out: str | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 where native) | bf16 | fp32: the planning rollouts
    # small closed-loop evaluations during training (callbacks/planning_eval.py); 0 = off
    train_eval: TrainEvalConfig = field(default_factory=TrainEvalConfig)
    planner: PlannerSection = field(default_factory=PlannerSection)
    eval: ClosedLoopConfig = field(default_factory=ClosedLoopConfig)


MODES = ("pixels", "synthetic")
# the top-level sections only one mode reads; the others are shared
MODE_SECTIONS = {"pixels": ("env", "collect", "data", "plan"), "synthetic": ("world",)}


@dataclass
class ExperimentConfig:
    """The whole experiment: what ``train.py`` and ``plan.py`` read.

    ``mode = "pixels"`` collects (if needed) a pixel dataset of ``env`` and trains a world model
    on it (``collect``, ``data``), which ``plan.py`` evaluates (``plan``); ``mode = "synthetic"``
    trains on a synthetic ``world`` (the identifiability lab). ``model``, ``loss``, ``optim``,
    ``trainer`` and ``probe`` mean the same in both. A relative ``output_dir`` is taken from
    ``configs.loader.output_home()`` (``$WML_HOME``, else the project folder), not from the
    current folder, so runs started anywhere share one ``outputs/``.
    """

    mode: str = "pixels"
    name: str = "run"
    seed: int = 0
    output_dir: str = "outputs"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    world: SyntheticWorldConfig = field(default_factory=SyntheticWorldConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    data: DataConfig = field(default_factory=DataConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)

    def __post_init__(self) -> None:
        require_at_least("", self, {"seed": 0})
        if (not self.name or self.name in (".", "..") or "/" in self.name or "\\" in self.name
                or "\0" in self.name):
            raise ValueError(f"name={self.name!r} must be one folder name (no '/', not '.' or "
                             f"'..'): the run is written to output_dir/name; choose another "
                             "name, or set output_dir for another place")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {list(MODES)}")
        if self.mode == "pixels":
            default = ProbeConfig()
            unused = [f"probe.{k}={getattr(self.probe, k)}" for k in ("num_samples", "seed")
                      if getattr(self.probe, k) != getattr(default, k)]
            if unused:
                raise ValueError(f"{', '.join(unused)}: these probe settings are for synthetic "
                                 "worlds (mode=synthetic); the pixel probe fits on every "
                                 "training window and scores every held-out one. Remove them "
                                 "(probe.every_n_steps applies to both)")
