"""Data-collection policies: uniform random, temporally correlated random, plug-ins.

A policy acts in the pixel env's normalised action space [-1, 1]. ``reset(seed)`` starts an
episode with its own seed, so a dataset is reproducible whatever worker collects an episode.
A plug-in is ``"module:factory"``; ``factory(action_dim, **kwargs)`` returns an object with
``reset(seed)`` and ``act(pixels, info) -> action``. A policy that needs the env itself (a
scripted oracle reading the simulator) also defines ``attach(env)``, which ``make_policy(...,
env=env)`` calls once with the ``PixelEnv``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from common.registry import Registry

__all__ = ["POLICIES", "OUNoisePolicy", "Policy", "UniformRandomPolicy", "make_policy"]


class Policy(Protocol):
    def reset(self, seed: int) -> None: ...

    def act(self, pixels: np.ndarray, info: dict[str, Any]) -> np.ndarray: ...


class UniformRandomPolicy:
    """Independent uniform actions in [-1, 1] at every step."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, pixels: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return self._rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)


class OUNoisePolicy:
    """Ornstein-Uhlenbeck actions ``a' = rho a + sqrt(1 - rho^2) std eps``, clipped to [-1, 1].

    Correlated actions push the system consistently for several steps, so the data covers
    far more of the state space than independent noise of the same size.

    Args:
        rho: step-to-step correlation in [0, 1).
        std: stationary standard deviation before clipping: one for every action entry, or
            a list with one per entry (to move some joints less than others).
    """

    def __init__(self, action_dim: int, rho: float = 0.9,
                 std: float | Sequence[float] = 0.7) -> None:
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"OU rho must be in [0, 1), got {rho}")
        std = np.asarray(std, np.float64)
        if std.ndim > 1 or std.size not in (1, action_dim):
            raise ValueError(f"OU std must be one number or {action_dim} (one per action "
                             f"entry), got {std.tolist()}")
        std = np.broadcast_to(std.reshape(-1), (action_dim,)).copy()
        if (std <= 0).any():
            raise ValueError(f"OU std must be > 0, got {std.tolist()}")
        self.action_dim, self.rho, self.std = action_dim, rho, std
        self._rng = np.random.default_rng(0)
        self._a = np.zeros(action_dim)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._a = self._rng.normal(0.0, self.std, self.action_dim)  # start stationary

    def act(self, pixels: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        eps = self._rng.normal(0.0, 1.0, self.action_dim)
        self._a = self.rho * self._a + np.sqrt(1.0 - self.rho**2) * self.std * eps
        return np.clip(self._a, -1.0, 1.0).astype(np.float32)


# name -> factory (action_dim, **kwargs) -> policy, or "module:factory" imported on first use
POLICIES: Registry[Callable[..., Policy] | str] = Registry("policy", "policy")
POLICIES.add("random", UniformRandomPolicy)
POLICIES.add("ou", OUNoisePolicy)
# OGBench's scripted oracles (envs.oracles), for wm/cube-... envs
POLICIES.add("ogbench_plan", "envs.oracles:plan_oracle")
POLICIES.add("ogbench_markov", "envs.oracles:markov_oracle")


def _plugin_class(name: str) -> type:
    """The class a user's ``"module:Class"`` names, checked to be a policy before anything of
    it runs: a function or another class (``os:truncate``, ``subprocess:Popen``) is refused."""
    module_name, _, attr = name.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot load policy {name!r}: {err}") from None
    if not (isinstance(found, type) and all(callable(getattr(found, m, None))
                                            for m in ("reset", "act"))):
        raise ValueError(f"policy {name!r} is not a policy class: a plug-in policy is "
                         "'module:Class' where Class(action_dim, **policy_kwargs) has reset(seed) "
                         "and act(pixels, info); nothing else named in a config is called")
    return found


def make_policy(name: str, action_dim: int, kwargs: dict[str, Any] | None = None,
                env: Any = None) -> Policy:
    """A policy by name (``random``, ``ou``, ``ogbench_plan``, ``ogbench_markov``) or plug-in
    class ``"module:Class"``; ``env`` is given to a policy with ``attach(env)``."""
    kwargs = dict(kwargs or {})
    if name in POLICIES:
        factory = POLICIES.get(name)
        if isinstance(factory, str):  # imported on first use
            module_name, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module_name), attr)
    elif ":" in name:
        factory = _plugin_class(name)
    else:
        raise ValueError(f"unknown policy {name!r}; use one of {list(POLICIES)} or "
                         "'module:Class' for your own")
    try:
        policy = factory(action_dim, **kwargs)
    except TypeError as err:
        raise ValueError(f"policy {name!r} rejected its arguments {kwargs}: {err}") from None
    for method in ("reset", "act"):
        if not callable(getattr(policy, method, None)):
            raise TypeError(f"policy {name!r} has no {method}() method; a policy needs "
                            "reset(seed) and act(pixels, info)")
    if callable(getattr(policy, "attach", None)):
        if env is None:
            raise ValueError(f"policy {name!r} acts on the env itself (it has attach(env)); "
                             "give make_policy the env")
        policy.attach(env)
    return policy
