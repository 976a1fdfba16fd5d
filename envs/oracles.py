"""OGBench's scripted manipulation oracles as collection policies (``collect.policy``).

``ogbench_plan``: the non-Markovian oracle behind OGBench's ``play`` datasets: it plans a
pick-and-place of the target cube through keyframes and follows the plan with temporally
correlated noise (``noise``, ``noise_smoothing``). ``ogbench_markov``: the closed-loop oracle
behind its ``noisy`` datasets, with Gaussian action noise whose scale is drawn per episode in
``[0, noise]`` (x, y, z, yaw, gripper scaled 1, 1, 1, 3, 10). Whenever the oracle finishes, the
env draws a new target (``p_stack``: probability of stacking on another cube; 0 for one cube),
as OGBench's data-generation script does. The defaults are that script's.

The oracles draw their randomness from NumPy's global generator; each policy keeps its own
stream, seeded by ``reset(seed)`` and swapped in around each call, so an episode is
reproducible from its policy seed whatever else draws random numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OGBenchOracle", "markov_oracle", "plan_oracle"]

_NOISE_SCALE = np.array([1.0, 1.0, 1.0, 3.0, 10.0])  # x, y, z, yaw, gripper


class OGBenchOracle:
    """An OGBench cube oracle driving ``wm/cube-...`` envs (see the module docstring).

    Args:
        action_dim: the env's action size (5: effector x, y, z, yaw, gripper).
        kind: ``"plan"`` or ``"markov"``.
        noise: the oracle's noise level.
        noise_smoothing: temporal smoothing of the plan oracle's noise (steps).
        min_norm: least action norm of the Markov oracle.
        p_stack: probability that a new target stacks the cube on another one.
        p_random_action: probability of a uniform random action instead of the oracle's
            (OGBench's data-generation option; 0 by default).
    """

    def __init__(self, action_dim: int, kind: str = "plan", noise: float = 0.1,
                 noise_smoothing: float = 0.5, min_norm: float = 0.4,
                 p_stack: float = 0.0, p_random_action: float = 0.0) -> None:
        if kind not in ("plan", "markov"):
            raise ValueError(f"oracle kind must be 'plan' or 'markov', got {kind!r}")
        if action_dim != 5:
            raise ValueError(f"OGBench oracles act on 5-D actions, the env has {action_dim}")
        if noise < 0 or not 0.0 <= p_stack <= 1.0 or not 0.0 <= p_random_action <= 1.0:
            raise ValueError(f"need noise >= 0 and p_stack, p_random_action in [0, 1], got "
                             f"{noise}, {p_stack}, {p_random_action}")
        self.kind, self.noise, self.p_stack = kind, noise, p_stack
        self.p_random_action = p_random_action
        self._settings = ({"noise": noise, "noise_smoothing": noise_smoothing} if kind == "plan"
                          else {"min_norm": min_norm})
        self._env = None
        self._oracle = None
        self._started = False
        self._xi = 0.0

    def attach(self, env) -> None:
        """Bind to the pixel env it will act in (called once by the collector)."""
        inner = env.env.unwrapped if hasattr(env, "env") else env
        ogbench_env = getattr(inner, "ogbench_env", None)
        if ogbench_env is None:
            raise TypeError(f"OGBench oracles drive OGBench cube envs (wm/cube-...), not "
                            f"{getattr(env, 'env_id', type(env).__name__)}")
        if self.kind == "plan":
            from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle as Oracle
        else:
            from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle as Oracle
        inner.ogbench_info = True  # the oracles read OGBench's info keys
        self._env = ogbench_env
        self._oracle = Oracle(env=ogbench_env, **self._settings)

    def reset(self, seed: int) -> None:
        if self._oracle is None:
            raise RuntimeError("attach(env) the oracle before using it")
        # the oracles draw from NumPy's global generator: give them their own stream, swapped
        # in around each call, so nothing else's draws move theirs (or theirs anyone's)
        self._rng = np.random.RandomState(seed % 2**32).get_state()
        self._started = False

    def act(self, pixels: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        outside = np.random.get_state()
        np.random.set_state(self._rng)
        try:
            return self._act(info)
        finally:
            self._rng = np.random.get_state()
            np.random.set_state(outside)

    def _act(self, info: dict[str, Any]) -> np.ndarray:
        if not self._started:  # the first call sees the reset's info
            self._started = True
            self._xi = np.random.uniform(0.0, self.noise) if self.kind == "markov" else 0.0
            self._oracle.reset(None, info)
        elif self._oracle.done:  # task finished: a new target, as OGBench's collector does
            _, info = self._env.set_new_target(p_stack=self.p_stack)
            self._oracle.reset(None, info)
        if np.random.rand() < self.p_random_action:
            action = np.random.uniform(-1.0, 1.0, 5)
        else:
            action = np.asarray(self._oracle.select_action(None, info), np.float64)
            if self.kind == "markov":
                action = action + np.random.normal(0.0, self._xi * _NOISE_SCALE)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def plan_oracle(action_dim: int, **kwargs: Any) -> OGBenchOracle:
    """``collect.policy: ogbench_plan``: OGBench's play-data oracle."""
    return OGBenchOracle(action_dim, "plan", **kwargs)


def markov_oracle(action_dim: int, **kwargs: Any) -> OGBenchOracle:
    """``collect.policy: ogbench_markov``: OGBench's noisy-data oracle."""
    return OGBenchOracle(action_dim, "markov", **kwargs)
