"""Run ``train.py``'s training with a recorder: ``python record_train.py OUT [overrides...]``.

Each rank writes ``OUT/rank<r>.pt``: its loss, and the gradients the optimiser is about to
apply (after DDP's all-reduce), at every step. With ``SIGTERM_AT_STEP=k`` in the environment
every rank also sends itself SIGTERM at the end of step k, as SLURM signals every task.
Lightning starts the other ranks by running this same command again, so it must stay a script.
"""

import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from configs.loader import load_config
from worldmodel.app import train


class SigtermAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class Recorder(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.losses, self.grads = out, [], []
        out.mkdir(parents=True, exist_ok=True)

    def on_before_optimizer_step(self, trainer, module, optimizer) -> None:
        self.grads.append({name: p.grad.detach().clone()
                           for name, p in module.named_parameters() if p.grad is not None})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, module) -> None:
        torch.save({"losses": self.losses, "grads": self.grads},
                   self.out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    out = Path(sys.argv[1])
    callbacks = [Recorder(out)]
    if os.environ.get("SIGTERM_AT_STEP"):
        callbacks.append(SigtermAt(int(os.environ["SIGTERM_AT_STEP"])))
    try:
        train.train(load_config("reacher", sys.argv[2:]), extra_callbacks=callbacks)
    except SIGTERMException:
        sys.exit(143)  # as train.py's main
