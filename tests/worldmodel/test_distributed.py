"""GlobalBatchNorm on 2 CPU processes (gloo) equals BatchNorm on the concatenated batch."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from worldmodel.distributed import GlobalBatchNorm, GlobalBatchNormSync

SIZES = (6, 10)  # uneven on purpose: the moments are over the global batch


def make_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sum(SIZES), 3, 5, 5, generator=gen) * 2 + 1
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(36, 6),
                          nn.BatchNorm1d(6))
    return x, model


def loss_of(out: torch.Tensor) -> torch.Tensor:
    return (out * torch.arange(out.shape[-1])).sin().sum()  # a sum: ranks' parts add up


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    x, model = make_problem()
    start = sum(SIZES[:rank])
    model = GlobalBatchNormSync().apply(model)
    ddp = DistributedDataParallel(model)
    out = ddp(x[start:start + SIZES[rank]])
    (loss_of(out) * 2).backward()  # DDP averages over 2 ranks: * 2 makes it a sum
    model = GlobalBatchNormSync().revert(model)
    torch.save({"out": out.detach(), "grads": [p.grad for p in model.parameters()],
                "state": model.state_dict(), "classes": [type(m) for m in model]},
               os.path.join(out_dir, f"{rank}.pt"))
    dist.barrier()
    os._exit(0)  # see test_sigreg_distributed.py: skip a flaky gloo teardown


def test_two_process_batchnorm_equals_single_process_batchnorm(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    x, model = make_problem()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: oneDNN's conv sums in another order on 2
    try:
        out = model(x)
        loss_of(out).backward()
    finally:
        torch.set_num_threads(threads)
    results = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in range(2)]
    torch.testing.assert_close(torch.cat([r["out"] for r in results]), out.detach(),
                               rtol=1e-5, atol=1e-5)
    for res in results:
        for got, want in zip(res["grads"], model.parameters()):
            torch.testing.assert_close(got, want.grad, rtol=1e-4, atol=1e-5)
        for key, value in model.state_dict().items():  # running statistics too
            torch.testing.assert_close(res["state"][key], value, rtol=1e-5, atol=1e-6)
        assert res["classes"][1] is nn.BatchNorm2d and res["classes"][4] is nn.BatchNorm1d


def test_single_process_and_eval_are_plain_batchnorm():
    x, model = make_problem()
    reference = [m.state_dict() for m in model]
    want = model(x)
    model.load_state_dict({f"{i}.{k}": v for i, s in enumerate(reference) for k, v in s.items()})
    swapped = GlobalBatchNormSync().apply(model)
    assert isinstance(swapped[1], GlobalBatchNorm) and isinstance(swapped[4], GlobalBatchNorm)
    torch.testing.assert_close(swapped(x), want)
    swapped.eval()
    torch.testing.assert_close(swapped(x), GlobalBatchNormSync().revert(swapped)(x))
