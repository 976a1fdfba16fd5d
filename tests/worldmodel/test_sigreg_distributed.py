"""Distributed SIGReg on 2 CPU processes (gloo) equals single-process SIGReg on the global batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from worldmodel.sigreg import SIGReg

SIZES = (48, 80)  # uneven on purpose: N must be the global batch, not R x local


def make_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sum(SIZES), 6, generator=gen)
    torch.manual_seed(1)
    layer = torch.nn.Linear(6, 4)
    return x, layer


def worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size)
    x, layer = make_problem()
    start = sum(SIZES[:rank])
    x_local = x[start : start + SIZES[rank]]
    model = DistributedDataParallel(layer)
    reg = SIGReg(64, seed=5)
    values = []
    for _ in range(2):  # the internal counter must advance identically on both ranks
        model.zero_grad()
        z = model(x_local)
        value = reg(z)
        value.backward()
        values.append(value.detach())
    torch.save({"values": torch.stack(values), "weight_grad": layer.weight.grad.clone(),
                "bias_grad": layer.bias.grad.clone()}, os.path.join(out_dir, f"{rank}.pt"))
    dist.barrier()  # both results are on disk before either rank leaves
    # Leave without interpreter teardown: gloo / DDP helper threads that are still joinable at
    # exit occasionally abort the process ("terminate called without an active exception")
    # after the results were written. An exception above still fails the spawn normally.
    os._exit(0)


def test_two_process_value_and_gradients_equal_single_process(tmp_path):
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    x, layer = make_problem()
    reg = SIGReg(64, seed=5)
    expected = []
    for _ in range(2):
        layer.zero_grad()
        value = reg(layer(x))
        value.backward()
        expected.append(value.detach())
    results = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(2)]
    for res in results:
        torch.testing.assert_close(res["values"], torch.stack(expected), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(res["weight_grad"], layer.weight.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(res["bias_grad"], layer.bias.grad, rtol=1e-4, atol=1e-6)
    # the two steps drew different directions, so the values differ
    assert float(expected[0]) != pytest.approx(float(expected[1]), rel=1e-6)
