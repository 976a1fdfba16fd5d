"""Pixel environments with true state, the adapter for any Gymnasium env, rollout collection
and the on-disk dataset format (DESIGN.md sections 2-3).

Importing this package selects headless software rendering (``MUJOCO_GL=egl``) unless the
caller chose a backend before, and registers the built-in ``wm/`` ids with Gymnasium, as every
Gymnasium env package does (``import envs; gym.make("wm/reacher-v0")``, or
``gym.make("envs:wm/reacher-v0")``). The entry points are strings: MuJoCo, dm_control and the
env modules load on first use of an env, ``PixelEnv`` or ``make_pixel_env``.
"""

from __future__ import annotations

import importlib
from typing import Any

from envs.builtin import WM_ENV_IDS, register_envs
from envs.goals import GoalSpec
from envs.rendering import configure_headless

configure_headless()
register_envs()

__all__ = ["WM_ENV_IDS", "GoalSpec", "PixelEnv", "make_pixel_env", "register_envs"]

_LAZY = {"PixelEnv": "envs.pixel_env", "make_pixel_env": "envs.registry"}


def __getattr__(name: str) -> Any:
    """The MuJoCo-backed names, imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'envs' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
