"""``JEPAModule``: the one LightningModule, training a ``JEPAWorldModel`` in every mode.

``loss = prediction_weight * MSE(predict(z)[t], z[t+1]) + regulariser_weight * reg(z)
+ rollout_weight * MSE(rollout(z[:history]), z[history:])`` (SCIENCE.md section 2). Batches
are ``{"obs": (B, T, *O), "actions": (B, T, A), "states": (B, T, S)}`` from any DataModule:
pixel windows of a dataset, or views of a synthetic world (``A = 0``, identity predictor: the
alignment setting of the theory). States are never used for training. Hyper-parameters are
plain dicts with the data's meta, so a checkpoint rebuilds the model from the file alone under
``weights_only`` loading.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from envs.meta import ModelMeta
from worldmodel.regularisers import Regulariser, RegulariserConfig, alignment_loss
from worldmodel.utils import native_bf16
from worldmodel.world_model import JEPAWorldModel, ModelConfig

__all__ = ["JEPAModule", "LossConfig", "OptimConfig", "cosine_after_constant"]


@dataclass
class LossConfig:
    """The weights of the loss terms, each named for what it weighs, and the regulariser.

    ``rollout_weight`` adds the multi-step loss: from the first ``history`` latents, roll the
    predictor forward open-loop through the window's actions and compare every predicted latent
    with the encoded one (needs ``num_preds >= 2`` to differ from the one-step loss).
    """

    prediction_weight: float = 1.0
    regulariser_weight: float = 0.1
    rollout_weight: float = 0.0
    regulariser: RegulariserConfig = field(default_factory=RegulariserConfig)

    def __post_init__(self) -> None:
        weights = {"prediction_weight": self.prediction_weight,
                   "regulariser_weight": self.regulariser_weight,
                   "rollout_weight": self.rollout_weight}
        bad = {k: v for k, v in weights.items() if not (v >= 0 and math.isfinite(v))}
        if bad:
            raise ValueError(f"loss weights must be finite and >= 0, got {bad}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LossConfig:
        """From a checkpoint's plain dict, also the one of checkpoints before this config
        (``lam``, SIGReg knobs and ``bf16`` at the top level)."""
        values = dict(values)
        if "lam" in values:  # pixel checkpoints: pred_mse + lam * per-step SIGReg
            reg = {k: values.pop(k) for k in ("num_directions", "num_knots", "t_max")
                   if k in values}
            values.pop("bf16", None)
            values = {"regulariser_weight": values.pop("lam"),
                      "regulariser": {"name": "sigreg", **reg}, **values}
        return cls(**{**values, "regulariser": RegulariserConfig(**values.get("regulariser", {}))})


@dataclass
class OptimConfig:
    """AdamW; the learning rate is constant for ``constant_fraction`` of training, then cosine."""

    lr: float = 3e-3
    weight_decay: float = 0.0
    constant_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"optim.lr must be > 0, got {self.lr}")
        if not 0.0 <= self.constant_fraction <= 1.0:
            raise ValueError(f"optim.constant_fraction must lie in [0, 1], got "
                             f"{self.constant_fraction}")


def cosine_after_constant(step: int, total: int, constant_fraction: float) -> float:
    """LR multiplier: 1 for the first ``constant_fraction * total`` steps, then cosine to 0."""
    start = int(constant_fraction * total)
    if step < start or total <= start:
        return 1.0
    progress = min((step - start) / (total - start), 1.0)
    return 0.5 * (1 + math.cos(math.pi * progress))


class JEPAModule(L.LightningModule):
    """Trains encoder, projector and predictor jointly; logs ``train/...`` and ``val/...``.

    Args:
        model: ``ModelConfig`` fields.
        loss: ``LossConfig`` fields.
        optim: ``OptimConfig`` fields.
        data_meta: ``ModelMeta.to_dict()`` of the DataModule's ``model_meta``:
            ``observation_shape``, ``action_dim``, ``history``, ``frameskip`` and, for pixel
            datasets, the dataset's ``meta.json`` (what planning needs to rebuild env and
            model). A plain dict, as Lightning's hyper-parameters must be; ``self.data_meta``
            is its ``ModelMeta``.
        max_steps: length of training, for the learning-rate schedule.
        cpu_bf16: autocast the model to bf16 on CPUs with native bf16 (GPU precision is the
            Trainer's ``precision``).
    """

    def __init__(self, model: dict[str, Any], loss: dict[str, Any], optim: dict[str, Any],
                 data_meta: dict[str, Any], max_steps: int = 1000, cpu_bf16: bool = True) -> None:
        super().__init__()
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.save_hyperparameters()
        self.data_meta = ModelMeta.from_dict(data_meta)
        self.world_model = JEPAWorldModel(ModelConfig(**model), self.data_meta.observation_shape,
                                          self.data_meta.block_dim, self.data_meta.history)
        self.loss_cfg, self.optim_cfg = LossConfig.from_dict(loss), OptimConfig(**optim)
        self.regulariser = Regulariser(self.loss_cfg.regulariser)

    @classmethod
    def from_configs(cls, model: ModelConfig, loss: LossConfig, optim: OptimConfig,
                     data_meta: ModelMeta, max_steps: int, cpu_bf16: bool = True
                     ) -> JEPAModule:
        """Build from config dataclasses (stored as plain dicts in the checkpoint)."""
        return cls(asdict(model), asdict(loss), asdict(optim), data_meta.to_dict(), max_steps,
                   cpu_bf16)

    def _autocast(self):
        if self.hparams.cpu_bf16 and self.device.type == "cpu" and native_bf16("cpu"):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        """The weighted loss and its terms on a batch, and the batch's latents ``(B, T, D)``."""
        c, actions = self.loss_cfg, batch["actions"]
        with self._autocast():
            z = self.world_model.encode(batch["obs"])  # (B, T, D)
            pred = self.world_model.predict(z[:, :-1], actions[:, :-1])  # (B, T-1, D)
        pred_loss = F.mse_loss(pred, z[:, 1:])
        reg = self.regulariser(z, step=self.global_step)
        out = {"pred_loss": pred_loss, c.regulariser.name: reg,
               "latent_std": z.detach().flatten(0, 1).std(dim=0).mean()}
        loss = c.prediction_weight * pred_loss + c.regulariser_weight * reg
        if z.shape[1] == 2:  # two views: the theory's alignment term (logged, not optimised)
            out["align"] = alignment_loss(z.detach())
        if c.rollout_weight > 0:
            h = self.data_meta.history
            with self._autocast():
                rolled = self.world_model.rollout(z[:, :h], actions[:, :-1])  # (B, T, D)
            out["rollout_loss"] = F.mse_loss(rolled[:, h:].float(), z[:, h:])
            loss = loss + c.rollout_weight * out["rollout_loss"]
        out["loss"] = loss
        return out, z

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        out, z = self.losses(batch)
        # Lightning's per-call logging costs ~0.7 ms a metric: the loss is logged every step only
        # for a progress bar, everything else on the steps the logger writes
        logs = self._logs_this_step()
        if logs or self._shows_progress():
            self.log("train/loss", out["loss"].detach(), prog_bar=True)
        if logs:
            self.log_dict({f"train/{k}": v.detach() for k, v in out.items() if k != "loss"})
        return {"loss": out["loss"], "latents": z.detach()}  # latents: for LatentStats

    def _shows_progress(self) -> bool:
        trainer = self._trainer
        return trainer is None or trainer.progress_bar_callback is not None

    def _logs_this_step(self) -> bool:
        """Whether the logger writes this step (every ``log_every_n_steps`` and the last step);
        the loss components are only logged then, the loss itself every step."""
        trainer = self._trainer
        if trainer is None:
            return True
        step = self.global_step + 1
        last = trainer.max_steps is not None and 0 < trainer.max_steps <= step
        return last or step % max(trainer.log_every_n_steps, 1) == 0

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out, _ = self.losses(batch)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, prog_bar=False,
                      batch_size=len(batch["obs"]), sync_dist=True)

    def on_train_start(self) -> None:
        """Make ``optim.lr`` the schedule's base rate: a run resumed with a lower rate (the
        divergence guard's advice) continues from the restored optimiser at the new one."""
        lr = self.optim_cfg.lr
        for optimizer, config in zip(self.trainer.optimizers, self.trainer.lr_scheduler_configs,
                                     strict=False):
            schedule = config.scheduler
            schedule.base_lrs = [lr] * len(optimizer.param_groups)
            for group, factor in zip(optimizer.param_groups, schedule.lr_lambdas, strict=True):
                group["initial_lr"], group["lr"] = lr, lr * factor(schedule.last_epoch)

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        optimizer = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = self.hparams.max_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_after_constant(step, total, cfg.constant_fraction))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
