"""Collectives the model needs under DDP, on any backend (gloo on CPU, NCCL on GPU).

- ``all_reduce_sum``: a sum over ranks whose backward also sums over ranks. A statistic built
  from all-reduced sums (SIGReg's ECF, BatchNorm's moments) then has the value of the
  single-process statistic on the concatenated batch, and DDP's averaged gradient equals the
  single-process gradient.
- ``GlobalBatchNorm`` and the ``GlobalBatchNormSync`` Lightning plugin: BatchNorm over the
  global batch. ``torch.nn.SyncBatchNorm`` does the same on GPUs only; this one is backend-free,
  so a CPU DDP run equals a single-process run too.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import LayerSync
from torch import Tensor, nn

__all__ = ["GlobalBatchNorm", "GlobalBatchNormSync", "all_reduce_sum", "is_distributed"]


def is_distributed() -> bool:
    """Whether ``torch.distributed`` runs with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward also sums the incoming gradients over ranks.

    With DDP averaging parameter gradients over R ranks, the summed backward makes the
    averaged gradient equal the gradient of the single-process loss on the global batch.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """Autograd-aware sum over all ranks; the identity outside distributed runs."""
    return _AllReduceSum.apply(tensor) if is_distributed() else tensor


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (any input ``(N, C, *)``) whose training statistics cover every rank's batch.

    Outside a distributed run, or in eval mode, it is exactly the BatchNorm it replaced.
    Statistics are computed in float32 in two passes (mean, then centred squares), each one
    all-reduced; the running variance is the unbiased global one, as in ``nn.BatchNorm``.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected input of shape (N, C, *), got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor(float(xf.numel() // xf.shape[1]), device=x.device)
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        mean = all_reduce_sum(xf.sum(dims)) / count  # (C,)
        centred = xf - mean.view(shape)
        var = all_reduce_sum(centred.square().sum(dims)) / count  # biased, as BN normalises
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                     else self.momentum)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * count / (count - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class GlobalBatchNormSync(LayerSync):
    """Lightning plugin: the model's BatchNorm layers become ``GlobalBatchNorm`` while DDP
    trains (``Trainer(plugins=[GlobalBatchNormSync()])``) and their own class again after."""

    def apply(self, model: nn.Module) -> nn.Module:
        return _swap(model, lambda m: isinstance(m, nn.modules.batchnorm._BatchNorm)
                     and not isinstance(m, GlobalBatchNorm), GlobalBatchNorm)

    def revert(self, model: nn.Module) -> nn.Module:
        return _swap(model, lambda m: isinstance(m, GlobalBatchNorm), None)


def _swap(module: nn.Module, match, new_class) -> nn.Module:
    """Change the class of every matching submodule in place (parameters and buffers stay)."""
    for m in module.modules():
        if match(m):
            if new_class is None:
                m.__class__ = m._original_class
            else:
                m._original_class = type(m)
                m.__class__ = new_class
    return module
