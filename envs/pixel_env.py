"""``PixelEnv``: turn any Gymnasium env with ``rgb_array`` rendering into a pixel env.

Contract (DESIGN.md section 3): observations are ``uint8 (H, W, 3)`` frames of the configured
size, actions a ``Box`` in [-1, 1] rescaled to the wrapped env's bounds, ``info["state"]`` the
true low-dimensional ``float32`` state, optional action repeat. Deterministic given the seed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.env_tasks import EvaluationTasks
from envs.goals import GoalSpec
from envs.mujoco_state import (
    check_state_args,
    get_physics_state,
    mujoco_parts,
    set_joint_state,
    set_physics_state,
)
from envs.rendering import disable_msaa, fast_scene_flags, make_rendering_env, resize_frame
from envs.state_source import (
    STATE_SOURCES,
    read_state,
    resolve_state_angles,
    resolve_state_source,
)

__all__ = ["PixelEnv", "resize_frame"]


def _bounded_box(env_id: str, space: gym.Space) -> gym.spaces.Box:
    """The inner env's action space, checked to be a ``Box`` with finite bounds (rescaled to
    [-1, 1])."""
    if not isinstance(space, gym.spaces.Box):
        raise TypeError(f"{env_id}: PixelEnv needs a continuous Box action space, got "
                        f"{space}; discretised control is not supported")
    if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
        raise ValueError(f"{env_id}: action bounds must be finite to rescale to "
                         f"[-1, 1], got low={space.low}, high={space.high}")
    return space


class PixelEnv(EvaluationTasks, gym.Env):
    """Pixels + true state adapter around a Gymnasium env (composition, not a wrapper).

    Args:
        env: an env instance with ``render_mode="rgb_array"``, or a Gymnasium id (also
            ``"module:EnvName-v0"``, which imports ``module`` first: the plug-in hook).
        image_size: side of the square frames, in pixels.
        action_repeat: inner steps per ``step`` call (rewards summed; stops at episode end).
        state: where ``info["state"]`` comes from: ``"info"`` (the inner env's
            ``info["state"]``), ``"mujoco"`` (``qpos`` and ``qvel``), ``"observation"`` (the
            flattened inner observation), or ``"auto"`` (the first of these that exists).
        goal: goal coordinates and tolerance for goal reaching (a ``GoalSpec`` or its dict).
        env_kwargs: passed to ``gym.make`` when ``env`` is an id.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, env: gym.Env | str, image_size: int = 64, action_repeat: int = 1,
                 state: str = "auto", goal: GoalSpec | dict | None = None,
                 env_kwargs: dict[str, Any] | None = None) -> None:
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, got {image_size}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if state not in STATE_SOURCES:
            raise ValueError(f"state must be one of {STATE_SOURCES}, got {state!r}")
        if isinstance(env, str):
            self.env_id = env
            env = make_rendering_env(env, image_size, dict(env_kwargs or {}))
        else:
            if env_kwargs:
                raise ValueError("env_kwargs only apply when env is given as an id")
            self.env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        if env.render_mode != "rgb_array":
            raise ValueError(f"{self.env_id}: PixelEnv needs render_mode='rgb_array', got "
                             f"{env.render_mode!r}; create it with gym.make(id, "
                             f"render_mode='rgb_array')")
        space = _bounded_box(self.env_id, env.action_space)
        self.env = env
        self.image_size = int(image_size)
        self.action_repeat = int(action_repeat)
        self.render_mode = "rgb_array"
        self._low = space.low.astype(np.float64)
        self._scale = (space.high.astype(np.float64) - self._low) / 2.0
        self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self._state_source, self.state_names = resolve_state_source(env, self.env_id, state)
        self.state_dim = len(self.state_names)
        self.state_angles = resolve_state_angles(env, self.env_id, self._state_source,
                                                 self.state_names)
        self.goal = GoalSpec.from_dict(goal) if isinstance(goal, dict) else goal
        if self.goal is not None and max(self.goal.indices) >= self.state_dim:
            raise ValueError(f"{self.env_id}: goal indices {self.goal.indices} exceed the state "
                             f"size {self.state_dim} ({self.state_names})")
        fps = env.metadata.get("render_fps") or 30
        self.metadata = {**self.metadata, "render_fps": max(1, round(fps / action_repeat))}
        self._frame: np.ndarray | None = None
        self._tuned = False
        self._closed = False
        model, _ = mujoco_parts(env.unwrapped)
        if model is not None:
            disable_msaa(model)

    # -- state -------------------------------------------------------------------------

    def _state(self, obs: Any, info: dict) -> np.ndarray:
        return read_state(self.env, self.env_id, self._state_source, obs, info)

    # -- simulator state ---------------------------------------------------------------

    def mujoco_model_data(self) -> tuple[Any, Any] | None:
        """``(MjModel, MjData)`` of the MuJoCo simulation behind this env (live, not copies:
        read them, set state through ``restore_state``), or None when it is not MuJoCo."""
        inner = self.env.unwrapped
        if callable(getattr(inner, "mujoco_model_data", None)):
            return inner.mujoco_model_data()
        model, data = mujoco_parts(inner)
        return None if model is None else (model, data)

    @property
    def can_restore_state(self) -> bool:
        """Whether ``restore_state`` works: a MuJoCo env whose inner env has its own
        ``restore_state`` (dm_control tasks, the OGBench cube, whose ``info["state"]`` is not
        ``qpos, qvel``), or a gymnasium MuJoCo env under the ``"mujoco"`` state source."""
        if self.mujoco_model_data() is None:
            return False
        return self._state_source == "mujoco" or callable(
            getattr(self.env.unwrapped, "restore_state", None))

    @property
    def physics_steps_per_step(self) -> int | None:
        """MuJoCo physics steps one ``step`` call runs (action repeat included); None when
        the env is not MuJoCo."""
        if self.mujoco_model_data() is None:
            return None
        inner = self.env.unwrapped
        per_action = getattr(inner, "physics_steps", None) or getattr(inner, "frame_skip", 1)
        return int(per_action) * self.action_repeat

    def physics_state(self) -> np.ndarray:
        """The full physics vector now ``(nstate,)`` float64 (``mj_getState``,
        ``mjSTATE_FULLPHYSICS``): what ``restore_state(physics_state=...)`` puts back."""
        parts = self.mujoco_model_data()
        if parts is None:
            raise TypeError(f"{self.env_id} is not a MuJoCo env; it has no physics state")
        return get_physics_state(*parts)

    def restore_state(self, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None, *,
                      physics_state: np.ndarray | None = None) -> np.ndarray:
        """Put the simulator in a given state; the new ``info["state"]``.

        Args:
            qpos: joint positions ``(nq,)``; ``qvel`` ``(nv,)``, zero when not given (at rest).
            physics_state: instead of ``qpos``, a full physics vector ``(nstate,)`` as
                ``physics_state()`` returns it, which restores a recorded moment exactly.

        Nothing is rendered: ``render_frame()`` renders the restored state (``render()``
        returns None until then). What a task draws into the model at reset (reacher's target
        position) is not simulation state: it stays as the last ``reset`` left it.

        Raises:
            TypeError: the env cannot set its state (see ``can_restore_state``).
            ValueError: neither or both of ``qpos`` and ``physics_state``, or wrong sizes.
        """
        self._check_open()
        if not self.can_restore_state:
            raise TypeError(f"{self.env_id}: restore_state needs a MuJoCo env whose "
                            "info['state'] is qpos and qvel (a dm_control task, or a gymnasium "
                            f"MuJoCo env with state='mujoco'); its state source is "
                            f"{self._state_source!r}")
        model, data = self.mujoco_model_data()
        try:
            check_state_args(model, qpos, qvel, physics_state)
        except ValueError as err:
            raise ValueError(f"{self.env_id}: {err}") from None
        self._frame = None
        inner = self.env.unwrapped
        if callable(getattr(inner, "restore_state", None)):
            return np.asarray(inner.restore_state(qpos, qvel, physics_state), np.float32)
        if physics_state is None:
            set_joint_state(model, data, qpos, qvel)
        else:
            set_physics_state(model, data, physics_state)
        return self._state(None, {})

    # -- pixels ------------------------------------------------------------------------

    def render_frame(self) -> np.ndarray:
        """Render the simulator as it is now: ``uint8 (image_size, image_size, 3)``, also what
        ``render()`` returns from now on (``reset`` and ``step`` render through this)."""
        self._check_open()
        frame = self.env.render()
        if not self._tuned:  # the MuJoCo viewer exists only after the first render
            self._tuned = True
            viewer = getattr(getattr(self.env.unwrapped, "mujoco_renderer", None), "viewer", None)
            if getattr(viewer, "scn", None) is not None:
                fast_scene_flags(viewer.scn)
                frame = self.env.render()
        if frame is None or np.ndim(frame) != 3 or np.shape(frame)[-1] != 3:
            raise RuntimeError(f"{self.env_id}: render() must return an (H, W, 3) array, got "
                               f"{None if frame is None else np.shape(frame)}")
        self._frame = resize_frame(np.asarray(frame, dtype=np.uint8), self.image_size)
        return self._frame

    # -- gymnasium API -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.env_id}: the env is closed; make a new one")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._check_open()
        super().reset(seed=seed)
        if seed is not None:
            self.env.action_space.seed(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["state"] = self._state(obs, info)
        return self.render_frame(), info

    def step(self, action):
        total, terminated, truncated, info = self.advance(action)
        return self.render_frame(), total, terminated, truncated, info

    def advance(self, action) -> tuple[float, bool, bool, dict]:
        """``step`` without rendering: ``(reward, terminated, truncated, info)``, with
        ``info["state"]``; ``render()`` returns None until ``render_frame()`` (simulated
        rollouts, such as the true-simulator ceiling of envs whose actions are not controls)."""
        self._check_open()
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"{self.env_id}: action shape {action.shape} does not match "
                             f"the action space {self.action_space.shape}")
        inner_action = self.inner_action(action).astype(self.env.action_space.dtype)
        self._frame = None
        total = 0.0
        for _ in range(self.action_repeat):
            obs, reward, terminated, truncated, info = self.env.step(inner_action)
            total += float(reward)
            if terminated or truncated:
                break
        info = dict(info)
        info["state"] = self._state(obs, info)
        return total, bool(terminated), bool(truncated), info

    def inner_action(self, action: np.ndarray) -> np.ndarray:
        """Actions in [-1, 1] (clipped), any leading shape ``(..., A)``, in the wrapped env's
        bounds."""
        return self._low + (np.clip(action, -1.0, 1.0) + 1.0) * self._scale

    def render(self) -> np.ndarray | None:
        return None if self._frame is None else self._frame.copy()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()
