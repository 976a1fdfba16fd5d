"""The identifiability benchmark's plan and report, on hand-made results (no training)."""

from benchmarks.identifiability import MODES, build_jobs
from benchmarks.identifiability_report import select_restarts, write_report
from configs.loader import load_config


def fake_metrics(r2: float, alignment: float = 0.2, per_dim=(0.9, 0.9)) -> dict:
    return {"r2_h_to_z": r2, "r2_h_to_z_per_dim": list(per_dim), "r2_z_to_h": r2,
            "r2_x_to_z": 0.7, "grid_r2": r2, "orthogonality_error": 0.01,
            "procrustes_error": 0.001, "epsilon": 0.01, "delta": 0.001, "scaled_excess": 0.01,
            "bound": 0.01, "alignment": alignment}


def test_every_mode_plans_unique_runs_with_valid_overrides():
    for mode in MODES.values():
        jobs = build_jobs(mode)
        assert len({j.key for j in jobs}) == len(jobs)
        for job in jobs:
            load_config("identifiability", job.overrides)  # every override is a real key


def test_restarts_are_selected_by_alignment_not_by_r2():
    runs = [{"group": "scaling", "dim": 2, "objective": "sigreg", "steps": 10, "restart": i,
             "metrics": fake_metrics(r2, alignment)}
            for i, (r2, alignment) in enumerate([(0.83, 0.5), (0.99999, 0.2), (0.87, 0.34)])]
    (chosen,) = select_restarts(runs)
    assert chosen["metrics"]["r2_h_to_z"] == 0.99999
    assert chosen["restart_r2"] == [0.83, 0.99999, 0.87]


def test_report_writes_tables_plot_and_checks(tmp_path):
    runs = [
        {"key": "mixing-banana", "group": "mixings", "mixing": "banana",
         "overrides": ["trainer.max_steps=2000"], "metrics": fake_metrics(0.99), "seconds": 1.0},
        {"key": "scaling-sigreg-64", "group": "scaling", "dim": 64, "objective": "sigreg",
         "steps": 10, "restart": 0, "overrides": [], "metrics": fake_metrics(0.9999),
         "seconds": 1.0},
        {"key": "failure-0.001", "group": "failure", "lam": 0.001, "overrides": [],
         "metrics": fake_metrics(0.3, per_dim=(0.6, 0.01)), "seconds": 1.0},
        {"key": "failure-0.1", "group": "failure", "lam": 0.1, "overrides": [],
         "metrics": fake_metrics(0.96, per_dim=(0.96, 0.96)), "seconds": 1.0},
    ]
    checks = write_report(runs, tmp_path, "test", "cmd", 1.0)
    assert checks["mixing banana R² >= 0.98"]
    assert checks["scaling N=64 SIGReg R² >= 0.9995"]
    assert checks["λ = 0.1 recovers both coordinates (R² >= 0.95 each)"]
    report = (tmp_path / "report.md").read_text()
    assert "| banana | 2000 | 0.990000" in report  # the steps from the run's overrides
    assert (tmp_path / "identifiability.png").stat().st_size > 1000
    assert (tmp_path / "results.json").is_file()
