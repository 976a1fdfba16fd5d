"""A dm_control suite task as a Gymnasium env: state observations, fast ``rgb_array`` frames.

The observation is the physical state (``qpos``, ``qvel``), also given as ``info["state"]``;
``render()`` draws through one camera created on first use and reused for every frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs.mujoco_state import set_physics_state
from envs.rendering import disable_msaa, fast_scene_flags

__all__ = ["DMControlEnv"]


class DMControlEnv(gym.Env):
    """dm_control ``suite.load(domain, task)`` behind the Gymnasium API.

    Args:
        domain, task: suite names, e.g. ``("reacher", "easy")``.
        width, height: rendered frame size in pixels.
        camera_id: index or name of the MuJoCo camera.
        render_mode: only ``"rgb_array"``.
        environment_kwargs: passed to ``suite.load`` (e.g. ``{"time_limit": 10}``).
        invisible_geoms: names of geoms drawn fully transparent (physics unchanged), e.g.
            reacher's ``"target"``, a per-episode constant that a world model can latch onto.
        geom_radius: new radius (``size[0]``) per geom name, to draw thin parts thicker at low
            resolution. Only for geoms that take part in no contact (masses and inertias are
            fixed when the model is compiled), so the physics is unchanged; checked.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, domain: str, task: str, width: int = 64, height: int = 64,
                 camera_id: int | str = 0, render_mode: str | None = "rgb_array",
                 environment_kwargs: dict[str, Any] | None = None,
                 invisible_geoms: tuple[str, ...] | list[str] = (),
                 geom_radius: dict[str, float] | None = None) -> None:
        from dm_control import suite

        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"DMControlEnv renders only 'rgb_array', got {render_mode!r}")
        if (domain, task) not in suite.ALL_TASKS:
            raise ValueError(f"unknown dm_control task {(domain, task)}; "
                             f"known: {sorted(suite.ALL_TASKS)}")
        self.render_mode = render_mode
        self._env = suite.load(domain, task, task_kwargs={"random": 0},
                               environment_kwargs=dict(environment_kwargs or {}))
        physics = self._env.physics
        disable_msaa(physics.model)
        for name in invisible_geoms:
            try:
                physics.named.model.geom_rgba[name, 3] = 0.0
            except KeyError:
                raise ValueError(f"{domain}: no geom named {name!r} to hide") from None
        self._thicken(physics, domain, dict(geom_radius or {}))
        vis = physics.model.vis.global_
        vis.offwidth, vis.offheight = max(vis.offwidth, width), max(vis.offheight, height)
        self._size = (height, width)
        self._camera_id = camera_id
        self._camera = None
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(spec.minimum.astype(np.float32),
                                           spec.maximum.astype(np.float32), dtype=np.float32)
        n = physics.model.nq + physics.model.nv
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)
        self.state_names = self._state_names(physics.model)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self._env.control_timestep())}

    @staticmethod
    def _thicken(physics, domain: str, radii: dict[str, float]) -> None:
        import mujoco

        model = physics.model
        contacts_off = bool(model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT)
        for name, radius in radii.items():
            gid = mujoco.mj_name2id(model.ptr, mujoco.mjtObj.mjOBJ_GEOM, name)
            if gid < 0:
                raise ValueError(f"{domain}: no geom named {name!r} to thicken")
            if not contacts_off and (model.geom_contype[gid] or model.geom_conaffinity[gid]):
                raise ValueError(f"{domain}: geom {name!r} takes part in contacts, so a new "
                                 "radius would change the physics; only contact-free geoms can "
                                 "be thickened")
            if radius <= 0:
                raise ValueError(f"geom_radius[{name!r}] must be > 0, got {radius}")
            grow = radius - model.geom_size[gid, 0]
            model.geom_size[gid, 0] = radius
            model.geom_rbound[gid] += max(grow, 0.0)  # bounding sphere for culling

    @staticmethod
    def _state_names(model) -> list[str]:
        names = [model.id2name(i, "joint") or f"joint{i}" for i in range(model.njnt)]
        if model.nq != model.njnt or model.nv != model.njnt:  # free or ball joints
            return [f"qpos[{i}]" for i in range(model.nq)] + [f"qvel[{i}]" for i in range(model.nv)]
        return [f"{n}_pos" for n in names] + [f"{n}_vel" for n in names]

    @property
    def physics(self):
        """The dm_control ``Physics`` (named accessors: ``physics.named.data.qpos``)."""
        return self._env.physics

    def _state(self) -> np.ndarray:
        data = self._env.physics.data
        return np.concatenate([data.qpos, data.qvel]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
        self._env.reset()
        state = self._state()
        return state, {"state": state}

    def step(self, action):
        ts = self._env.step(np.asarray(action, dtype=np.float64))
        last = ts.last()
        terminated = bool(last and ts.discount == 0.0)
        state = self._state()
        return state, float(ts.reward or 0.0), terminated, bool(last and not terminated), \
            {"state": state}

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray | None = None) -> np.ndarray:
        """Put the physics in a given configuration (velocities zero unless given); the state."""
        physics = self._env.physics
        with physics.reset_context():  # recomputes positions, contacts and sensors
            physics.data.qpos[:] = qpos
            physics.data.qvel[:] = 0.0 if qvel is None else qvel
        return self._state()

    def restore_state(self, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None,
                      physics_state: np.ndarray | None = None) -> np.ndarray:
        """``set_state(qpos, qvel)``, or a full physics vector (``mj_getState`` with
        ``mjSTATE_FULLPHYSICS``); the new state. ``PixelEnv.restore_state`` checks the args."""
        if physics_state is None:
            return self.set_state(qpos, qvel)
        physics = self._env.physics
        with physics.reset_context():
            set_physics_state(physics.model.ptr, physics.data.ptr, physics_state)
        return self._state()

    def mujoco_model_data(self) -> tuple:
        """``(MjModel, MjData)`` of the physics (the raw MuJoCo structs)."""
        physics = self._env.physics
        return physics.model.ptr, physics.data.ptr

    @property
    def physics_steps(self) -> int:
        """Physics steps per control step (the task's control timestep over the physics one)."""
        return int(self._env._n_sub_steps)

    def render(self) -> np.ndarray:
        if self._camera is None:
            from dm_control.mujoco import Camera

            self._camera = Camera(self._env.physics, *self._size, camera_id=self._camera_id)
            fast_scene_flags(self._camera._scene)
        return self._camera.render()

    def close(self) -> None:
        if self._camera is not None:
            self._camera._scene.free()
            self._camera = None
        self._env.physics.free()
