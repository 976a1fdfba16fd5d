"""Training samples/s of ``train.py`` with 1 process against 2 DDP processes on this machine.

All runs train the default reacher world model (``configs/reacher.yaml``) on the same dataset.
One process on one core is the unit ("one device"), as one GPU per process on a cluster:

  * 1 process, 1 thread, global batch B (the config's): the baseline;
  * 1 process, all cores as torch threads, batch B: what a single process gets from the rest
    of the machine;
  * 2 processes (Lightning DDP, gloo on CPU, ``trainer.devices=2``), 1 thread each, the same
    global batch B: each computes half of every batch (the same model as one process, strong
    scaling);
  * 2 processes, 1 thread each, global batch 2B: each computes a full B (weak scaling, how
    one adds GPUs to go through more data).

Each run is the real training code (``train.train``, what ``python train.py`` calls) with a
timing callback: samples/s from step ``warmup`` to the last step (start-up, process launch and
the final probe excluded), plus the wall time of the whole command. On a machine with few
cores DDP mostly adds communication; the numbers are reported as they come out.

    python -m benchmarks.ddp_throughput [--steps 100] [--warmup 15] [--dataset DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "benchmarks" / "results" / "ddp_throughput"


def worker(out: Path, warmup: int, overrides: list[str]) -> None:
    """One training run; every rank writes its timing (Lightning reruns this command)."""
    import lightning as L

    from common.fileio import atomic_write_text
    from configs.loader import load_config
    from worldmodel.app import train

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if trainer.global_step == warmup:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if trainer.global_step > warmup:
                self.end, self.steps = time.perf_counter(), trainer.global_step - warmup

        def on_train_end(self, trainer, module) -> None:
            import torch

            atomic_write_text(out / f"rank{trainer.global_rank}.json", json.dumps({
                "steps": self.steps, "seconds": self.end - self.start,
                "world_size": trainer.world_size, "threads": torch.get_num_threads()}))

    train.train(load_config("reacher", overrides), extra_callbacks=[Timer()])


def run(processes: int, threads: int, batch: int, dataset: Path, steps: int, warmup: int,
        tmp: Path) -> dict:
    out = tmp / f"p{processes}-t{threads}-b{batch}"
    overrides = [f"data.path={dataset}", f"trainer.max_steps={warmup + steps}",
                 f"trainer.batch_size={batch}", f"trainer.num_threads={threads}",
                 f"output_dir={out}", "trainer.progress_bar=false",
                 "trainer.accelerator=cpu", f"trainer.devices={processes}",
                 f"trainer.strategy={'ddp' if processes > 1 else 'auto'}",
                 "trainer.checkpoint_every_n_steps=100000"]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", str(out), str(warmup),
                           *overrides], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{processes}-process run failed:\n{done.stderr[-4000:]}")
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]
    seconds = max(r["seconds"] for r in ranks)  # a step ends when the slowest rank ends it
    return {"processes": processes, "global_batch": batch,
            "threads_per_process": ranks[0]["threads"],
            "steps": ranks[0]["steps"], "seconds": seconds, "wall_seconds": wall,
            "steps_per_s": ranks[0]["steps"] / seconds}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(Path(argv[1]), int(argv[2]), argv[3:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=15)
    p.add_argument("--dataset", type=Path, default=None,
                   help="a reacher dataset; default: the one `python train.py` uses")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)

    from common.fileio import atomic_write_text, available_cores
    from configs.loader import load_config
    from envs.collect import ensure_dataset
    from worldmodel.app import train

    cfg = load_config("reacher")
    dataset = args.dataset or ensure_dataset(train.dataset_path(cfg), cfg.env, cfg.collect)
    batch = cfg.trainer.batch_size
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        cores = available_cores()
        runs = [run(n, t, b, dataset, args.steps, args.warmup, Path(tmp))
                for n, t, b in ((1, 1, batch), (1, cores, batch), (2, 1, batch),
                                (2, 1, 2 * batch))]
    for r in runs:
        r["samples_per_s"] = r["steps_per_s"] * r["global_batch"]
        r["vs_1_process"] = r["samples_per_s"] / runs[0]["samples_per_s"]
    result = {"cores": cores, "runs": runs, "dataset": str(dataset),
              "threads_1_process": runs[1]["vs_1_process"],
              "strong_scaling_2_processes": runs[2]["vs_1_process"],
              "weak_scaling_2_processes": runs[3]["vs_1_process"]}
    rows = "\n".join(
        f"| {r['processes']} | {r['threads_per_process']} | {r['global_batch']} | "
        f"{r['steps_per_s']:.2f} | {r['samples_per_s']:.0f} | {r['vs_1_process']:.2f}x | "
        f"{r['wall_seconds']:.0f} s |" for r in runs)
    text = (f"# train.py throughput, 1 vs 2 DDP processes on {available_cores()} cores\n\n"
            f"Default reacher world model, {args.steps} timed steps after {args.warmup}.\n\n"
            "| processes | threads each | global batch | steps/s | samples/s | vs 1 x 1 thread "
            "| whole command |\n|---|---|---|---|---|---|---|\n"
            f"{rows}\n")
    print(text)
    atomic_write_text(args.out / "results.json", json.dumps(result, indent=2))
    atomic_write_text(args.out / "report.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
