"""The pixel-environment contract, over every registered wm/ id, and the PixelEnv adapter."""

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import WM_ENV_IDS, GoalSpec, PixelEnv, make_pixel_env

ROOT = Path(__file__).resolve().parents[2]


def _rollout(env, seed, actions):
    frames, states = [], []
    obs, info = env.reset(seed=seed)
    frames.append(obs)
    states.append(info["state"])
    for a in actions:
        obs, _, terminated, truncated, info = env.step(a)
        frames.append(obs)
        states.append(info["state"])
        if terminated or truncated:
            break
    return np.stack(frames), np.stack(states)


@pytest.fixture(scope="module", params=WM_ENV_IDS)
def wm_env(request):
    env = make_pixel_env(request.param, image_size=48)
    yield env
    env.close()


def test_registered_ids_are_gymnasium_envs():
    for env_id in WM_ENV_IDS:
        assert env_id in gym.registry and env_id.startswith("wm/")


@pytest.mark.parametrize("env_id", WM_ENV_IDS)
def test_check_env(env_id):
    check_env(make_pixel_env(env_id, image_size=48), skip_render_check=False)  # closes the env


def test_contract_spaces_state_and_goal(wm_env):
    assert wm_env.observation_space == gym.spaces.Box(0, 255, (48, 48, 3), np.uint8)
    assert np.all(wm_env.action_space.low == -1) and np.all(wm_env.action_space.high == 1)
    obs, info = wm_env.reset(seed=0)
    assert obs.dtype == np.uint8 and obs.shape == (48, 48, 3)
    state = info["state"]
    assert state.dtype == np.float32 and state.shape == (wm_env.state_dim,)
    assert len(wm_env.state_names) == wm_env.state_dim and np.all(np.isfinite(state))
    assert isinstance(wm_env.goal, GoalSpec) and max(wm_env.goal.indices) < wm_env.state_dim


def test_deterministic_under_seed_and_frames_change(wm_env):
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (15, *wm_env.action_space.shape)).astype(np.float32)
    frames_a, states_a = _rollout(wm_env, 7, actions)
    frames_b, states_b = _rollout(wm_env, 7, actions)
    np.testing.assert_array_equal(frames_a, frames_b)
    np.testing.assert_array_equal(states_a, states_b)
    assert np.all(np.isfinite(states_a))
    moved = [not np.array_equal(frames_a[0], f) for f in frames_a[1:]]
    assert sum(moved) >= len(moved) // 2, "frames should change as the robot moves"
    frames_c, _ = _rollout(wm_env, 8, actions)
    assert not np.array_equal(frames_a[0], frames_c[0]), "another seed, another start"


class _Recorder(gym.Env):
    """A non-MuJoCo env: Box actions in [0, 10], 20x10 frames, observation = last action."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012

    def __init__(self, render_mode="rgb_array", action_space=None):
        self.render_mode = render_mode
        self.action_space = action_space or gym.spaces.Box(0.0, 10.0, (2,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.received, self._x = [], np.zeros(2, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._x = self.np_random.uniform(0, 10, 2).astype(np.float32)
        return self._x.copy(), {}

    def step(self, action):
        self.received.append(np.array(action))
        self._x = np.asarray(action, np.float32)
        return self._x.copy(), 1.0, False, False, {}

    def render(self):
        frame = np.zeros((20, 10, 3), np.uint8)
        frame[..., 0] = int(self._x[0] * 25)
        return frame


def test_adapter_rescales_actions_repeats_and_resizes():
    inner = _Recorder()
    env = PixelEnv(inner, image_size=16, action_repeat=3)
    obs, info = env.reset(seed=0)
    assert obs.shape == (16, 16, 3)
    assert env.state_names == ["obs[0]", "obs[1]"]
    _, reward, _, _, info = env.step(np.array([-1.0, 0.5], np.float32))
    assert reward == 3.0 and len(inner.received) == 3
    np.testing.assert_allclose(inner.received[-1], [0.0, 7.5])
    np.testing.assert_allclose(info["state"], [0.0, 7.5])
    env.step(np.array([5.0, -9.0], np.float32))  # out of range: clipped to the bounds
    np.testing.assert_allclose(inner.received[-1], [10.0, 0.0])
    with pytest.raises(ValueError, match="action shape"):
        env.step(np.zeros(3, np.float32))


def test_adapter_on_a_gymnasium_mujoco_id_uses_qpos_qvel():
    env = PixelEnv("InvertedPendulum-v5", image_size=24)
    try:
        obs, info = env.reset(seed=1)
        assert obs.shape == (24, 24, 3)
        assert env.state_names == ["slider_pos", "hinge_pos", "slider_vel", "hinge_vel"]
        np.testing.assert_allclose(info["state"][:2], env.env.unwrapped.data.qpos, rtol=1e-6)
    finally:
        env.close()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"action_space": gym.spaces.Discrete(3)}, TypeError, "continuous Box"),
    ({"action_space": gym.spaces.Box(-np.inf, np.inf, (2,))}, ValueError, "finite"),
    ({"render_mode": None}, ValueError, "render_mode='rgb_array'"),
])
def test_adapter_rejects_unsupported_envs(kwargs, error, match):
    with pytest.raises(error, match=match):
        PixelEnv(_Recorder(**kwargs))


def test_adapter_rejects_bad_options():
    with pytest.raises(ValueError, match="goal indices"):
        PixelEnv(_Recorder(), goal={"indices": [5], "tolerance": 0.1})
    with pytest.raises(ValueError, match="action_repeat"):
        PixelEnv(_Recorder(), action_repeat=0)
    with pytest.raises(ValueError, match="unknown env id 'NoSuchEnv-v0'"):
        make_pixel_env("NoSuchEnv-v0")


def test_goal_spec_distance_wraps_angles():
    goal = GoalSpec(indices=(0, 1), tolerance=0.05, angular=(True, False))
    a = np.array([np.pi - 0.01, 0.0, 9.0])
    b = np.array([-np.pi + 0.01, 0.03, -9.0])
    assert goal.distance(a, b) == pytest.approx(0.03)
    assert goal.success(a, b)
    l2 = GoalSpec(indices=(0, 1), tolerance=0.02, norm="l2")
    assert l2.distance(np.array([0.0, 0.0]), np.array([0.03, 0.04])) == pytest.approx(0.05)
    assert GoalSpec.from_dict(goal.to_dict()) == goal
    with pytest.raises(ValueError, match="sample_low"):
        GoalSpec(indices=(0,), tolerance=0.1, source="state_sampler")
    with pytest.raises(ValueError, match="unknown GoalSpec keys"):
        GoalSpec.from_dict({"indices": [0], "tolerance": 0.1, "tol": 1})


def test_render_options_change_pixels_not_physics():
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 2))
    stock = _rollout(make_pixel_env("wm/reacher-v0", 32), 4, actions)
    drawn = _rollout(make_pixel_env("wm/reacher-v0", 32, env_kwargs={
        "geom_radius": {"arm": 0.02, "hand": 0.02}, "invisible_geoms": ["target"]}), 4, actions)
    np.testing.assert_array_equal(stock[1], drawn[1])  # same states
    assert not np.array_equal(stock[0], drawn[0])  # other frames
    with pytest.raises(ValueError, match="no geom named 'elbow' to thicken"):
        make_pixel_env("wm/reacher-v0", 32, env_kwargs={"geom_radius": {"elbow": 0.02}})


def test_thickening_a_contact_geom_is_refused():
    from envs.dmc import DMControlEnv

    with pytest.raises(ValueError, match="takes part in contacts"):
        DMControlEnv("ball_in_cup", "catch", geom_radius={"ball": 0.1})


def _record(env, seed, steps):
    """Frame, ``info["state"]``, full physics vector and (qpos, qvel) after ``steps`` steps."""
    frame, info = env.reset(seed=seed)
    for a in np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape)):
        frame, _, _, _, info = env.step(a)
    _, data = env.mujoco_model_data()
    return frame.copy(), info["state"], env.physics_state(), (data.qpos.copy(), data.qvel.copy())


def _wander(env, seed):
    for a in np.random.default_rng(seed).uniform(-1, 1, (5, *env.action_space.shape)):
        env.step(a)  # (no reset: reacher's target is drawn there, outside the physics state)


@pytest.mark.parametrize("steps", [0, 6])
def test_restoring_a_recorded_state_gives_its_frame_and_state_bit_for_bit(wm_env, steps):
    assert wm_env.can_restore_state
    frame, state, physics, (qpos, qvel) = _record(wm_env, 3, steps)
    _wander(wm_env, 9)
    assert not np.array_equal(wm_env.render(), frame)
    restored = wm_env.restore_state(physics_state=physics)
    assert wm_env.render() is None  # nothing rendered yet: no stale frame
    assert restored.dtype == np.float32
    np.testing.assert_array_equal(restored, state)
    np.testing.assert_array_equal(wm_env.physics_state(), physics)
    # gymnasium renders a step's frame before its last physics substep moved the bodies (by
    # ~1e-5 here); dm_control steps and every reset, as restore_state, render the state itself
    exact = steps == 0 or not wm_env.env_id.startswith("wm/gym-")
    rendered = wm_env.render_frame()
    np.testing.assert_array_equal(wm_env.render(), rendered)
    if exact:
        np.testing.assert_array_equal(rendered, frame)
    _wander(wm_env, 10)
    np.testing.assert_array_equal(wm_env.restore_state(qpos, qvel), state)  # joint form
    np.testing.assert_array_equal(wm_env.render_frame(), rendered)


def test_a_restored_physics_state_continues_as_the_original(wm_env):
    *_, physics, _ = _record(wm_env, 1, 5)
    actions = np.random.default_rng(2).uniform(-1, 1, (10, *wm_env.action_space.shape))
    original = [wm_env.step(a)[4]["state"] for a in actions]
    wm_env.restore_state(physics_state=physics)
    np.testing.assert_array_equal([wm_env.step(a)[4]["state"] for a in actions], original)


def test_restoring_positions_alone_puts_the_robot_at_rest(wm_env):
    _, state, _, (qpos, qvel) = _record(wm_env, 5, 4)
    restored = wm_env.restore_state(qpos)
    _, data = wm_env.mujoco_model_data()
    np.testing.assert_array_equal(data.qpos, qpos)
    assert np.all(data.qvel == 0)
    nq = len(qpos)
    if wm_env.state_dim == nq + len(qvel):  # info["state"] is qpos then qvel
        np.testing.assert_array_equal(restored[:nq], state[:nq])
        assert np.all(restored[nq:] == 0)


def test_restore_state_checks_its_arguments(wm_env):
    wm_env.reset(seed=0)
    qpos = wm_env.mujoco_model_data()[1].qpos.copy()
    with pytest.raises(ValueError, match="qpos .* or physics_state"):
        wm_env.restore_state(qpos, physics_state=wm_env.physics_state())
    with pytest.raises(ValueError, match="qpos .* or physics_state"):
        wm_env.restore_state()
    with pytest.raises(ValueError, match=rf"{wm_env.env_id}: qpos must have shape"):
        wm_env.restore_state(np.zeros(len(qpos) + 1))
    with pytest.raises(ValueError, match="physics_state must have shape"):
        wm_env.restore_state(physics_state=np.zeros(3))


def test_physics_steps_per_step_is_how_far_one_step_advances_the_simulation():
    for env_id in ("wm/reacher-v0", "wm/gym-inverted_pendulum-v5"):
        env = make_pixel_env(env_id, 32, action_repeat=2)
        env.reset(seed=0)
        model, data = env.mujoco_model_data()
        before = data.time
        env.step(np.zeros(env.action_space.shape, np.float32))
        assert data.time - before == pytest.approx(env.physics_steps_per_step * model.opt.timestep)
        single = make_pixel_env(env_id, 32)
        assert env.physics_steps_per_step == 2 * single.physics_steps_per_step
        env.close()
        single.close()


def test_envs_that_cannot_restore_their_state_say_so():
    plain = PixelEnv(_Recorder())
    assert plain.mujoco_model_data() is None and plain.physics_steps_per_step is None
    assert not plain.can_restore_state
    with pytest.raises(TypeError, match="_Recorder: restore_state needs a MuJoCo env"):
        plain.restore_state(np.zeros(2))
    with pytest.raises(TypeError, match="not a MuJoCo env"):
        plain.physics_state()
    observed = PixelEnv("InvertedPendulum-v5", 24, state="observation")  # MuJoCo, other state
    try:
        assert observed.mujoco_model_data() is not None and not observed.can_restore_state
        with pytest.raises(TypeError, match="InvertedPendulum-v5: .* source is 'observation'"):
            observed.restore_state(np.zeros(2))
    finally:
        observed.close()


def test_state_angles_of_a_plugin_env_are_checked_and_kept():
    class WithAngles(_Recorder):
        state_names = ("x", "yaw")

        def __init__(self, angles):
            super().__init__()
            self.state_angles = angles

    assert PixelEnv(WithAngles({"yaw": 4}), image_size=8).state_angles == {"yaw": 4}
    assert PixelEnv(WithAngles(None), image_size=8).state_angles == {}
    with pytest.raises(ValueError, match=r"names \['heading'\], which are not in state_names"):
        PixelEnv(WithAngles({"heading": 4}), image_size=8)
    with pytest.raises(ValueError, match="integers >= 1"):
        PixelEnv(WithAngles({"yaw": 0.5}), image_size=8)


def test_importing_envs_registers_the_wm_ids_with_gymnasium(tmp_path):
    """The Gymnasium convention: ``import envs`` registers its ids (string entry points, no
    simulator loaded), and ``gym.make("envs:wm/...")`` imports the package itself."""
    import subprocess
    import sys

    code = ("import os, sys, gymnasium as gym\n"
            "os.environ.pop('MUJOCO_GL', None)\n"
            "import envs\n"
            "assert os.environ['MUJOCO_GL'] == 'egl'\n"
            "assert not {'mujoco', 'dm_control'} & set(sys.modules), 'registering loaded MuJoCo'\n"
            "env = gym.make('wm/reacher-v0', image_size=16)\n"
            "frame, info = env.reset(seed=0)\n"
            "print(frame.shape, info['state'].shape)\n")
    other = ("import gymnasium as gym\n"
             "env = gym.make('envs:wm/point_mass-v0', image_size=16)\n"
             "print(env.reset(seed=0)[0].shape)\n")
    root = Path(__file__).resolve().parents[2]
    for source, want in ((code, "(16, 16, 3) (4,)"), (other, "(16, 16, 3)")):
        done = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, text=True, check=False,
                              capture_output=True, env={**os.environ, "PYTHONPATH": str(root)})
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == want
