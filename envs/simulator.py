"""The true physics of a MuJoCo pixel env as a batched rollout function (the planning ceiling).

``MujocoSimulator.from_env(env)`` reads, through ``PixelEnv``'s public API, the env's ``MjModel``
and ``MjData``, how many physics steps one env step takes and how actions map to controls;
``rollout`` then simulates many action sequences from one saved physics state with MuJoCo's
multi-threaded ``rollout`` module, in C. Where actions are not the MuJoCo controls (the cube
arm's actions go through an inverse-kinematics controller), ``StepSimulator`` rolls them out
through the env's own ``step`` in a second, never-rendered copy of the env: exact, and slower.
``simulator_for`` picks the one that applies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import mujoco
import numpy as np
from mujoco import rollout as mj_rollout

from common.fileio import available_cores
from envs.mujoco_state import get_physics_state
from envs.pixel_env import PixelEnv

__all__ = ["MujocoSimulator", "StepSimulator", "simulator_for"]


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
        if model.nu != env.action_space.shape[0] or env.state_dim != model.nq + model.nv:
            return None  # actions are not the controls, or the state is not qpos, qvel
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

    def close(self) -> None:
        pass


class StepSimulator:
    """Open-loop rollouts of a pixel env through its own ``step``, in a scratch copy.

    Args:
        live: the env being controlled (its snapshots are read).
        scratch: another env of the same kind and settings, used for the rollouts (never
            rendered; shared by the simulators of a batch).

    States returned are the env's ``info["state"]``.
    """

    def __init__(self, live: PixelEnv, scratch: PixelEnv, owns_scratch: bool = False) -> None:
        self.live, self.scratch, self.owns_scratch = live, scratch, owns_scratch

    def snapshot(self) -> np.ndarray:
        return self.live.physics_state()

    def rollout(self, initial: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``(B, nstate)`` snapshots, ``(B, N, T, A)`` actions -> ``(B, N, T, S)`` states
        (after an episode end the state stays where it ended)."""
        B, N, T, _ = actions.shape
        out = np.empty((B, N, T, self.scratch.state_dim), np.float32)
        for b in range(B):
            for n in range(N):
                state = self.scratch.restore_state(physics_state=initial[b])
                for t in range(T):
                    _, terminated, truncated, info = self.scratch.advance(actions[b, n, t])
                    state = info["state"]
                    out[b, n, t] = state
                    if terminated or truncated:
                        out[b, n, t:] = state
                        break
        return out

    def close(self) -> None:
        if self.owns_scratch:
            self.scratch.close()


def simulator_for(envs: Sequence[PixelEnv], make_env: Callable[[], PixelEnv]
                  ) -> tuple[list | None, str]:
    """One simulator per env of a batch, and ``""``; or ``None`` and why there is none.

    ``MujocoSimulator`` where actions are the MuJoCo controls and the state is ``qpos, qvel``;
    else ``StepSimulator`` (one scratch env from ``make_env``) where the env's full physics
    state can be restored.
    """
    sims = [MujocoSimulator.from_env(env) for env in envs]
    if all(sim is not None for sim in sims):
        return sims, ""
    if not all(env.can_restore_state for env in envs):
        return None, (f"{envs[0].env_id} cannot be simulated from a snapshot (not MuJoCo, or "
                      "its state cannot be restored)")
    scratch = make_env()
    return [StepSimulator(env, scratch, owns_scratch=j == 0) for j, env in enumerate(envs)], ""
