"""Dataclass schema of an experiment config; YAML files in this folder are merged onto it.

Component configs (encoder, objective, optimiser) live next to their components and are
composed here; every component receives only its own sub-config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envs.collect import CollectConfig, EnvConfig
from planners.base import PlannerConfig
from planners.evaluate import EvalConfig as ClosedLoopConfig
from worldmodel.data import DataConfig
from worldmodel.encoders import EncoderConfig
from worldmodel.module import OptimConfig
from worldmodel.objectives import ObjectiveConfig
from worldmodel.world_model import WorldModelConfig
from worldmodel.world_module import LossConfig

__all__ = [
    "EvalConfig",
    "ExperimentConfig",
    "ModelConfig",
    "PlanConfig",
    "PlannerSection",
    "SyntheticWorldConfig",
    "TrainerConfig",
]


@dataclass
class SyntheticWorldConfig:
    """Latent law, OU transition and mixing of a synthetic world (DESIGN.md section 4)."""

    latent_dim: int = 2
    law: str = "gaussian"  # gaussian | gennorm | laplace | uniform
    alpha: float = 2.0  # generalised-normal shape (law=gennorm)
    rho: float = 0.95  # shared OU autocorrelation
    rho_per_dim: list[float] | None = None  # overrides rho, one value per latent coordinate
    mixing: str = "spiral"  # identity | spiral | banana | sinusoid | realnvp | random_mlp
    mixing_layers: int = 4
    mixing_seed: int = 0


@dataclass
class ModelConfig:
    """Latent size, encoder and predictor."""

    latent_dim: int = 2
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    predictor: str = "identity"


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
    logger: str = "csv"  # csv | tensorboard | wandb (the last two when installed)
    val_every_n_steps: int = 500  # pixel world models: validation losses
    checkpoint_every_n_steps: int = 500  # pixel world models: last.ckpt for resuming
    resume: bool = True  # continue from <run>/checkpoints/last.ckpt when it exists
    sync_batchnorm: bool = True  # several processes: BatchNorm statistics over the global batch
    requeue: bool = True  # on SIGUSR1 (and SIGTERM): checkpoint, then `scontrol requeue`
    requeue_on_sigterm: bool = True  # False where scancel / SLURM's own preemption requeue
    # LatentStats warns of a collapse under this effective rank / latent_dim (a 2-D state in
    # a 32-D latent under a weak SIGReg sits at ~0.2 by design: configs/point_mass.yaml)
    collapse_rank_fraction: float = 0.25


@dataclass
class EvalConfig:
    """Identifiability evaluation on fresh samples after training (and every n steps if > 0)."""

    num_samples: int = 10000
    every_n_steps: int = 0
    seed: int = 12345


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
    planner: PlannerSection = field(default_factory=PlannerSection)
    eval: ClosedLoopConfig = field(default_factory=ClosedLoopConfig)


@dataclass
class ExperimentConfig:
    """The whole experiment: what ``train.py`` reads.

    With ``env`` unset it trains an encoder on a synthetic ``world`` (the identifiability lab:
    ``model``, ``objective``); with ``env`` set it collects (if needed) a pixel dataset and
    trains a world model on it (``collect``, ``data``, ``world_model``, ``loss``).
    """

    name: str = "identifiability"
    seed: int = 0
    output_dir: str = "outputs"
    world: SyntheticWorldConfig = field(default_factory=SyntheticWorldConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    env: EnvConfig | None = None
    collect: CollectConfig = field(default_factory=CollectConfig)
    data: DataConfig = field(default_factory=DataConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
