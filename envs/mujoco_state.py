"""Reading and setting the state of a MuJoCo simulation (``MjModel``, ``MjData``).

Two forms of state: joint positions and velocities (``qpos``, ``qvel``: the ``info["state"]``
of MuJoCo pixel envs) and MuJoCo's full physics vector (``mj_getState`` with
``mjSTATE_FULLPHYSICS``: time, ``qpos``, ``qvel``, actuator activations, mocap poses, plugin
state), which restores a recorded frame exactly. ``mujoco`` is imported only when used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_state_args", "full_physics", "get_physics_state", "mujoco_parts",
           "mujoco_state_names", "set_joint_state", "set_physics_state"]


def full_physics() -> int:
    """The ``mjtState`` signature of a full physics vector."""
    import mujoco

    return int(mujoco.mjtState.mjSTATE_FULLPHYSICS)


def mujoco_parts(env: Any) -> tuple[Any, Any] | tuple[None, None]:
    """``(MjModel, MjData)`` of a gymnasium MuJoCo env (its ``model``, ``data``), else Nones."""
    model, data = getattr(env, "model", None), getattr(env, "data", None)
    if model is None or data is None or not hasattr(data, "qpos") or not hasattr(model, "vis"):
        return None, None
    return model, data


def mujoco_state_names(model) -> list[str]:
    """``<joint>_pos`` for every ``qpos`` entry, then ``<joint>_vel`` for every ``qvel`` one."""
    import mujoco

    sizes = {mujoco.mjtJoint.mjJNT_FREE: (7, 6), mujoco.mjtJoint.mjJNT_BALL: (4, 3)}
    pos, vel = [], []
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
        nq, nv = sizes.get(model.jnt_type[j], (1, 1))
        pos += [f"{name}_pos"] if nq == 1 else [f"{name}_pos[{i}]" for i in range(nq)]
        vel += [f"{name}_vel"] if nv == 1 else [f"{name}_vel[{i}]" for i in range(nv)]
    return pos + vel


def get_physics_state(model, data) -> np.ndarray:
    """The full physics vector ``(nstate,)`` float64 of the simulation now."""
    import mujoco

    state = np.empty(mujoco.mj_stateSize(model, full_physics()))
    mujoco.mj_getState(model, data, state, full_physics())
    return state


def _checked(values, size: int, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (size,):
        raise ValueError(f"{what} must have shape ({size},), got {values.shape}")
    return values


def check_state_args(model, qpos, qvel, physics_state) -> None:
    """Either ``qpos`` (with an optional ``qvel``) or ``physics_state``, of the model's sizes."""
    if (qpos is None) == (physics_state is None) or (qvel is not None and qpos is None):
        raise ValueError("give qpos (and optionally qvel), or physics_state alone")
    if physics_state is not None:
        import mujoco

        _checked(physics_state, mujoco.mj_stateSize(model, full_physics()), "physics_state")
        return
    _checked(qpos, model.nq, "qpos")
    if qvel is not None:
        _checked(qvel, model.nv, "qvel")


def set_joint_state(model, data, qpos, qvel=None) -> None:
    """Set ``qpos`` (and ``qvel``, zero when not given: at rest), then recompute positions,
    contacts and sensors (``mj_forward``)."""
    import mujoco

    data.qpos[:] = _checked(qpos, model.nq, "qpos")
    data.qvel[:] = 0.0 if qvel is None else _checked(qvel, model.nv, "qvel")
    mujoco.mj_forward(model, data)


def set_physics_state(model, data, state) -> None:
    """Set a full physics vector (``get_physics_state``'s form), then ``mj_forward``."""
    import mujoco

    size = mujoco.mj_stateSize(model, full_physics())
    mujoco.mj_setState(model, data, _checked(state, size, "a full physics state"),
                       full_physics())
    mujoco.mj_forward(model, data)
