"""Preemption-safe training: checkpoint at a step boundary on SIGTERM, requeue on SLURM.

SLURM stops a job with SIGTERM (preemption, ``scancel``, the time limit) and, when asked with
``#SBATCH --signal=USR1@120``, warns with SIGUSR1 ahead of the time limit. ``Preemption``
treats both the same way, at the end of the optimiser step in progress:

1. the signal only sets a flag; the step in progress finishes normally;
2. after every step the flags of all ranks are combined (an all-reduce of two scalars), and
   every rank raises ``SIGTERMException`` at the start of the same next step, whichever ranks
   got the signal;
3. handling it, rank 0 writes the checkpoint of the finished step to the resume path
   (atomically, see ``AtomicCheckpointIO``) and, on SLURM, runs ``scontrol requeue``, while
   the other ranks wait at a barrier;
4. ``train.py`` reports it and exits with code 143.

The requeued job (or any rerun of the same command) resumes from that checkpoint, and since
the data order and SIGReg's directions are functions of the step, it continues exactly as an
uninterrupted run would. Lightning's own SLURM requeue saves from inside the signal handler,
in the middle of a step; ``train.py`` turns it off in favour of this.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException

__all__ = ["AtomicCheckpointIO", "Preemption", "install_signal_flags", "slurm_job_id"]

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a kill mid-write leaves the previous
    checkpoint intact instead of a truncated one. Weights that are not finite are refused.

    A write that fails (a full disk) keeps the previous file, is logged with where the last good
    checkpoint is, and does not stop training: ``failed`` maps each path to its error until a
    later write of it succeeds, so the end of a run can refuse to finish without its model.
    """

    def __init__(self) -> None:
        super().__init__()
        self.failed: dict[Path, OSError] = {}

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        from callbacks.finite_guard import NonFiniteError
        from worldmodel.utils import non_finite_tensors

        path = Path(path)
        bad = non_finite_tensors(checkpoint.get("state_dict", {}))
        if bad:  # never replace a good checkpoint with a diverged one
            raise NonFiniteError(f"refusing to write {path}: {len(bad)} weight tensors are "
                                 f"not finite (first: {bad[0]}); the previous checkpoint is "
                                 "kept")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            super().save_checkpoint(checkpoint, tmp, storage_options)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            self.failed.pop(path, None)
        except OSError as err:
            self.failed[path] = err
            kept = f"the previous {path} is kept" if path.exists() else f"{path} does not exist"
            log.error("could not write the checkpoint %s (%s); %s, and training goes on",
                      path, err.strerror or err, kept)
        finally:
            tmp.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files ``AtomicCheckpointIO`` left in ``folder`` when a process was
    killed mid-write (those of live processes are kept); the paths removed."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)  # raises when no such process
            continue
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue  # not ours, or another user's live process
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def slurm_job_id() -> str | None:
    """``<job>`` or ``<array job>_<task>`` of the SLURM job this process runs in, if any."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None and "SLURM_ARRAY_TASK_ID" in os.environ:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


_PENDING: set[int] = set()  # signals that arrived outside training, for the next run to act on


def _remember(signum, frame) -> None:
    _PENDING.add(signum)


def install_signal_flags(signals: tuple[signal.Signals, ...] = (signal.SIGUSR1,)) -> None:
    """Make ``signals`` set a flag for the whole process instead of their default action.

    SIGUSR1's default action kills the process. A warning that arrives while the dataset is
    collected or the run starts is kept, and the run stops (and requeues) after its first step.
    """
    for signum in signals:
        signal.signal(signum, _remember)


class Preemption(L.Callback):
    """Stops the run after the step during which SIGTERM or ``warning_signal`` arrived: writes
    ``checkpoint``, requeues the SLURM job and raises ``SIGTERMException``.

    Args:
        checkpoint: where to write; ``train.py`` resumes from this path.
        requeue: call ``scontrol requeue`` on SLURM (rank 0) after saving.
        requeue_on_sigterm: requeue after SIGTERM too, not only after the warning signal.
            SIGTERM also comes from ``scancel`` and from preemption that SLURM requeues by
            itself (``PreemptMode=REQUEUE``); set False where that is the case.
        warning_signal: the signal SLURM sends ahead of the time limit (``--signal``).
    """

    def __init__(self, checkpoint: str | Path, requeue: bool = True,
                 requeue_on_sigterm: bool = True,
                 warning_signal: signal.Signals | None = signal.SIGUSR1) -> None:
        self.checkpoint = Path(checkpoint)
        self.requeue, self.requeue_on_sigterm = requeue, requeue_on_sigterm
        self.warning_signal = warning_signal
        self.preempted = False
        self.requeued: str | None = None
        self._received: set[int] = set()
        self._stop: tuple[bool, bool] | None = None  # (SIGTERM, warning) agreed by all ranks
        self._previous: dict = {}

    @property
    def signals(self) -> list[signal.Signals]:
        return [signal.SIGTERM] + ([self.warning_signal] if self.warning_signal else [])

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # Installed after Lightning took its snapshot of the handlers, which it restores at the
        # end of fit (however it ends). This replaces Lightning's SIGTERM handler too: that one
        # broadcasts from inside the handler, and when SLURM signals every rank at once those
        # out-of-order collectives deadlock the ranks.
        self._stop = None
        self._received = {s for s in _PENDING if s in self.signals}
        _PENDING.difference_update(self._received)
        if trainer.received_sigterm:  # arrived on this rank before training started
            self._received.add(signal.SIGTERM)
            trainer._signal_connector.received_sigterm = False  # only this callback acts on it
        self._previous = {signum: signal.signal(signum, self._on_signal)
                          for signum in self.signals}

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        self._received.add(signum)  # a flag only: the step in progress finishes normally

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        flags = (signal.SIGTERM in self._received, self.warning_signal in self._received)
        if trainer.world_size > 1:  # every rank learns of a signal any rank got
            agreed = trainer.strategy.reduce(torch.tensor(flags, dtype=torch.float32,
                                                          device=module.device), reduce_op="max")
            flags = (bool(agreed[0]), bool(agreed[1]))
        if any(flags):
            self._stop = flags

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        # The stop waits for the next step's start, so the stopped step is complete with its
        # validation and periodic checkpoint, and a signal in the last step lets the run finish.
        if self._stop is not None:
            raise SIGTERMException()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule,
                     exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt) and trainer.is_global_zero:
            # Ctrl-C stops mid-step, so no checkpoint is written now; the periodic one stays
            where = (f"rerun the same command to resume from {self.checkpoint} (the last "
                     "periodic checkpoint)" if self.checkpoint.exists() else
                     "no checkpoint was written yet, so a rerun starts over")
            print(f"\ninterrupted at step {trainer.global_step}: {where}", file=sys.stderr)
        if not (isinstance(exception, SIGTERMException) and self._stop is not None):
            self._restore_handlers()
            return  # a real error: the last periodic checkpoint stays the resume point
        # Every rank is here, after the same finished step. Plain DDP state needs no
        # collective to gather, so rank 0 writes while the others wait at the barrier below:
        # a rank that exited now would make srun or torchrun kill rank 0 mid-write.
        state = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        trainer.strategy.save_checkpoint(state, self.checkpoint)  # rank 0 writes
        self.preempted = True
        log.warning("stopped by a signal after step %d; checkpoint %s", trainer.global_step,
                    self.checkpoint)
        warning = self._stop[1]  # (SIGTERM, warning signal)
        job = slurm_job_id()
        if (self.requeue and (warning or self.requeue_on_sigterm) and job is not None
                and trainer.is_global_zero):
            self.requeued = job if _scontrol_requeue(job) else None
        if trainer.world_size > 1:
            trainer.strategy.barrier("preemption")
        self._restore_handlers()


def _scontrol_requeue(job: str) -> bool:
    if not re.fullmatch(r"[0-9]+(_[0-9]+)?", job):
        log.warning("not requeueing: unexpected SLURM job id %r", job)
        return False
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("scontrol requeue %s failed: %s", job, err)
        return False
    if done.returncode:
        log.warning("scontrol requeue %s failed: %s", job, done.stderr.strip())
        return False
    log.warning("requeued SLURM job %s", job)
    return True
