"""Performance benchmarks and paper reproductions: each prints a table and writes JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["publish"]


def publish(out: Path, results: Any, text: str) -> None:
    """Print a benchmark's Markdown report and write it with its results (``report.md``,
    ``results.json``) into ``out``, each atomically."""
    from common.fileio import atomic_write_text

    print(text)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    atomic_write_text(out / "report.md", text)
