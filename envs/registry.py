"""The built-in ``wm/`` ids (dm_control and gymnasium MuJoCo tasks as pixel envs with goals)
and ``make_pixel_env``, which makes a ``PixelEnv`` of any id.

Each id is a factory returning a ``PixelEnv`` and declares its goal coordinates, success
tolerance and goal source (DESIGN.md section 3, fixed there and not tuned per result).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator

from envs.builtin import WM_ENV_IDS, entry_point_name, register_envs
from envs.dmc import DMControlEnv
from envs.goals import GoalSpec
from envs.pixel_env import PixelEnv

__all__ = ["GOALS", "WM_ENV_IDS", "UnknownEnvError", "env_spec", "make_pixel_env",
           "register_envs"]

GOALS: dict[str, GoalSpec] = {
    # every joint within 0.05 rad of the goal configuration (stable-worldmodel's qpos_match)
    "wm/reacher-v0": GoalSpec(indices=(0, 1), tolerance=0.05, angular=(True, True)),
    # position drawn uniformly in [-0.2, 0.2]^2: a random policy barely moves the mass
    "wm/point_mass-v0": GoalSpec(indices=(0, 1), tolerance=0.02, norm="l2",
                                 source="state_sampler", budget=300,
                                 sample_low=(-0.2, -0.2), sample_high=(0.2, 0.2)),
    "wm/gym-reacher-v5": GoalSpec(indices=(0, 1), tolerance=0.05, angular=(True, True)),
    # cart position and pole angle
    "wm/gym-inverted_pendulum-v5": GoalSpec(indices=(0, 1), tolerance=0.05,
                                            angular=(False, True)),
    # cube position within 4 cm (L2): OGBench's and LeWM's success test; starts and goals
    # from held-out dataset frames 25 steps apart, 50 steps (LeWM's protocol); the ceiling's
    # cost also compares the effector position (see GoalSpec.cost_indices)
    "wm/cube-single-v0": GoalSpec(indices=(0, 1, 2), tolerance=0.04, norm="l2",
                                  source="dataset", cost_indices=(0, 1, 2, 4, 5, 6)),
}


def _pixel_factory(env_id: str, build_inner: Callable[[int, dict], gym.Env]) -> Callable:
    def factory(image_size: int = 64, action_repeat: int = 1, render_mode: str = "rgb_array",
                **env_kwargs: Any) -> PixelEnv:
        if render_mode != "rgb_array":
            raise ValueError(f"{env_id} renders only 'rgb_array', got {render_mode!r}")
        env = PixelEnv(build_inner(image_size, env_kwargs), image_size, action_repeat,
                       goal=GOALS[env_id])
        env.env_id = env_id
        return env

    factory.returns_pixel_env = True
    factory.__name__ = factory.__qualname__ = entry_point_name(env_id)
    return factory


def _dmc(domain: str, task: str) -> Callable[[int, dict], gym.Env]:
    return lambda size, kw: DMControlEnv(domain, task, size, size, **kw)


def _ogbench_cube(env_type: str) -> Callable[[int, dict], gym.Env]:
    def build(size: int, kw: dict) -> gym.Env:
        from envs.ogbench_cube import OGBenchCubeEnv  # imports ogbench only when used

        return OGBenchCubeEnv(size, size, env_type, **kw)

    return build


def _gym(gym_id: str, **defaults: Any) -> Callable[[int, dict], gym.Env]:
    return lambda size, kw: gym.make(gym_id, render_mode="rgb_array", width=size, height=size,
                                     **{**defaults, **kw})


# top-down view of the whole arena (the stock camera shows the arm a few pixels wide at 64 px)
_REACHER_CAMERA = {"distance": 0.85, "elevation": -90.0, "azimuth": 90.0,
                   "lookat": np.zeros(3)}


_INNER = {
    "wm/reacher-v0": _dmc("reacher", "easy"),
    "wm/point_mass-v0": _dmc("point_mass", "easy"),
    "wm/gym-reacher-v5": _gym("Reacher-v5", default_camera_config=_REACHER_CAMERA),
    "wm/gym-inverted_pendulum-v5": _gym("InvertedPendulum-v5"),
    "wm/cube-single-v0": _ogbench_cube("single"),
}
assert set(GOALS) == set(_INNER) == set(WM_ENV_IDS), "every wm/ id declares a goal"
# the entry points register_envs names: make_reacher_v0, make_cube_single_v0, ...
globals().update({entry_point_name(i): _pixel_factory(i, build) for i, build in _INNER.items()})


class UnknownEnvError(ValueError):
    """An env id that neither this package, Gymnasium nor a named plug-in module registers."""


def make_pixel_env(env_id: str, image_size: int = 64, action_repeat: int = 1,
                   env_kwargs: dict[str, Any] | None = None, state: str = "auto",
                   goal: GoalSpec | dict | None = None) -> PixelEnv:
    """A ``PixelEnv`` for any id: built-in ``wm/...`` ids, Gymnasium ids, ``module:Env-vN``.

    A ``wm/`` id (or a plug-in id whose entry point already returns a ``PixelEnv``) is made
    directly; anything else is wrapped by ``PixelEnv``. ``goal`` overrides the declared one.
    """
    kwargs = dict(env_kwargs or {})
    spec = env_spec(env_id)
    if _returns_pixel_env(spec):
        if state != "auto":
            raise ValueError(f"{env_id} declares its own state; remove the state={state!r} option")
        env = gym.make(env_id, image_size=image_size, action_repeat=action_repeat,
                       disable_env_checker=True, **kwargs).unwrapped
        if goal is not None:
            env.goal = GoalSpec.from_dict(goal) if isinstance(goal, dict) else goal
        return env
    return PixelEnv(env_id, image_size, action_repeat, state, goal, kwargs)


def env_spec(env_id: str):
    """The Gymnasium spec of ``env_id``, importing ``module`` first for ``"module:Env-vN"``
    (the built-in ``wm/`` ids are registered first)."""
    register_envs()
    if ":" in env_id:
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise UnknownEnvError(f"cannot import {module!r} for env id {module}:{env_id} "
                                  f"({err}); is it on PYTHONPATH? (run from the folder that "
                                  "holds it, or PYTHONPATH=that/folder)") from None
    try:
        return gym.spec(env_id)
    except gym.error.Error as err:  # NameNotFound and friends, with gymnasium's suggestion
        raise UnknownEnvError(
            f"unknown env id {env_id!r} ({err}); built-in ids: {', '.join(WM_ENV_IDS)}; "
            "any registered Gymnasium id works, and a plug-in is given as "
            "'module:EnvName-v0' (docs/plugin_env.md)") from None


def _returns_pixel_env(spec) -> bool:
    """Whether the id's entry point builds a ``PixelEnv`` itself (marked ``returns_pixel_env``)."""
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = load_env_creator(creator)
    return creator is PixelEnv or bool(getattr(creator, "returns_pixel_env", False))
