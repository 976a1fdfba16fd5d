"""train.py with DDP on 2 CPU processes (gloo) equals a single process on the same global batch.

Lightning starts the second process itself (``trainer.devices=2``), as it does for a user;
SIGReg is all-reduced over ranks, BatchNorm is synchronised and every rank loads its slice of
the same global batch, so losses, gradients and weights match the single-process run.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train_pixels import TINY

from envs.dataset import PixelDataset
from worldmodel.world_module import WorldModelModule

HELPER = Path(__file__).with_name("record_train.py")
STEPS = 4


def run(out: Path, dataset: Path, devices: int, steps: int = STEPS, **env: str) -> list[dict]:
    overrides = [*TINY, f"data.path={dataset}", "env.image_size=32", f"output_dir={out}",
                 f"trainer.max_steps={steps}", "trainer.batch_size=16", "loss.bf16=false",
                 "trainer.accelerator=cpu", f"trainer.devices={devices}",
                 f"trainer.strategy={'ddp' if devices > 1 else 'auto'}",
                 "trainer.checkpoint_every_n_steps=100", "trainer.val_every_n_steps=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run([sys.executable, str(HELPER), str(out / "record"), *overrides],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    if "SIGTERM_AT_STEP" in env:
        return []
    return [torch.load(out / "record" / f"rank{r}.pt", weights_only=True)
            for r in range(devices)]


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    return run(base / "one", tiny_dataset, 1), run(base / "two", tiny_dataset, 2), base


def test_two_processes_match_one_process_on_the_same_global_batch(runs):
    (single,), (rank0, rank1), _ = runs
    assert len(single["losses"]) == len(rank0["losses"]) == STEPS
    # the loss is a mean over the batch: the ranks' means average to the global one
    mean = [(a + b) / 2 for a, b in zip(rank0["losses"], rank1["losses"])]
    assert mean == pytest.approx(single["losses"], rel=1e-4)
    assert rank0["losses"] != pytest.approx(rank1["losses"], rel=1e-3)  # really other data
    for step in range(STEPS):
        g0, g1, g = rank0["grads"][step], rank1["grads"][step], single["grads"][step]
        assert g0.keys() == g.keys() and len(g) > 10
        scale = max(v.abs().max() for v in g.values())
        # step 0 starts from the same weights: only float summation order differs; later
        # steps start from weights that Adam moved by a few ulps more or less
        tol = 5e-4 if step == 0 else 5e-3
        for name, expected in g.items():
            torch.testing.assert_close(g0[name], g1[name], msg=name)  # DDP averaged them
            err = (g0[name] - expected).abs().max() / scale
            assert err < tol, f"step {step} {name}: {err:.1e} of the largest gradient"


def test_two_process_model_matches_and_rank_zero_alone_writes_files(runs, tiny_dataset):
    _, _, base = runs
    paths = [base / run / "reacher" / "model.ckpt" for run in ("one", "two")]
    models = [WorldModelModule.load_from_checkpoint(p, weights_only=True).eval() for p in paths]
    assert [torch.load(p, weights_only=True)["global_step"] for p in paths] == [STEPS, STEPS]
    pixels = torch.from_numpy(PixelDataset(tiny_dataset).episode(1)["pixels"][None])
    with torch.no_grad():
        z1, z2 = (m.world_model.encode(pixels) for m in models)  # (1, T, D)
    # biases in front of a BatchNorm get no gradient, so Adam moves them by noise: compare
    # what the models compute, not every weight
    torch.testing.assert_close(z2, z1, rtol=0, atol=1e-2 * float(z1.abs().max()))
    assert (base / "two" / "reacher" / "metrics.json").exists()


def test_sigterm_to_every_rank_stops_both_and_the_resumed_run_is_exact(runs, tiny_dataset):
    _, _, base = runs  # the uninterrupted 2-process run of STEPS steps
    cut = base / "cut"
    run(cut, tiny_dataset, 2, SIGTERM_AT_STEP="2")  # both ranks get it, as from SLURM
    last = torch.load(cut / "reacher" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3  # the step in progress finished on both ranks
    assert not (cut / "reacher" / "model.ckpt").exists()
    run(cut, tiny_dataset, 2)  # the same command again: resumes and finishes
    whole = torch.load(base / "two" / "reacher" / "model.ckpt", weights_only=True)
    resumed = torch.load(cut / "reacher" / "model.ckpt", weights_only=True)
    assert resumed["global_step"] == whole["global_step"] == STEPS
    for key, value in whole["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
