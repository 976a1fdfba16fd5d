"""Small process-level helpers: crash-safe file writes and torch thread sizing."""

from __future__ import annotations

import ctypes
import os

import torch

from common.fileio import atomic_write_text, available_cores

__all__ = ["atomic_write_text", "available_cores", "configure_threads", "keep_freed_memory",
           "non_finite_tensors"]


def configure_threads(num_threads: int = 0, processes: int = 1) -> int:
    """Set torch's intra-op threads: ``num_threads`` if > 0, else ``OMP_NUM_THREADS`` when a
    launcher set it, else this process's share of the available cores when ``processes``
    processes run on them. ``OMP_NUM_THREADS`` is set to the result, so Lightning's launchers
    (which size threads themselves when it is unset) and child processes keep it."""
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0 = all free cores), got {num_threads}")
    launcher = os.environ.get("OMP_NUM_THREADS", "")
    n = num_threads or (int(launcher) if launcher.isdigit() and int(launcher) > 0 else
                        max(available_cores() // max(processes, 1), 1))
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)
    return n


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def keep_freed_memory(limit_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep large freed blocks instead of returning them to the OS.

    Training allocates and frees the same multi-MB temporaries every step (SIGReg's ECF table
    is ~16 MB); by default glibc serves them with fresh ``mmap`` pages and pays a page fault per
    4 KiB each time, which triples SIGReg's cost on CPU. Returns False where glibc is absent.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(min(limit_bytes, 2**31 - 1) // 2))
        return bool(ok and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(min(limit_bytes, 2**31 - 1))))
    except (OSError, AttributeError):
        return False


def non_finite_tensors(tensors) -> list[str]:
    """Names of the floating-point tensors of ``tensors`` (a state dict) holding NaN or inf."""
    import torch

    return [name for name, t in tensors.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point()
            and not bool(torch.isfinite(t).all())]


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` runs bf16 matmuls and convolutions natively, so that bf16 autocast
    is faster there: a CUDA GPU with bf16, or a CPU with oneDNN's avx512_bf16 or AMX.

    The one place the framework asks; training (``trainer.cpu_bf16``) and planning
    (``plan.precision=auto``) both decide by it.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:  # torch has no public query for the CPU's native bf16
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False

