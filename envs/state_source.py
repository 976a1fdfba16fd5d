"""Where a ``PixelEnv``'s true state comes from: its source, entry names and angles, and reading it.

The sources, in the order ``"auto"`` tries them: the inner env's ``info["state"]`` with its
``state_names`` (``"info"``), MuJoCo's ``qpos`` and ``qvel`` (``"mujoco"``), and the flattened
inner observation (``"observation"``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from envs.mujoco_state import mujoco_parts, mujoco_state_names

__all__ = ["STATE_SOURCES", "read_state", "resolve_state_angles", "resolve_state_source"]

STATE_SOURCES = ("auto", "info", "mujoco", "observation")


def resolve_state_source(env: gym.Env, env_id: str, source: str) -> tuple[str, list[str]]:
    """The source ``source`` (one of ``STATE_SOURCES``) resolves to for ``env``, and the names
    of the state's entries."""
    inner = env.unwrapped
    names = getattr(inner, "state_names", None)
    if source in ("auto", "info") and names is not None:
        return "info", list(names)
    if source == "info":
        raise ValueError(f"{env_id}: state='info' needs the env to declare "
                         "state_names and return info['state']")
    model, _ = mujoco_parts(inner)
    if source in ("auto", "mujoco") and model is not None:
        return "mujoco", mujoco_state_names(model)
    if source == "mujoco":
        raise ValueError(f"{env_id}: state='mujoco' needs a MuJoCo env with "
                         "model/data attributes")
    obs_space = env.observation_space
    if not isinstance(obs_space, gym.spaces.Box):
        raise TypeError(f"{env_id}: cannot derive a state vector from observation "
                        f"space {obs_space}; give the env info['state'] and state_names")
    return "observation", [f"obs[{i}]" for i in range(int(np.prod(obs_space.shape)))]


def resolve_state_angles(env: gym.Env, env_id: str, source: str,
                         state_names: list[str]) -> dict[str, int]:
    """The inner env's optional ``state_angles`` (state entry name -> the symmetry order
    k its frames show it up to; the state probe reads (sin kθ, cos kθ)), checked."""
    angles = getattr(env.unwrapped, "state_angles", None) or {}
    if source != "info" and angles:
        raise ValueError(f"{env_id}: state_angles name entries of info['state'], but "
                         f"the state comes from {source!r}")
    unknown = sorted(set(angles) - set(state_names))
    if unknown:
        raise ValueError(f"{env_id}: state_angles names {unknown}, which are not in "
                         f"state_names ({state_names})")
    bad = {n: k for n, k in angles.items() if not (isinstance(k, int) and k >= 1)}
    if bad:
        raise ValueError(f"{env_id}: state_angles orders must be integers >= 1 (1: a "
                         f"plain angle, 4: a shape that repeats every 90 degrees), got {bad}")
    return dict(angles)


def read_state(env: gym.Env, env_id: str, source: str, obs: Any, info: dict) -> np.ndarray:
    """The true state now, ``float32``, from the resolved ``source``."""
    if source == "info":
        if "state" not in info:
            raise KeyError(f"{env_id} declares state_names but returned no "
                           "info['state']; return it from reset() and step()")
        state = info["state"]
    elif source == "mujoco":
        _, data = mujoco_parts(env.unwrapped)
        state = np.concatenate([data.qpos, data.qvel])
    else:
        state = np.ravel(obs)
    return np.asarray(state, dtype=np.float32)
