"""FiniteGuard's per-step gradient check: one fused norm, per-tensor names only on failure."""

from types import SimpleNamespace

import pytest
import torch

from callbacks.finite_guard import FiniteGuard, NonFiniteError


def _module_with_grads(*grads: torch.Tensor) -> torch.nn.Module:
    module = torch.nn.Module()
    for i, grad in enumerate(grads):
        param = torch.nn.Parameter(torch.zeros_like(grad))
        param.grad = grad
        module.register_parameter(f"w{i}", param)
    return module


def _check(module: torch.nn.Module) -> None:
    FiniteGuard(hint="lower optim.lr").on_before_optimizer_step(
        SimpleNamespace(global_step=7), module, optimizer=None)


def test_a_nan_gradient_is_named_with_the_step_and_the_hint():
    module = _module_with_grads(torch.ones(3), torch.tensor([1.0, float("nan")]), torch.ones(2))
    with pytest.raises(NonFiniteError, match=r"step 7: non-finite gradients in 1 of 3 tensors "
                                             r"\(first: w1\)\. lower optim\.lr"):
        _check(module)


def test_an_infinite_gradient_fails_too():
    with pytest.raises(NonFiniteError, match="first: w0"):
        _check(_module_with_grads(torch.tensor([float("-inf")]), torch.ones(1)))


def test_finite_gradients_whose_norm_overflows_float32_pass():
    # each entry is finite, but the fused norm's squares overflow: the per-tensor check decides
    huge = torch.full((4,), 3e38)
    assert not torch.isfinite(torch.nn.utils.get_total_norm([huge], foreach=True))
    _check(_module_with_grads(huge, torch.ones(2)))


def test_no_gradients_is_not_an_error():
    _check(torch.nn.Linear(2, 2))  # grads are None before the first backward
