"""The identifiability benchmark's plan and report, on hand-made results (no training)."""

import json

import pytest

from benchmarks.identifiability_cells import merge_seeds, select_restarts
from benchmarks.identifiability_jobs import MODES, build_jobs
from benchmarks.identifiability_report import write_report
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
    assert checks["λ = 0.1 recovers both coordinates (median seed R² >= 0.95 each)"]
    report = (tmp_path / "report.md").read_text()
    assert "| banana | 2000 | 0.990000" in report  # the steps from the run's overrides
    assert (tmp_path / "identifiability.png").stat().st_size > 1000
    assert (tmp_path / "results.json").is_file()


def test_full_mode_runs_the_seeds_the_issue_asks_for_and_names_the_rest():
    jobs = build_jobs(MODES["full"])
    seeds: dict[str, int] = {}
    for job in jobs:
        seeds[job.meta["cell"]] = seeds.get(job.meta["cell"], 0) + 1
        if job.meta["seed"] == 0 and "-init" not in job.key:
            assert job.key == job.meta["cell"]  # seed 0 keeps the cached key
    assert all(seeds[f"scaling-sigreg-{n}"] >= 5 for n in (2, 8, 64, 256))
    assert seeds["mixing-spiral"] == 2  # the hardest mixing; the other two have 1 (time)
    assert seeds["mixing-banana"] == seeds["mixing-sinusoid"] == 1
    assert seeds["alpha-sigreg-0.25"] == seeds["alpha-sigreg-2"] == 2
    assert seeds["failure-0.001"] == 3 and seeds["failure-0.1"] == 5
    assert seeds["scaling-sigreg-1024"] == seeds["alpha-whitening-2"] == 1
    assert len(jobs) == 80
    seeded = [j for j in jobs if j.key == "failure-0.1-s4"]
    assert seeded and seeded[0].overrides[-1] == "seed=4"


def test_an_alpha_gap_variant_overrides_the_protocol():
    jobs = {j.meta["variant"] + f" {j.meta['alpha']:g}": j for j in build_jobs(MODES["alpha-gap"])}
    long = load_config("identifiability", jobs["40k steps 0.25"].overrides)
    assert long.trainer.max_steps == 40000 and jobs["40k steps 0.25"].meta["steps"] == 40000
    lam = load_config("identifiability", jobs["λ = 0.1 0.25"].overrides).loss
    assert (lam.regulariser_weight, lam.prediction_weight) == (0.1, pytest.approx(0.225))
    scale = load_config("identifiability", jobs["unit scale (scipy gennorm) 0.5"].overrides)
    assert scale.world.gennorm_scale == "unit_scale" and scale.world.alpha == 0.5


def test_alpha_gap_report_merges_the_seeds_of_a_variant(tmp_path):
    def run(index, variant, grid):
        return {"key": f"alpha-gap-0.25-v{index}", "group": "alpha-gap", "alpha": 0.25,
                "variant": variant, "cell": f"alpha-gap-0.25-v{index}", "seed": 0,
                "steps": 20000, "overrides": [], "seconds": 1.0,
                "metrics": {**fake_metrics(0.1), "grid_r2": grid, "box_r2": grid,
                            "box_fraction": 0.96}}

    runs = [run(0, "protocol", 0.3), run(1, "protocol seed 1", 0.2),
            run(10, "λ = 0.001 seed 2", 0.6), run(3, "λ = 0.001", 0.62)]
    write_report(runs, tmp_path, "alpha-gap", "cmd", 1.0)
    report = (tmp_path / "report.md").read_text()
    assert "| protocol | 0.25 | 20000 | 0.250 ± 0.071 (2) | 0.750 |" in report
    assert "| λ = 0.001 | 0.25 | 20000 | 0.610 ± 0.014 (2) |" in report
    assert report.index("| protocol |") < report.index("| λ = 0.001 |")  # variant order


def test_seeds_of_a_cell_are_averaged_with_their_spread(tmp_path):
    runs = [{"key": "mixing-spiral" + (f"-s{s}" if s else ""), "cell": "mixing-spiral",
             "seed": s, "group": "mixings", "mixing": "spiral", "steps": 10, "overrides": [],
             "metrics": fake_metrics(r2, per_dim=(r2, 1.0)), "seconds": 1.0}
            for s, r2 in enumerate([0.97, 0.99, 0.98])]
    (cell,) = merge_seeds(runs)
    assert cell["num_seeds"] == 3 and cell["seed_r2"] == [0.97, 0.99, 0.98]
    assert cell["metrics"]["r2_h_to_z"] == pytest.approx(0.98)
    assert cell["metrics_std"]["r2_h_to_z"] == pytest.approx(0.01)  # sample std
    assert cell["metrics"]["r2_h_to_z_per_dim"] == pytest.approx([0.98, 1.0])
    checks = write_report(runs, tmp_path, "test", "cmd", 1.0)
    assert checks["mixing spiral R² >= 0.98"]  # on the mean
    report = (tmp_path / "report.md").read_text()
    assert "| spiral | 10 | 0.980000 ± 0.010000 (3) |" in report
    assert "3 seeds: mixing-spiral" in report
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["runs"]) == 3 and len(saved["cells"]) == 1


def test_failure_check_reads_the_median_seed_and_shows_each(tmp_path):
    def run(lam, seed, slow, fast):
        return {"key": f"failure-{lam:g}" + (f"-s{seed}" if seed else ""),
                "cell": f"failure-{lam:g}", "seed": seed, "group": "failure", "lam": lam,
                "overrides": [], "seconds": 1.0,
                "metrics": fake_metrics((slow + fast) / 2, per_dim=(slow, fast))}

    runs = [run(0.001, 0, 0.69, 0.001), run(0.001, 1, 0.69, 0.0),
            run(0.1, 0, 0.965, 0.973), run(0.1, 1, 0.874, 0.770), run(0.1, 2, 0.96, 0.932)]
    quick = write_report(runs, tmp_path, "quick", "cmd", 1.0)
    assert quick["λ = 0.1 recovers both coordinates (median seed R² >= 0.9 each)"]
    assert quick["failure mode shown: smallest λ loses the fast coordinate (median seed R² < 0.5)"]
    assert "0.965 / 0.973, 0.874 / 0.770, 0.960 / 0.932 |" in (tmp_path / "report.md").read_text()
    full = write_report(runs, tmp_path, "full", "cmd", 1.0)  # 0.932 misses the full bar
    assert not full["no λ recovers both coordinates (median seed R² >= 0.95 each)"]


def test_seeds_of_a_cell_without_restarts_are_not_selected_by_alignment():
    runs = [{"key": f"scaling-sigreg-64-s{s}", "cell": "scaling-sigreg-64", "seed": s,
             "group": "scaling", "dim": 64, "objective": "sigreg", "steps": 10, "restart": 0,
             "restarts": 1, "metrics": fake_metrics(r2, alignment)}
            for s, (r2, alignment) in enumerate([(0.9, 0.1), (0.99, 0.3)])]
    assert len(select_restarts(runs)) == 2
    (cell,) = merge_seeds(select_restarts(runs))
    assert cell["metrics"]["r2_h_to_z"] == pytest.approx(0.945)


def test_a_fresh_clone_resumes_from_published_runs_that_match(tmp_path):
    from benchmarks.identifiability import reuse_published

    jobs = build_jobs(MODES["quick"])[:3]
    done = {"key": jobs[0].key, "overrides": jobs[0].overrides, "metrics": fake_metrics(0.9)}
    stale = {"key": jobs[1].key, "overrides": [*jobs[1].overrides, "seed=7"],  # other settings
             "metrics": fake_metrics(0.5)}
    (tmp_path / "runs.json").write_text(json.dumps([done, stale]))
    (tmp_path / "results.json").write_text(json.dumps({"runs": [stale]}))
    cache = tmp_path / "cache"
    cache.mkdir()
    published = [tmp_path / "results.json", tmp_path / "runs.json", tmp_path / "missing.json"]
    assert reuse_published(jobs, cache, published) == 1
    assert json.loads((cache / f"{jobs[0].key}.json").read_text()) == done
    assert not (cache / f"{jobs[1].key}.json").exists()
    assert reuse_published(jobs, cache, published) == 0  # already cached: nothing copied again


def test_a_run_cached_with_other_settings_is_run_again(tmp_path):
    from benchmarks.identifiability import is_cached

    (job,) = build_jobs(MODES["quick"])[:1]
    path = tmp_path / f"{job.key}.json"
    assert not is_cached(job, tmp_path)
    path.write_text(json.dumps({"key": job.key, "overrides": ["trainer.max_steps=1"]}))
    assert not is_cached(job, tmp_path)  # same key, other steps: stale
    path.write_text(json.dumps({"key": job.key, "overrides": job.overrides}))
    assert is_cached(job, tmp_path)
    path.write_text("{not json")  # a torn file (the writes are atomic, but be safe)
    assert not is_cached(job, tmp_path)


WORKER_SCRIPT = '''
import os, sys, time
from pathlib import Path
from benchmarks.identifiability import run_all
from benchmarks.identifiability_jobs import Job

def work(job, run_root):
    Path(run_root, f"{job.key}.pid").write_text(str(os.getpid()))
    if job.key != "quick":
        time.sleep(120)
    return {"key": job.key, "metrics": {"r2_h_to_z": 1.0}, "overrides": job.overrides}

if __name__ == "__main__":
    root = Path(sys.argv[1])
    jobs = [Job("quick", "g", [], cost=3), Job("slow-a", "g", [], cost=2),
            Job("slow-b", "g", [], cost=1)]
    run_all(jobs, root / "cache", root, workers=2, work=work)
'''


def test_sigterm_stops_the_workers_and_keeps_the_finished_runs(tmp_path):
    """``pkill`` of the benchmark used to leave its spawn workers training; now they stop."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "bench.py"
    script.write_text(WORKER_SCRIPT)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    pid_files = [tmp_path / f"slow-{x}.pid" for x in "ab"]
    ready = [*pid_files, tmp_path / "cache" / "quick.json"]
    while not all(p.is_file() for p in ready) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    assert all(p.is_file() for p in ready), "the workers never started"
    workers = [int(p.read_text()) for p in pid_files]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "the same command resumes" in err
    assert (tmp_path / "cache" / "quick.json").is_file()  # finished before the signal
    assert not (tmp_path / "cache" / "slow-a.json").exists()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    assert not any(alive(pid) for pid in workers)
