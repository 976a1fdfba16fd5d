"""Pixel environments with true state, the adapter for any Gymnasium env, rollout collection
and the on-disk dataset format (DESIGN.md sections 2-3).

Importing this package registers the built-in ``wm/`` ids with Gymnasium and selects headless
software rendering (``MUJOCO_GL=egl``) unless the caller chose a backend before.
"""

from envs.rendering import configure_headless

configure_headless()

from envs.goals import GoalSpec
from envs.pixel_env import PixelEnv, make_pixel_env
from envs.registry import WM_ENV_IDS, register_envs

register_envs()

__all__ = ["WM_ENV_IDS", "GoalSpec", "PixelEnv", "make_pixel_env", "register_envs"]
