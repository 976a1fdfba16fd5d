"""Runs of the identifiability benchmark as table cells: grouped, restarts picked, seeds merged."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = ["cell_of", "in_group", "merge_seeds", "runs_with_bound", "seeds_note",
           "select_restarts"]


def in_group(results: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The runs of experiment group ``name`` (``mixings``, ``scaling``, ``alpha``, ...)."""
    return [r for r in results if r["group"] == name]


def cell_of(run: dict[str, Any]) -> str:
    """The table cell of a run (results cached before seeds existed carry no ``cell``)."""
    return run.get("cell") or re.sub(r"-init\d+$", "", run["key"])


def select_restarts(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep, per cell with random restarts, the restart with the lowest alignment on fresh pairs.

    The alignment ``E|h(x') - h(x)|^2`` needs no ground-truth latents, so this is ordinary
    unsupervised model selection; the R² of every restart is kept in ``restart_r2``. Cells
    without restarts (``restarts`` 1, seeds instead) pass through.
    """
    chosen: dict[tuple, dict[str, Any]] = {}
    spread: dict[tuple, list[float]] = {}
    others = []
    for r in results:
        if r["group"] != "scaling" or r.get("restarts", 2) < 2:
            others.append(r)
            continue
        key = (r["dim"], r["objective"])
        spread.setdefault(key, []).append(r["metrics"]["r2_h_to_z"])
        if key not in chosen or r["metrics"]["alignment"] < chosen[key]["metrics"]["alignment"]:
            chosen[key] = r
    selected = [{**r, "restart_r2": spread[k]} for k, r in chosen.items()]
    return others + selected


def merge_seeds(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per cell: its metrics averaged over the cell's seeds, the sample standard
    deviations in ``metrics_std``, the seed count in ``num_seeds``, each seed's R² in
    ``seed_r2``. Per-dimension lists are averaged element-wise."""
    cells: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        cells.setdefault(cell_of(r), []).append(r)
    merged = []
    for runs in cells.values():
        runs = sorted(runs, key=lambda r: r.get("seed", 0))
        mean: dict[str, Any] = {}
        std: dict[str, Any] = {}
        for name in runs[0]["metrics"]:
            values = [r["metrics"].get(name) for r in runs]
            if any(v is None for v in values):
                continue
            arr = np.asarray(values, dtype=float)
            mean[name] = arr.mean(axis=0).tolist() if arr.ndim > 1 else float(arr.mean())
            if len(runs) > 1:
                spread = arr.std(axis=0, ddof=1)
                std[name] = spread.tolist() if arr.ndim > 1 else float(spread)
        merged.append({**runs[0], "metrics": mean, "metrics_std": std, "num_seeds": len(runs),
                       "seed_r2": [r["metrics"]["r2_h_to_z"] for r in runs],
                       "seed_r2_per_dim": [r["metrics"].get("r2_h_to_z_per_dim") for r in runs]})
    return merged


def runs_with_bound(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs in a Gaussian world with one shared rho (where the bound applies), InfoNCE aside."""
    return [r for r in results if "bound" in r["metrics"]
            and "law=gennorm" not in " ".join(r["overrides"])
            and r.get("objective", "sigreg") != "infonce"]


def seeds_note(merged: list[dict[str, Any]]) -> str:
    """Which cells have how many seeds, for the report's header."""
    counts: dict[int, list[str]] = {}
    for r in merged:
        n = len(r["restart_r2"]) if len(r.get("restart_r2", [])) > 1 else r["num_seeds"]
        counts.setdefault(n, []).append(cell_of(r))
    if set(counts) == {1}:
        return "one seed per cell (the paper averages 5 seeds)"
    parts = [f"{n} seeds: {', '.join(sorted(cells))}" if n > 1 else
             f"one seed (time budget): {', '.join(sorted(cells))}"
             for n, cells in sorted(counts.items(), reverse=True)]
    return ("tables give mean ± sample std (seed count) over the training seeds of a cell; "
            + "; ".join(parts))
