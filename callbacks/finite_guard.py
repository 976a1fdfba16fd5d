"""Stop a diverging run at once, before a non-finite value reaches the weights or a checkpoint.

``FiniteGuard`` checks every gradient before the optimiser steps and every training loss; the
first non-finite one raises ``NonFiniteError`` naming the step, the value and the settings that
usually cause it, so the update is never applied and the last checkpoint written stays the
last good one. ``worldmodel.utils.non_finite_tensors`` is the check ``AtomicCheckpointIO``
runs before writing and ``load_world_model`` before planning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from worldmodel.utils import non_finite_tensors

__all__ = ["FiniteGuard", "NonFiniteError"]


class NonFiniteError(RuntimeError):
    """Training produced a NaN or infinite loss or gradient."""


class FiniteGuard(L.Callback):
    """Raise ``NonFiniteError`` on the first non-finite training loss or gradient.

    Args:
        hint: what to say about the likely cause (``train.py`` names the learning rate and the
            loss weights of the run, with their values).
    """

    def __init__(self, hint: str = "") -> None:
        self.hint = hint

    def _fail(self, trainer: L.Trainer, what: str) -> None:
        raise NonFiniteError(
            f"training diverged at step {trainer.global_step}: {what}. {self.hint}".rstrip()
            + " The update was not applied and no checkpoint was written from it.")

    def on_before_optimizer_step(self, trainer: L.Trainer, module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        grads = {name: p.grad for name, p in module.named_parameters() if p.grad is not None}
        if not grads or bool(torch.isfinite(
                torch.nn.utils.get_total_norm(list(grads.values()), foreach=True))):
            return  # one fused check per step; per tensor (to name them) only when it fails
        bad = non_finite_tensors(grads)
        if bad:
            self._fail(trainer, f"non-finite gradients in {len(bad)} of {len(grads)} tensors "
                                f"(first: {bad[0]})")

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss).all()):
            self._fail(trainer, f"the training loss is {loss.item()}")
