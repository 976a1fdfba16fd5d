"""Pixel environments with true state, the adapter for any Gymnasium env, rollout collection
and the on-disk dataset format (DESIGN.md sections 2-3).

Importing this package selects headless software rendering (``MUJOCO_GL=egl``) unless the
caller chose a backend before, and nothing heavier: Gymnasium, MuJoCo and dm_control load on
first use of ``PixelEnv``, ``make_pixel_env``, ``WM_ENV_IDS`` or ``register_envs``, which also
registers the built-in ``wm/`` ids with Gymnasium (``make_pixel_env`` registers them too).
"""

from __future__ import annotations

import importlib
from typing import Any

from envs.goals import GoalSpec
from envs.rendering import configure_headless

configure_headless()

__all__ = ["WM_ENV_IDS", "GoalSpec", "PixelEnv", "make_pixel_env", "register_envs"]

_LAZY = {"PixelEnv": "envs.pixel_env", "make_pixel_env": "envs.registry",
         "WM_ENV_IDS": "envs.registry", "register_envs": "envs.registry"}


def __getattr__(name: str) -> Any:
    """The Gymnasium-backed names, imported (and the ``wm/`` ids registered) on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'envs' has no attribute {name!r}")
    from envs.registry import register_envs

    register_envs()
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
