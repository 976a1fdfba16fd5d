"""Process-level file and CPU helpers shared by every layer: crash-safe writes, core count."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "FolderLock",
    "OutputError",
    "array_crc32",
    "atomic_write",
    "atomic_write_text",
    "available_cores",
    "check_new_output",
    "check_writable",
    "current_umask",
    "file_sha256",
    "is_launch_rank_zero",
    "replace_folder",
]


class OutputError(ValueError):
    """A place a run must write to cannot be written."""


def check_writable(folder: str | Path, what: str) -> Path:
    """Create ``folder`` if needed and check a file can be written there, before any work;
    ``what`` names the setting in the error (``plan.out``, ``output_dir``, ``--out``)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(f"{what}={folder} cannot be written ({err.strerror or err}); choose "
                          "another folder or fix its permissions. Nothing was run") from None
    return folder


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a temp file in ``path``'s folder, fsync it, rename it to ``path``:
    a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600 files; honour the umask instead
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file in the same folder and an atomic rename."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def array_crc32(array: np.ndarray) -> int:
    """The CRC32 of an array's bytes in C order (what a dataset shard records per array)."""
    if array.size == 0:  # memoryview cannot cast an empty shape (states of width 0)
        return zlib.crc32(b"")
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def check_new_output(out: str | Path, sources: tuple[str | Path, ...], force: bool,
                     what: str) -> Path:
    """Refuse to write ``out`` over something that exists (unless ``force``), and always
    refuse ``out`` inside (or over) one of the ``sources`` a command reads.

    Raises:
        OutputError: naming the path and the way out.
    """
    out = Path(out)
    target = out.resolve()
    for source in sources:
        root = Path(source).resolve()
        if target == root or root in target.parents:
            raise OutputError(f"{what}={out} is inside its own input {source}: writing there "
                              "would destroy what is being read; choose a path outside it")
    taken = out.is_file() or out.is_symlink() or (out.is_dir() and any(out.iterdir()))
    if taken and not force:
        raise OutputError(f"{what}={out} already exists; give a new path, or --force to "
                          "replace it")
    return out


def replace_folder(folder: str | Path, fill: Callable[[Path], None]) -> Path:
    """Write a multi-file output as one unit: ``fill(tmp)`` writes a sibling temporary folder,
    which then takes ``folder``'s place (an old ``folder`` is moved aside first and deleted
    after), so a reader sees the old files or all the new ones, never a mix."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    try:
        fill(tmp)
        if folder.exists() or folder.is_symlink():
            os.replace(folder, old)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)
    return folder


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def available_cores() -> int:
    """Cores this process may run on (respects affinity masks and cgroup-pinned CPU sets)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


def is_launch_rank_zero() -> bool:
    """Whether this process is global rank 0 of its launch, before ``torch.distributed`` starts.

    Reads what the launchers set: torchrun's ``RANK``, srun's ``SLURM_PROCID``, and the
    ``NODE_RANK`` / ``LOCAL_RANK`` of processes Lightning starts itself. A plain process is 0.
    """
    return all(int(os.environ.get(var) or 0) == 0
               for var in ("RANK", "SLURM_PROCID", "NODE_RANK", "LOCAL_RANK"))


class FolderLock:
    """An exclusive lock file ``path`` holding the owner's host and process id, for the life of
    a ``with`` block. A lock left by a dead process of this host is taken over; one held by a
    live process, or by another host, raises ``OutputError`` naming the owner."""

    def __init__(self, path: str | Path, what: str) -> None:
        self.path, self.what = Path(path), what

    def __enter__(self) -> FolderLock:  # noqa: PYI034
        import socket

        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    raise OutputError(self._held()) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return self
        raise OutputError(self._held())

    def _owner(self) -> tuple[str, int | None]:
        try:
            host, pid = self.path.read_text().split()
            return host, int(pid)
        except (OSError, ValueError):
            return "?", None

    def _stale(self) -> bool:
        import socket

        host, pid = self._owner()
        if host != socket.gethostname() or pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _held(self) -> str:
        host, pid = self._owner()
        return (f"{self.what} is in use by process {pid} on {host} ({self.path}); wait for it "
                "to finish or stop it. If it is gone, delete the lock file")

    def __exit__(self, *exc) -> None:
        self.path.unlink(missing_ok=True)
