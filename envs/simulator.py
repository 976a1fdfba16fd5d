"""The true physics of a MuJoCo pixel env as a batched rollout function (the planning ceiling).

``MujocoSimulator.from_env(env)`` reads, through ``PixelEnv``'s public API, the env's ``MjModel``
and ``MjData``, how many physics steps one env step takes and how actions map to controls;
``rollout`` then simulates many action sequences from one saved physics state with MuJoCo's
multi-threaded ``rollout`` module, in C.
"""

from __future__ import annotations

from collections.abc import Callable

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from envs.fileio import available_cores
from envs.mujoco_state import get_physics_state
from envs.pixel_env import PixelEnv

__all__ = ["MujocoSimulator"]


class MujocoSimulator:
    """Open-loop rollouts of a pixel env's physics from a snapshot of its state.

    States returned are ``qpos`` then ``qvel``, the ``info["state"]`` of dm_control envs and
    of PixelEnv's ``"mujoco"`` state source.
    """

    def __init__(self, model, data, physics_steps: int,
                 to_controls: Callable[[np.ndarray], np.ndarray],
                 threads: int | None = None) -> None:
        self.model, self.data = model, data
        self.physics_steps = int(physics_steps)
        self.to_controls = to_controls  # env actions in [-1, 1] -> MuJoCo controls
        self.threads = threads or available_cores()
        self._datas = [mujoco.MjData(model) for _ in range(self.threads)]
        self._qpos = slice(1, 1 + model.nq)  # full-physics state: time, qpos, qvel, act, ...
        self._qvel = slice(1 + model.nq, 1 + model.nq + model.nv)

    @classmethod
    def from_env(cls, env: PixelEnv, threads: int | None = None) -> MujocoSimulator | None:
        """The simulator behind ``env``, or ``None`` when it is not a MuJoCo env whose state is
        ``qpos, qvel`` and whose actions are the controls."""
        parts = env.mujoco_model_data()
        if parts is None or not env.can_restore_state:
            return None
        model, data = parts
        if model.nu != env.action_space.shape[0]:
            return None
        return cls(model, data, env.physics_steps_per_step, env.inner_action, threads)

    def snapshot(self) -> np.ndarray:
        """The env's full physics state now ``(nstate,)``."""
        return get_physics_state(self.model, self.data)

    def rollout(self, initial: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """States after every env step.

        Args:
            initial: ``(B, nstate)`` snapshots, one per environment.
            actions: ``(B, N, T, A)`` env actions in [-1, 1] (N sequences per environment).

        Returns:
            ``(B, N, T, nq + nv)``.
        """
        B, N, T, A = actions.shape
        ctrl = self.to_controls(actions)  # (B, N, T, A)
        ctrl = np.repeat(ctrl.reshape(B * N, T, A), self.physics_steps, axis=1)  # (BN, Tk, A)
        start = np.repeat(np.asarray(initial, dtype=np.float64), N, axis=0)  # (BN, nstate)
        states, _ = mj_rollout.rollout(self.model, self._datas, start, ctrl)  # (BN, Tk, ns)
        states = states[:, self.physics_steps - 1::self.physics_steps]  # (BN, T, nstate)
        out = np.concatenate([states[..., self._qpos], states[..., self._qvel]], axis=-1)
        return out.reshape(B, N, T, -1)
