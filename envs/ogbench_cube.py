"""OGBench's cube scenes (a UR5e arm with a Robotiq gripper, cubes on a table) as a state env
with fast pixel frames: the inner env of ``wm/cube-single-v0``.

The physics, action space and control are OGBench's state-based ``CubeEnv`` (actions: relative
effector x, y, z, yaw and gripper, in [-1, 1], through OGBench's inverse-kinematics controller;
20 control steps per second). Frames are drawn by ``envs.lowpoly.SceneRenderer`` from the
``front_pixels`` camera of OGBench's visual tasks, in their look (translucent arm, purple
gripper), with two differences: the translucent goal-cube marker is hidden (goals are images,
a marker would leak them) and the meshes are decimated below a pixel (``mesh_cell``).

``info["state"]``: cube position and yaw, effector position and yaw, gripper opening, arm joint
positions and velocities (``state_names``). OGBench's own ``info`` keys (``proprio/...``,
``privileged/...``) are passed through when ``ogbench_info`` is set (its scripted oracles,
``envs.oracles``, set it): computing them costs ~5% of a step, which nothing else reads.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from envs.cube_states import ARM_JOINTS, cube_outcome, cube_state_angles, cube_state_names
from envs.lowpoly import SceneRenderer
from envs.mujoco_state import get_physics_state, set_joint_state, set_physics_state

__all__ = ["MESH_CELL_PIXELS", "OGBenchCubeEnv"]

_OPENING_JOINT = "ur5e/robotiq/right_driver_joint"  # 0 (open) .. 0.8 rad (closed)
_PINCH_SITE = "ur5e/robotiq/pinch"
_PURPLE = (0.61, 0.28, 0.82)
MESH_CELL_PIXELS = 1.92  # default mesh cell, metres times pixels (3 cm at 64 px)
_PLANE_GRID = 0.25  # metres between the grid lines a plane is drawn with
# alpha of each arm and gripper material in frames (OGBench's visual tasks: a see-through arm
# so the cube stays visible behind it, the gripper pads most visible)
_ARM_ALPHA = {"ur5e/black": 0.1, "ur5e/jointgray": 0.1, "ur5e/linkgray": 0.1,
              "ur5e/lightblue": 0.1, "ur5e/robotiq/metal": 0.1, "ur5e/robotiq/silicone": 0.1,
              "ur5e/robotiq/gray": 0.1, "ur5e/robotiq/black": 0.1, "ur5e/robotiq/pad_gray": 0.5}


def _yaw(wxyz: np.ndarray) -> float:
    w, x, y, z = wxyz
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def _restyle(model, transparent_arm: bool) -> None:
    """Frames' look, applied to the render copy only: hide the goal markers, colour the gripper
    purple, (``transparent_arm``) make the arm see-through, draw the floor in fewer pieces."""
    for g in range(model.ngeom):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE:
            # a plane is drawn as a grid of squares size[2] apart (1 cm here: 40 000 quads,
            # most of a frame's cost); at 64 px the frames are the same with 25 cm squares
            model.geom_size[g, 2] = max(model.geom_size[g, 2], _PLANE_GRID)
        body = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, model.geom_bodyid[g]) or ""
        if body.startswith("object_target_"):
            model.geom_group[g] = 5  # not drawn (groups 0-2 are)
    for name, alpha in _ARM_ALPHA.items():
        mat = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL, name)
        if mat < 0:
            continue
        if name in ("ur5e/robotiq/black", "ur5e/robotiq/pad_gray"):
            model.mat_rgba[mat, :3] = _PURPLE
        if transparent_arm:
            model.mat_rgba[mat, 3] = alpha


class OGBenchCubeEnv(gym.Env):
    """OGBench's ``CubeEnv`` with state observations, ``info["state"]`` and fast frames.

    Args:
        width, height: frame size (square frames only).
        env_type: OGBench's cube count: ``"single"``, ``"double"``, ``"triple"``, ...
        mode: ``"data_collection"`` (random arm, cube and target at every reset, what its
            datasets use) or ``"task"`` (its five fixed evaluation tasks, ``reset(options=
            {"task_id": k})``).
        camera: camera the frames come from.
        mesh_cell: mesh decimation cell in metres (``0``: OGBench's full meshes); by default
            ``MESH_CELL_PIXELS / width``, 3 cm at 64 px, about two pixels of the table: frames
            differ from full meshes by about 1 of 255 levels on average.
        transparent_arm: draw the arm see-through, as OGBench's visual tasks do.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, width: int = 64, height: int = 64, env_type: str = "single",
                 mode: str = "data_collection", camera: str = "front_pixels",
                 mesh_cell: float | None = None, transparent_arm: bool = True) -> None:
        if width != height:
            raise ValueError(f"frames are square; got width {width}, height {height}")
        mesh_cell = MESH_CELL_PIXELS / width if mesh_cell is None else mesh_cell
        if mesh_cell < 0:
            raise ValueError(f"mesh_cell must be >= 0 metres, got {mesh_cell}")
        from ogbench.manipspace.envs.cube_env import CubeEnv

        self.render_mode = "rgb_array"
        self._env = CubeEnv(env_type=env_type, mode=mode, ob_type="states",
                            terminate_at_goal=False, visualize_info=False)
        self._env.reset(seed=0)  # OGBench compiles its model at the first reset
        model = self._env.model
        self.num_cubes = sum(1 for j in range(model.njnt)
                             if model.joint(j).name.startswith("object_joint_"))
        self.state_names = cube_state_names(self.num_cubes)
        self.state_angles = cube_state_angles(self.num_cubes)
        self._state_buffer = np.zeros(len(self.state_names), np.float32)
        arm = [model.joint(f"ur5e/{j}_joint").id for j in ARM_JOINTS]
        self._arm_qpos = model.jnt_qposadr[arm].copy()
        self._arm_dofs = model.jnt_dofadr[arm].copy()
        self._cubes = [model.joint(f"object_joint_{i}").qposadr[0] for i in range(self.num_cubes)]
        self._opening = model.joint(_OPENING_JOINT).qposadr[0]
        self._pinch = model.site(_PINCH_SITE).id
        self.action_space = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (len(self.state_names),),
                                                np.float32)
        self.ogbench_info = False  # OGBench's info keys, computed only when a policy reads them
        self._render_args = (width, camera, mesh_cell, transparent_arm)
        self._physics_steps = self.physics_steps
        self._renderer: SceneRenderer | None = None

    @property
    def ogbench_env(self):
        """The wrapped OGBench env (its oracles and task list need it)."""
        return self._env

    @property
    def physics_steps(self) -> int:
        """Physics steps per control step."""
        return round(self._env.control_timestep() / self._env.physics_timestep())

    def mujoco_model_data(self) -> tuple:
        return self._env.model, self._env.data

    def _state(self) -> np.ndarray:
        data = self._env.data
        out = self._state_buffer
        for k, adr in enumerate(self._cubes):
            out[4 * k:4 * k + 3] = data.qpos[adr:adr + 3]
            out[4 * k + 3] = _yaw(data.qpos[adr + 3:adr + 7])
        c = 4 * len(self._cubes)
        rot = data.site_xmat[self._pinch]  # row-major 3 x 3
        out[c:c + 3] = data.site_xpos[self._pinch]
        out[c + 3] = np.arctan2(rot[3], rot[0])
        out[c + 4] = min(max(data.qpos[self._opening] / 0.8, 0.0), 1.0)
        out[c + 5:c + 11] = data.qpos[self._arm_qpos]
        out[c + 11:c + 17] = data.qvel[self._arm_dofs]
        return out.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        _, info = self._env.reset(seed=seed, options=options)
        state = self._state()
        return state, {**(info if self.ogbench_info else {}), "state": state}

    def step(self, action):
        """OGBench's control step, in its order (``ManipSpaceEnv.step`` with success timing
        "post"), without its state observation, which nothing reads here, and computing its
        info (``ogbench_info``) once instead of three times: ~0.3 ms of a ~2 ms step + frame.
        The physics is tested bit-identical to ``CubeEnv.step`` followed by ``mj_forward``."""
        env, model, data = self._env, self._env.model, self._env.data
        env.set_control(np.asarray(action, np.float64))
        env._prev_qpos, env._prev_qvel = data.qpos.copy(), data.qvel.copy()  # info's prev_*
        mujoco.mj_step(model, data, nstep=self._physics_steps)
        if self.ogbench_info:
            mujoco.mj_rnePostConstraint(model, data)  # contact forces: the gripper's contact
        env.post_step()
        info = {**env.compute_ob_info(), "success": env._success} if self.ogbench_info else {}
        # positions, site poses and contacts of the state reached (mj_step leaves those of its
        # last substep's start): the controller's next input and the state are then functions
        # of the physics state alone, so a restored state continues exactly as the original
        mujoco.mj_forward(model, data)
        state = self._state()
        return (state, float(env.compute_reward()), bool(env.terminate_episode()),
                bool(env.truncate_episode()), {**info, "state": state})

    def restore_state(self, qpos: np.ndarray | None = None, qvel: np.ndarray | None = None,
                      physics_state: np.ndarray | None = None) -> np.ndarray:
        """Joint positions (and velocities, zero when not given), or a full physics vector;
        the new state. ``PixelEnv.restore_state`` checks the arguments."""
        model, data = self._env.model, self._env.data
        if physics_state is None:
            set_joint_state(model, data, qpos, qvel)
        else:
            set_physics_state(model, data, physics_state)
        return self._state()

    # -- OGBench's evaluation tasks (goal source "task") -----------------------------------

    task_budget = 200  # control steps OGBench's evaluation episodes get

    @property
    def evaluation_tasks(self) -> tuple[str, ...]:
        """OGBench's five tasks of this cube count (``task1_horizontal``, ...)."""
        if not hasattr(self, "_tasks"):
            env = self._env
            saved = getattr(env, "task_infos", None)
            env.set_tasks()  # fills env.task_infos (a data_collection env never does)
            self._tasks = list(env.task_infos)
            if saved is not None:
                env.task_infos = saved
        return tuple(t["task_name"] for t in self._tasks)

    def task_start_goal(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        """Full physics states (start, goal) of OGBench task ``task`` (1-based), as its task
        mode draws them: the goal has every cube at its goal position, upright, the arm at a
        random pose, settled by two random actions; the start has the cubes at their initial
        positions (+-1 cm in x and y, random yaw) and the arm at another random pose. Drawn
        from the env's random state (seed it with ``reset``), which the env is left in."""
        self.evaluation_tasks  # noqa: B018  (loads the task list)
        info = self._tasks[task - 1]
        env, rng = self._env, self._env.np_random
        model, data = env.model, env.data
        reset = get_physics_state(model, data)
        env.initialize_arm()
        for i, xyz in enumerate(info["goal_xyzs"]):
            data.qpos[self._cubes[i]:self._cubes[i] + 7] = [*xyz, 1.0, 0.0, 0.0, 0.0]
        mujoco.mj_forward(model, data)
        for _ in range(2):
            self.step(rng.uniform(-1.0, 1.0, 5))
        goal = get_physics_state(model, data)
        set_physics_state(model, data, reset)
        env.initialize_arm()
        for i, xyz in enumerate(info["init_xyzs"]):
            pos = np.asarray(xyz, np.float64) + [*rng.uniform(-0.01, 0.01, 2), 0.0]
            half = rng.uniform(0.0, 2.0 * np.pi) / 2.0
            data.qpos[self._cubes[i]:self._cubes[i] + 7] = [*pos, np.cos(half), 0.0, 0.0,
                                                            np.sin(half)]
        mujoco.mj_forward(model, data)
        start = get_physics_state(model, data)
        set_physics_state(model, data, reset)
        return start, goal

    def episode_outcome(self, states: np.ndarray, goal_state: np.ndarray) -> str:
        """Where a failed episode stopped (:func:`cube_outcome`): the evaluation's failure
        analysis (``RunSummary.outcomes``)."""
        return cube_outcome(states, goal_state, self.state_names)

    def render(self) -> np.ndarray:
        if self._renderer is None:
            size, camera, cell, transparent = self._render_args
            self._renderer = SceneRenderer(self._env.model, size, camera, cell,
                                           restyle=lambda m: _restyle(m, transparent))
        return self._renderer.render(self._env.data)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
