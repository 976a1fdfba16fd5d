"""Train a model from a config: ``python train.py [--config NAME|PATH] [key=value ...]``.

config -> data -> LightningModule -> Trainer.fit -> checkpoint + metrics.json. With no
arguments it runs the embedded default (configs/identifiability.yaml).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from lightning.pytorch.loggers import CSVLogger  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from callbacks.identifiability import SyntheticIdentifiabilityProbe  # noqa: E402
from configs.loader import ConfigError, load_config  # noqa: E402
from configs.schema import ExperimentConfig  # noqa: E402
from worldmodel.module import JEPAModule  # noqa: E402
from worldmodel.synthetic import SyntheticDataModule, SyntheticWorld  # noqa: E402
from worldmodel.utils import atomic_write_text, configure_threads, keep_freed_memory  # noqa: E402

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


def train(cfg: ExperimentConfig, run_dir: Path | None = None) -> TrainResult:
    """Train the model described by ``cfg``; files go to ``run_dir`` (rank 0 only)."""
    configure_threads(cfg.trainer.num_threads)
    keep_freed_memory()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(run_dir or Path(cfg.output_dir) / cfg.name)
    world = build_world(cfg)
    module = JEPAModule.from_configs(
        obs_dim=world.latent_dim, latent_dim=cfg.model.latent_dim, encoder=cfg.model.encoder,
        objective=cfg.objective, optim=cfg.optim, predictor=cfg.model.predictor,
        max_steps=cfg.trainer.max_steps)
    probe = SyntheticIdentifiabilityProbe(world, cfg.eval.num_samples, cfg.eval.seed,
                                          cfg.eval.every_n_steps)
    t = cfg.trainer
    trainer = L.Trainer(
        max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices,
        num_nodes=t.num_nodes, strategy=t.strategy, precision=t.precision,
        logger=CSVLogger(run_dir, name="logs"), callbacks=[probe],
        enable_checkpointing=False, enable_progress_bar=t.progress_bar,
        enable_model_summary=False, log_every_n_steps=t.log_every_n_steps,
        limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=run_dir)
    trainer.fit(module, datamodule=SyntheticDataModule(world, t.batch_size, cfg.seed))
    checkpoint = run_dir / "model.ckpt"
    trainer.save_checkpoint(checkpoint, weights_only=False)  # rank 0 writes; optimiser kept
    if trainer.is_global_zero:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        atomic_write_text(run_dir / "metrics.json", json.dumps(probe.metrics, indent=2))
    return TrainResult(run_dir, checkpoint, probe.metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="name in configs/ or a YAML path")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.max_steps=500")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = train(cfg)
    m = result.metrics
    print(f"\ncheckpoint: {result.checkpoint}\nmetrics:    {result.run_dir / 'metrics.json'}")
    print(f"R2(h->z) = {m['r2_h_to_z']:.6f}  (mixing alone R2(x->z) = {m['r2_x_to_z']:.4f})")
    if "bound" in m:
        print(f"Procrustes error {m['procrustes_error']:.2e} <= Theorem-3 bound {m['bound']:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
