"""Training throughput of ``train.py`` against the bare forward/backward loop of the same network.

Both run in this process on the same default config (``configs/reacher.yaml``) and threads:
  * bare loop: ``module.losses`` -> ``backward`` -> AdamW step on batches already in memory;
  * train.py: the Lightning Trainer with data loading, logging, callbacks and checkpoints,
    timed from step ``warmup`` to the last step by a callback (start-up and the final probe
    excluded).
The goal is overhead <= 1.3x (bare steps/s over train.py steps/s).

    python -m benchmarks.train_throughput [--steps 300] [--dataset DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import lightning as L
import torch

from common.fileio import atomic_write_text
from configs.loader import load_config
from envs.collect import CollectConfig, ensure_dataset
from worldmodel.app import train
from worldmodel.data import PixelDataModule
from worldmodel.utils import configure_threads, keep_freed_memory

OUT = ROOT / "benchmarks" / "results" / "train_throughput"
GOAL_OVERHEAD = 1.3


class StepTimer(L.Callback):
    """Wall time from the start of step ``warmup`` to the end of the last training step."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, None, None, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.start is not None:
            self.end, self.steps = time.perf_counter(), trainer.global_step - self.warmup


def bare_loop(cfg, dataset: Path, steps: int, warmup: int) -> float:
    """Steps/s of forward + backward + AdamW on pre-loaded batches of the same network."""
    data = PixelDataModule(dataset, cfg.data, cfg.trainer.batch_size, cfg.seed)
    module = train.build_module(cfg, data.model_meta)
    optimizer = module.configure_optimizers()["optimizer"]
    batches = []
    for batch in data.train_dataloader():
        batches.append(batch)
        if len(batches) == 16:
            break
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss = module.losses(batches[i % len(batches)])[0]["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def lightning_run(cfg, steps: int, warmup: int, run_dir: Path) -> float:
    timer = StepTimer(warmup)
    train.train(cfg, run_dir, extra_callbacks=[timer])
    return timer.steps / (timer.end - timer.start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--dataset", type=Path, default=None,
                   help="a reacher dataset; default: collect 200 episodes once")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    configure_threads(0)
    keep_freed_memory()
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        cfg0 = load_config("reacher")
        dataset = args.dataset or ensure_dataset(
            ROOT / "outputs" / "benchmarks" / "train-throughput-data", cfg0.env,
            CollectConfig(episodes=200, episode_steps=100), progress=True)
        cfg = load_config("reacher", [
            f"data.path={dataset}", f"trainer.max_steps={args.warmup + args.steps}",
            "trainer.progress_bar=true", f"output_dir={tmp}"])
        bare_before = bare_loop(cfg, dataset, args.steps, args.warmup)
        fit = lightning_run(cfg, args.steps, args.warmup, Path(tmp) / "run")
        bare_after = bare_loop(cfg, dataset, args.steps, args.warmup)
    bare = (bare_before + bare_after) / 2
    batch = cfg.trainer.batch_size
    result = {"bare_steps_per_s": bare, "bare_runs": [bare_before, bare_after],
              "train_py_steps_per_s": fit, "overhead": bare / fit, "batch_size": batch,
              "window_frames": cfg.data.window, "threads": torch.get_num_threads(),
              "steps": args.steps, "goal_overhead": GOAL_OVERHEAD}
    result["ok"] = result["overhead"] <= GOAL_OVERHEAD
    text = (f"# Training throughput, default reacher world model, {torch.get_num_threads()} "
            f"threads\n\n| loop | steps/s | windows/s |\n|---|---|---|\n"
            f"| bare forward/backward/AdamW (runs {bare_before:.2f}, {bare_after:.2f}) | "
            f"{bare:.2f} | {bare * batch:.0f} |\n"
            f"| train.py (Lightning, data loading, logging, callbacks) | {fit:.2f} | "
            f"{fit * batch:.0f} |\n\noverhead {result['overhead']:.3f}x "
            f"(goal <= {GOAL_OVERHEAD}x): {'ok' if result['ok'] else 'FAILED'}\n")
    print(text)
    atomic_write_text(args.out / "results.json", json.dumps(result, indent=2))
    atomic_write_text(args.out / "report.md", text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
