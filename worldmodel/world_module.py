"""The LightningModule that trains a ``JEPAWorldModel`` on pixel windows.

``loss = prediction MSE + lam * SIGReg(latents of every time step)`` (SCIENCE.md section 2).
Batches are ``{"pixels": uint8 (B, T, H, W, 3), "actions": (B, T, A), "states": (B, T, S)}``;
states are never used for training. Hyper-parameters are plain dicts, with the dataset's meta,
so a checkpoint rebuilds the model from the file alone under ``weights_only`` loading.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.module import OptimConfig, cosine_after_constant
from worldmodel.sigreg import SIGReg
from worldmodel.world_model import JEPAWorldModel, WorldModelConfig

__all__ = ["LossConfig", "WorldModelModule", "cpu_bf16_supported"]


@dataclass
class LossConfig:
    """SIGReg weight and knobs; ``bf16`` autocasts the model on CPUs with native bf16.

    ``rollout_weight`` adds the multi-step loss: from the first ``history`` latents, roll the
    predictor forward open-loop through the window's actions and compare every predicted latent
    with the encoded one (needs ``num_preds >= 2`` to differ from the one-step loss).
    """

    lam: float = 0.1
    num_directions: int = 256
    num_knots: int = 17
    t_max: float = 3.0
    bf16: bool = True
    rollout_weight: float = 0.0  # > 0 adds an open-loop rollout MSE over the num_preds steps


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bf16 matmuls/convs natively (oneDNN avx512_bf16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class WorldModelModule(L.LightningModule):
    """Trains encoder, projector and predictor jointly; logs ``train/...`` and ``val/...``.

    Args:
        model: ``WorldModelConfig`` fields.
        loss: ``LossConfig`` fields.
        optim: ``OptimConfig`` fields.
        data_meta: the dataset's ``meta.json`` plus the window settings (``history``,
            ``num_preds``, ``frameskip``): what planning needs to rebuild env and model.
        max_steps: length of training, for the learning-rate schedule.
    """

    def __init__(self, model: dict[str, Any], loss: dict[str, Any], optim: dict[str, Any],
                 data_meta: dict[str, Any], max_steps: int = 1000) -> None:
        super().__init__()
        self.save_hyperparameters()
        cfg = WorldModelConfig(**model)
        action_dim = data_meta["action_dim"] * data_meta.get("frameskip", 1)
        self.world_model = JEPAWorldModel(cfg, data_meta["env"]["image_size"], action_dim,
                                          data_meta.get("history", 1))
        self.loss_cfg, self.optim_cfg = LossConfig(**loss), OptimConfig(**optim)
        self.sigreg = SIGReg(self.loss_cfg.num_directions, self.loss_cfg.num_knots,
                             self.loss_cfg.t_max)

    def _autocast(self):
        if self.loss_cfg.bf16 and self.device.type == "cpu" and cpu_bf16_supported():
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()  # GPU precision is the Trainer's `precision` setting

    def losses(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Prediction MSE, SIGReg and their weighted sum on a batch of windows."""
        with self._autocast():
            z = self.world_model.encode(batch["pixels"])  # (B, T, D)
            pred = self.world_model.predict(z[:, :-1], batch["actions"][:, :-1])  # (B, T-1, D)
        self.last_latents = z.detach()  # (B, T, D), read by the latent-statistics callback
        pred_loss = F.mse_loss(pred, z[:, 1:])
        reg = self.sigreg(z.transpose(0, 1), step=self.global_step)  # per time step, averaged
        lam = self.loss_cfg.lam
        out = {"loss": pred_loss + lam * reg, "pred_loss": pred_loss, "sigreg": reg,
               "latent_std": z.detach().flatten(0, 1).std(dim=0).mean()}
        if self.loss_cfg.rollout_weight > 0:
            h = self.hparams.data_meta.get("history", 1)
            with self._autocast():
                rolled = self.world_model.rollout(z[:, :h], batch["actions"][:, :-1])  # (B, T, D)
            out["rollout_loss"] = F.mse_loss(rolled[:, h:].float(), z[:, h:])
            out["loss"] = out["loss"] + self.loss_cfg.rollout_weight * out["rollout_loss"]
        return out

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        out = self.losses(batch)
        self.log("train/loss", out["loss"].detach(), prog_bar=True)
        self.log_dict({f"train/{k}": v.detach() for k, v in out.items() if k != "loss"})
        return out["loss"]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        out = self.losses(batch)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, prog_bar=False,
                      batch_size=len(batch["pixels"]), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        cfg = self.optim_cfg
        optimizer = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        total = self.hparams.max_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_after_constant(step, total, cfg.constant_fraction))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @classmethod
    def from_configs(cls, model: WorldModelConfig, loss: LossConfig, optim: OptimConfig,
                     data_meta: dict[str, Any], max_steps: int) -> WorldModelModule:
        return cls(asdict(model), asdict(loss), asdict(optim), data_meta, max_steps)
