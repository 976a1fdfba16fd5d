"""Reproduce the synthetic identifiability results of SCIENCE.md section 4 with the framework.

Every run goes through ``train.train`` (the LightningModule, SIGReg, the probe callback), one
torch thread per worker process, several workers side by side. Runs are cached one JSON per run
under ``outputs/benchmarks/``, and every finished run is also written to ``runs.json`` beside
the report, so an interrupted benchmark resumes where it stopped: on this machine from the
cache, on a fresh clone from a committed ``runs.json`` (or ``results.json``) whose runs match
key and overrides. Outputs: ``results.json``, ``report.md`` (the tables) and PNG plots in
``--out``. The runs themselves (modes, cells, seeds) are listed by
``benchmarks.identifiability_jobs``.

    python -m benchmarks.identifiability --quick     # a few minutes
    python -m benchmarks.identifiability --full      # paper protocol with seeds, hours
    python -m benchmarks.identifiability --alpha-gap # the heavy-tailed alpha investigation
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from benchmarks.identifiability_jobs import MODES, Job, build_jobs
from benchmarks.identifiability_report import write_report


def run_job(job: Job, run_root: str) -> dict[str, Any]:
    """Train one run in this (worker) process and return its metrics with metadata."""
    import logging
    import warnings

    import torch

    from configs.loader import load_config
    from worldmodel.app import train

    torch.set_num_threads(1)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):  # after their import
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*(weights_only|LeafSpec).*")

    cfg = load_config("identifiability", [*job.overrides, f"name={job.key}", f"output_dir={run_root}"])
    start = time.perf_counter()
    result = train.train(cfg)
    return {"key": job.key, "group": job.group, **job.meta, "metrics": result.metrics,
            "seconds": time.perf_counter() - start, "overrides": job.overrides}


def is_cached(job: Job, cache: Path) -> bool:
    """Whether ``cache`` holds this job's run with the same overrides (a run cached under the
    same key with other settings, e.g. before a mode's steps changed, does not count)."""
    path = cache / f"{job.key}.json"
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("overrides") == job.overrides
    except json.JSONDecodeError:
        return False


def reuse_published(jobs: list[Job], cache: Path, published: list[Path]) -> int:
    """Copy into ``cache`` the runs of ``published`` files (a report's ``results.json``, or the
    ``runs.json`` written as runs finish) that match a job not yet cached, key and overrides
    alike; the number copied. A fresh clone resumes a benchmark another machine began."""
    from worldmodel.utils import atomic_write_text

    wanted = {j.key: j for j in jobs if not is_cached(j, cache)}
    reused = 0
    for path in published:
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        for run in data["runs"] if isinstance(data, dict) else data:
            job = wanted.get(run.get("key"))
            if job is not None and run.get("overrides") == job.overrides:
                atomic_write_text(cache / f"{job.key}.json", json.dumps(run, indent=1))
                del wanted[job.key]
                reused += 1
    return reused


def run_all(jobs: list[Job], cache: Path, run_root: Path, workers: int,
            runs_file: Path | None = None, work: Any = None) -> list[dict[str, Any]]:
    """Run the jobs not yet cached in ``cache``; return all results in job order. After each
    run, ``runs_file`` (when given) is rewritten with every finished run of ``jobs``.

    ``work(job, run_root)`` trains one job in a worker (default :func:`run_job`). Ctrl-C or
    SIGTERM stops the workers too (a plain ``ProcessPoolExecutor`` leaves them training); the
    finished runs stay cached, so the same command resumes.
    """
    from tqdm import tqdm

    from worldmodel.utils import atomic_write_text

    def finished() -> list[dict[str, Any]]:
        return [json.loads((cache / f"{j.key}.json").read_text()) for j in jobs
                if is_cached(j, cache)]

    cache.mkdir(parents=True, exist_ok=True)
    todo = [j for j in jobs if not is_cached(j, cache)]
    if len(todo) < len(jobs):
        print(f"resuming: {len(jobs) - len(todo)} of {len(jobs)} runs already cached in {cache}")
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        with _sigterm_as_interrupt(), \
                tqdm(total=len(todo), desc="identifiability runs", unit="run") as bar:
            futures = {pool.submit(work or run_job, job, str(run_root)): job for job in todo}
            for future in as_completed(futures):
                res = future.result()
                atomic_write_text(cache / f"{res['key']}.json", json.dumps(res, indent=1))
                if runs_file is not None:
                    atomic_write_text(runs_file, json.dumps(finished(), indent=1))
                bar.set_postfix_str(f"{res['key']}: R2={res['metrics']['r2_h_to_z']:.5f}")
                bar.update()
    except BaseException:
        stop_workers(pool)
        print(f"stopped: {len(finished())} of {len(jobs)} runs are cached in {cache}; "
              "the same command resumes from there", file=sys.stderr)
        raise
    pool.shutdown()
    return finished()


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued jobs and terminate the running ones (their partial runs are lost)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=10)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Within the block, SIGTERM (``kill``, ``pkill``, a scheduler's stop) raises
    KeyboardInterrupt in the main thread, so the cleanup that Ctrl-C gets also runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a few minutes (default)")
    size.add_argument("--full", action="store_true",
                      help="the paper protocol with seeds (~110 min on 2 cores)")
    size.add_argument("--alpha-gap", action="store_true",
                      help="why the heavy-tailed alpha cells fall short of the paper (~40 min)")
    parser.add_argument("--workers", type=int, default=max(os.cpu_count() or 1, 1),
                        help="parallel training processes, one torch thread each")
    parser.add_argument("--out", type=Path, default=None, help="where results and plots go")
    parser.add_argument("--fresh", action="store_true", help="ignore cached runs")
    args = parser.parse_args(argv)
    mode_name = "full" if args.full else "alpha-gap" if args.alpha_gap else "quick"
    mode = MODES[mode_name]
    out = args.out or ROOT / "benchmarks" / "results" / f"identifiability-{mode_name}"
    work = ROOT / "outputs" / "benchmarks" / f"identifiability-{mode_name}"
    cache = work / "cache"
    if args.fresh and cache.is_dir():
        for f in cache.glob("*.json"):
            f.unlink()
    jobs = build_jobs(mode)
    print(f"{mode_name} mode: {len(jobs)} runs on {args.workers} workers; results -> {out}")
    runs_file = out / "runs.json"  # every finished run, so that another clone can resume
    if not args.fresh:
        reused = reuse_published(jobs, cache, [out / "results.json", runs_file])
        if reused:
            print(f"reusing {reused} runs published in {out}")
    start = time.perf_counter()
    ran = any(not is_cached(j, cache) for j in jobs)
    results = run_all(jobs, cache, work / "runs", args.workers, runs_file)
    command = " ".join(["python -m benchmarks.identifiability", *(argv or sys.argv[1:])])
    checks = write_report(results, out, mode_name, command=command,
                          wall_seconds=time.perf_counter() - start if ran else None)
    runs_file.unlink(missing_ok=True)  # results.json holds them all now
    print((out / "report.md").read_text())
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
