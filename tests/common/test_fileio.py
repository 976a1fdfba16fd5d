"""Crash-safe writes: a reader sees the old file or the whole new one, with umask permissions."""

import os
from pathlib import Path

import pytest

from common.fileio import atomic_write, atomic_write_text, current_umask


def test_atomic_write_replaces_whole_files_with_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "report.json"
    atomic_write_text(path, "old")
    assert path.read_text() == "old"
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    atomic_write(path, lambda tmp: Path(tmp).write_text("new"))
    assert path.read_text() == "new" and os.listdir(path.parent) == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.temporal.pt"
    atomic_write_text(path, "good")

    def half_then_crash(tmp):
        Path(tmp).write_text("ha")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        atomic_write(path, half_then_crash)
    assert path.read_text() == "good" and os.listdir(tmp_path) == ["model.temporal.pt"]
