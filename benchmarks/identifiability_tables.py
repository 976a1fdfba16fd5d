"""The identifiability benchmark's tables and their checks, against SCIENCE.md section 4.

Each table takes the cells of one experiment (``benchmarks.identifiability_cells``) and a dict
it adds its named pass/fail checks to; ``SECTIONS`` orders them in ``report.md``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from benchmarks.identifiability_cells import in_group, merge_seeds, runs_with_bound

__all__ = ["ALPHA_GAP_SECTIONS", "MIXING_TARGET", "PAPER_ALPHA", "PAPER_INFONCE",
           "PAPER_SCALING", "RECOVERY_R2", "SECTIONS", "alpha_gap_table", "alpha_table",
           "bound_table", "failure_table", "mixing_table", "scaling_table"]

# Reference numbers of SCIENCE.md section 4 (paper, 5 seeds).
PAPER_SCALING = {2: 0.999998, 8: 0.999993, 64: 0.999966, 256: 0.999884, 1024: 0.999561}
PAPER_INFONCE = {2: 0.95, 64: 0.649, 1024: 0.720}
PAPER_ALPHA = {0.125: 0.02, 0.25: 0.75, 0.5: 0.95, 1.0: 0.975, 2.0: 0.98, 4.0: 0.94, 8.0: 0.76,
               16.0: 0.61, 32.0: 0.55}
MIXING_TARGET = {"spiral": 0.98, "banana": 0.98, "sinusoid": 0.98, "realnvp": 0.999}


def _fmt(x: float | None, digits: int = 6) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ms(run: dict[str, Any], name: str, digits: int = 6) -> str:
    """A metric's mean, with `± std (n)` over the cell's seeds when it has more than one."""
    value = run["metrics"].get(name)
    std = run.get("metrics_std", {}).get(name)
    if value is None or std is None or run.get("num_seeds", 1) < 2:
        return _fmt(value, digits)
    return f"{value:.{digits}f} ± {std:.{digits}f} ({run['num_seeds']})"


def _steps(run: dict[str, Any]) -> str:
    """A run's training steps, from its overrides (results written before they were kept)."""
    for o in run.get("overrides", []):
        if o.startswith("trainer.max_steps="):
            return o.split("=", 1)[1]
    return "?"


def mixing_table(results, checks) -> list[str]:
    lines = [("| mixing | steps | R²(h→z) | R²(z→h) | R²(x→z) | grid R² | orth. err | Procrustes "
             "| target |"), "|---|---|---|---|---|---|---|---|---|"]
    realnvp = [{**r, "mixing": "realnvp"} for r in in_group(results, "scaling")
               if r["dim"] == 2 and r["objective"] == "sigreg"]
    for r in in_group(results, "mixings") + realnvp:
        m, target = r["metrics"], MIXING_TARGET.get(r["mixing"])
        if target is not None:
            checks[f"mixing {r['mixing']} R² >= {target}"] = m["r2_h_to_z"] >= target
        steps = r.get("steps") or _steps(r)
        lines.append(f"| {r['mixing']} | {steps} | {_ms(r, 'r2_h_to_z')} | "
                     f"{_ms(r, 'r2_z_to_h')} | "
                     f"{_fmt(m['r2_x_to_z'], 4)} | {_ms(r, 'grid_r2', 4)} | "
                     f"{_ms(r, 'orthogonality_error', 4)} | {m['procrustes_error']:.2e} | "
                     f"{'≥ ' + str(target) if target else '–'} |")
    return lines


def scaling_table(results, checks) -> list[str]:
    rows: dict[int, dict[str, Any]] = {}
    for r in in_group(results, "scaling"):
        row = rows.setdefault(r["dim"], {"steps": r["steps"],
                                         "r2_x_to_z": r["metrics"]["r2_x_to_z"]})
        row[r["objective"]] = r
        if r["objective"] == "sigreg" and len(r.get("restart_r2", [])) > 1:
            row["restart_r2"] = r["restart_r2"]
    lines = [("| N | steps | SIGReg R²(h→z) | paper SIGReg | whitening | InfoNCE | paper InfoNCE "
              "| R²(x→z) | SIGReg R² of each restart (mean ± std) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for dim in sorted(rows):
        row = rows[dim]
        get = lambda k, d=6, row=row: _ms(row[k], "r2_h_to_z", d) if k in row else "–"
        if "sigreg" in row:
            target = 0.9995 if dim <= 256 else 0.999
            checks[f"scaling N={dim} SIGReg R² >= {target}"] = (
                row["sigreg"]["metrics"]["r2_h_to_z"] >= target)
        spread = row.get("restart_r2", [])
        restarts = (", ".join(f"{x:.4f}" for x in spread)
                    + f" ({np.mean(spread):.4f} ± {np.std(spread, ddof=1):.4f})") if spread else "–"
        lines.append(f"| {dim} | {row['steps']} | {get('sigreg')} | "
                     f"{_fmt(PAPER_SCALING.get(dim))} | {get('whitening')} | "
                     f"{get('infonce', 4)} | {_fmt(PAPER_INFONCE.get(dim), 3)} | "
                     f"{_fmt(row['r2_x_to_z'], 4)} | {restarts} |")
    return lines


def alpha_table(results, checks) -> list[str]:
    sig = {r["alpha"]: r for r in in_group(results, "alpha") if r["objective"] == "sigreg"}
    white = {r["alpha"]: r for r in in_group(results, "alpha") if r["objective"] == "whitening"}
    lines = [("| α | law | SIGReg grid R² | paper | SIGReg on-dist. R² | SIGReg R² in the grid's "
              "box | whitening grid R² |"), "|---|---|---|---|---|---|---|"]
    law = {1.0: "Laplace", 2.0: "Gaussian"}
    for alpha in sorted(sig):
        w = white.get(alpha)
        lines.append(f"| {alpha:g} | {law.get(alpha, 'gen. normal')} | "
                     f"{_ms(sig[alpha], 'grid_r2', 4)} | {_fmt(PAPER_ALPHA.get(alpha), 3)} | "
                     f"{_ms(sig[alpha], 'r2_h_to_z', 4)} | {_ms(sig[alpha], 'box_r2', 4)} | "
                     f"{_ms(w, 'grid_r2', 4) if w else '–'} |")
    if len(sig) >= 3:
        best = max(sig, key=lambda a: sig[a]["metrics"]["grid_r2"])
        checks["alpha sweep: grid R² peaks at the Gaussian (alpha = 2)"] = best == 2.0
    return lines


def _variant_order(run: dict[str, Any]) -> int:
    """A run's place in ``ALPHA_GAP_VARIANTS`` (its key ends in ``-v{index}``)."""
    return int(run["key"].rsplit("-v", 1)[1])


def alpha_gap_table(results, checks) -> list[str]:
    """The heavy-tailed alpha cells under each variant of the protocol (``--alpha-gap``);
    variants that differ only by ``seed N`` are one row, mean ± std over the seeds."""
    runs = sorted(in_group(results, "alpha-gap"), key=lambda r: (r["alpha"], _variant_order(r)))
    runs = [{**r, "base_variant": re.sub(r" seed \d+$", "", r["variant"])} for r in runs]
    cells = merge_seeds([{**r, "cell": f"{r['alpha']:g} {r['base_variant']}"} for r in runs])
    lines = [("| variant | α | steps | grid R² | paper grid R² | on-dist. R² | R² in the grid's box "
              "| share inside the box | orth. err |"), "|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        alpha = cell["alpha"]
        lines.append(f"| {cell['base_variant']} | {alpha:g} | {cell['steps']} | "
                     f"{_ms(cell, 'grid_r2', 3)} | {_fmt(PAPER_ALPHA.get(alpha), 3)} | "
                     f"{_ms(cell, 'r2_h_to_z', 3)} | {_ms(cell, 'box_r2', 3)} | "
                     f"{_fmt(cell['metrics'].get('box_fraction'), 3)} | "
                     f"{_ms(cell, 'orthogonality_error', 3)} |")
    return lines


def bound_table(results, checks) -> list[str]:
    lines = ["| run | ε | δ | D | bound D + (ε + D)² | Procrustes error | holds |",
             "|---|---|---|---|---|---|---|"]
    holds = []
    for r in runs_with_bound(results):
        m = r["metrics"]
        d = m["scaled_excess"]
        ok = m["procrustes_error"] <= m["bound"]
        holds.append(ok)
        lines.append(f"| {r['key']} | {m['epsilon']:.2e} | {m['delta']:.2e} | {d:.2e} | "
                     f"{m['bound']:.2e} | {m['procrustes_error']:.2e} | {'yes' if ok else 'NO'} |")
    if holds:
        checks[f"Theorem-3 bound holds on Gaussian runs ({sum(holds)}/{len(holds)})"] = all(holds)
    return lines


RECOVERY_R2 = {"quick": 0.9, "full": 0.95}  # the failure check's bar (quick: 2000 steps)


def failure_table(results, checks, recovery: float = RECOVERY_R2["full"]) -> list[str]:
    """Unequal autocorrelations per λ; the checks read the median seed of each cell (one
    seed's outlier is shown in the per-seed column, not hidden in the check)."""
    lines = [("| λ | R² slow coord. (ρ = 0.99) | R² fast coord. (ρ = 0.8) | R²(h→z) | "
              "slow / fast per seed |"), "|---|---|---|---|---|"]
    rows = sorted(in_group(results, "failure"), key=lambda r: r["lam"])
    medians = []
    for r in rows:
        mean = r["metrics"]["r2_h_to_z_per_dim"]
        std = r.get("metrics_std", {}).get("r2_h_to_z_per_dim")
        per_dim = [f"{m:.4f}" + (f" ± {s:.4f}" if std else "") for m, s in
                   zip(mean, std or [0.0] * len(mean))]
        seeds = [d for d in r.get("seed_r2_per_dim") or [mean] if d is not None]
        medians.append(np.median(np.asarray(seeds, dtype=float), axis=0))
        per_seed = ", ".join(f"{d[0]:.3f} / {d[1]:.3f}" for d in seeds)
        lines.append(f"| {r['lam']:g} | {per_dim[0]} | {per_dim[1]} | "
                     f"{_ms(r, 'r2_h_to_z', 4)} | {per_seed} |")
    if rows:
        checks["failure mode shown: smallest λ loses the fast coordinate (median seed R² < 0.5)"
               ] = bool(medians[0][1] < 0.5)
        fixed = [r["lam"] for r, m in zip(rows, medians) if m.min() >= recovery]
        label = f"λ = {', '.join(f'{lam:g}' for lam in fixed)}" if fixed else "no λ"
        checks[f"{label} recovers both coordinates (median seed R² >= {recovery:g} each)"] = \
            bool(fixed)
    return lines


SECTIONS = [
    ("1. 2-D mixings, Gaussian latents", mixing_table),
    ("2. Scaling with the latent dimension (RealNVP-4, matched encoder)", scaling_table),
    ("3. Latent law: generalised normal α, spiral mixing", alpha_table),
    ("4. Theorem-3 bound on Gaussian runs (every seed)", bound_table),
    ("5. Unequal autocorrelations (ρ = 0.99 / 0.8, identity mixing)", failure_table),
]
ALPHA_GAP_SECTIONS = [
    ("Heavy-tailed α under variants of the protocol (SIGReg, λ = 0.01 unless named)",
     alpha_gap_table),
]
