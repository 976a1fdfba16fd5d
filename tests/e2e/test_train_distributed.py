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
from conftest import TINY_PIXELS

from envs.dataset import PixelDataset
from worldmodel.module import JEPAModule

HELPER = Path(__file__).with_name("record_train.py")
STEPS = 4


def _args(out: Path, dataset: Path, devices: int = 2) -> list[str]:
    """train.py overrides: the tiny model in fp32 (bf16 kernels vary with the batch size)."""
    return [*TINY_PIXELS, f"data.path={dataset}", "env.image_size=32", f"output_dir={out}",
            f"trainer.max_steps={STEPS}", "trainer.batch_size=16", "trainer.cpu_bf16=false",
            "trainer.accelerator=cpu", f"trainer.devices={devices}",
            f"trainer.strategy={'ddp' if devices > 1 else 'auto'}",
            "trainer.checkpoint_every_n_steps=100", "trainer.val_every_n_steps=2"]


def run(out: Path, dataset: Path, devices: int, **env: str) -> list[dict]:
    overrides = _args(out, dataset, devices)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run([sys.executable, str(HELPER), str(out / "record"), *overrides],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    if "SIGTERM_AT_STEP" in env:
        assert done.returncode == 143, done.stderr[-3000:]
        return []
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / "record" / f"rank{r}.pt", weights_only=True)
            for r in range(devices)]


def run_here(out: Path, dataset: Path) -> list[dict]:
    """The single-process reference, in this process (as ``run`` with ``devices=1`` would)."""
    from record_train import Recorder

    from configs.loader import load_config
    from worldmodel.app import train

    train.train(load_config("reacher", _args(out, dataset, 1)),
                extra_callbacks=[Recorder(out / "record")])
    return [torch.load(out / "record" / "rank0.pt", weights_only=True)]


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    return run_here(base / "one", tiny_dataset), run(base / "two", tiny_dataset, 2), base


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
    models = [JEPAModule.load_from_checkpoint(p, weights_only=True).eval() for p in paths]
    assert [torch.load(p, weights_only=True)["global_step"] for p in paths] == [STEPS, STEPS]
    pixels = torch.from_numpy(PixelDataset(tiny_dataset).episode(1)["pixels"][None])
    with torch.no_grad():
        z1, z2 = (m.world_model.encode(pixels) for m in models)  # (1, T, D)
    # biases in front of a BatchNorm get no gradient, so Adam moves them by noise: compare
    # what the models compute, not every weight
    torch.testing.assert_close(z2, z1, rtol=0, atol=1e-2 * float(z1.abs().max()))
    assert (base / "two" / "reacher" / "metrics.json").exists()


@pytest.mark.slow  # the srun test below covers the same SIGTERM-and-resume path, requeue added
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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _final_model(root: Path) -> dict:
    return torch.load(root / "reacher" / "model.ckpt", weights_only=True)["state_dict"]


def test_torchrun_launch_trains_the_same_model(runs, tiny_dataset):
    _, _, base = runs
    out = base / "torchrun"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(HELPER), str(out / "record"), *_args(out, tiny_dataset)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    for key, value in _final_model(base / "two").items():
        assert torch.equal(_final_model(out)[key], value), key


def test_srun_launch_checkpoints_requeues_and_resumes_exactly(runs, tiny_dataset, tmp_path):
    """Two tasks started the way ``srun`` starts them (SLURM_* variables), a stand-in
    ``scontrol`` on PATH: SIGTERM to both saves, requeues the job once and exits 143 (as train.py's
    main does); the "requeued" job resumes to the uninterrupted run's model."""
    _, _, base = runs
    out = base / "srun"
    calls = tmp_path / "scontrol-calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {calls}\n')
    (fake / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
             "SLURM_NODEID": "0", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "wm-train",
             "SLURM_NODELIST": "127.0.0.1", "MASTER_ADDR": "127.0.0.1",
             "OMP_NUM_THREADS": "1", "PATH": f"{fake}:{os.environ['PATH']}"}

    def srun(**extra: str) -> list[int]:
        port = str(_free_port())
        tasks = [subprocess.Popen(
            [sys.executable, str(HELPER), str(out / "record"), *_args(out, tiny_dataset)],
            env={**os.environ, **slurm, "MASTER_PORT": port, "SLURM_PROCID": str(r),
                 "SLURM_LOCALID": str(r), **extra},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in range(2)]
        return [t.wait(timeout=600) for t in tasks]

    assert srun(SIGTERM_AT_STEP="2") == [143, 143]
    last = torch.load(out / "reacher" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert calls.read_text().split("\n")[:-1] == ["requeue 4242"]  # rank 0, once
    assert srun() == [0, 0]  # the requeued job: same command, resumes
    for key, value in _final_model(base / "two").items():
        assert torch.equal(_final_model(out)[key], value), key
