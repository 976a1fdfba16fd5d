"""wm/cube-single-v0: OGBench's physics untouched, fast decimated frames, hidden goal marker,
its state, and OGBench's scripted oracles as collection policies."""

import numpy as np
import pytest

from envs.lowpoly import cluster_mesh
from envs.ogbench_cube import OGBenchCubeEnv
from envs.policies import make_policy
from envs.registry import make_pixel_env
from envs.rollouts import collect_episode, episode_buffers


@pytest.fixture(scope="module")
def cube():
    env = make_pixel_env("wm/cube-single-v0", image_size=64)
    yield env
    env.close()


def _actions(n, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 5)).astype(np.float32)


def test_rendering_leaves_the_physics_of_ogbench_step_then_mj_forward_bit_identical(cube):
    import mujoco
    from ogbench.manipspace.envs.cube_env import CubeEnv

    raw = CubeEnv(env_type="single", mode="data_collection", ob_type="states",
                  terminate_at_goal=False, visualize_info=False)
    raw.reset(seed=11)
    cube.reset(seed=11)
    _, data = cube.mujoco_model_data()
    for a in _actions(30):
        cube.step(a)  # renders every step from the decimated copy
        raw.step(a.astype(np.float64))
        mujoco.mj_forward(raw.model, raw.data)  # the one documented addition (module docstring)
        np.testing.assert_array_equal(data.qpos, raw.data.qpos)
        np.testing.assert_array_equal(data.qvel, raw.data.qvel)
    assert data.time > 0


def test_decimated_frames_match_full_meshes_at_a_fraction_of_the_triangles():
    fast, full = OGBenchCubeEnv(64, 64), OGBenchCubeEnv(64, 64, mesh_cell=0.0)
    frames = {}
    for name, env in (("fast", fast), ("full", full)):
        env.reset(seed=4)
        frames[name] = [env.render()]
        for a in _actions(10, 1):
            env.step(a)
            frames[name].append(env.render())
    assert full._renderer.faces > 20 * fast._renderer.faces
    diff = np.abs(np.stack(frames["fast"]).astype(int) - np.stack(frames["full"]).astype(int))
    assert diff.mean() < 2.0, diff.mean()  # of 255 levels, averaged over pixels
    assert (diff.max(-1) > 32).mean() < 0.02  # fewer than 2% of pixels visibly off
    fast.close()
    full.close()


def test_the_goal_marker_is_not_drawn(cube):
    cube.reset(seed=2)
    before = cube.render_frame()
    _, data = cube.mujoco_model_data()
    data.mocap_pos[:] = data.qpos[14:17] + [0.05, 0.05, 0.0]  # marker next to the cube
    np.testing.assert_array_equal(cube.render_frame(), before)


def test_state_names_and_values(cube):
    _, info = cube.reset(seed=3)
    names, state = cube.state_names, info["state"]
    assert names[:4] == ["cube_x", "cube_y", "cube_z", "cube_yaw"] and len(names) == 21
    _, data = cube.mujoco_model_data()
    np.testing.assert_allclose(state[:3], data.qpos[14:17], atol=1e-6)
    assert state[2] == pytest.approx(0.02, abs=1e-3)  # resting on the table
    assert 0.0 <= state[names.index("gripper_opening")] <= 1.0
    assert cube.goal.indices == (0, 1, 2) and cube.goal.tolerance == 0.04
    assert cube.goal.norm == "l2"
    # one-colour cube: its yaw repeats every 90 degrees; the two-finger gripper's every 180
    assert cube.state_angles == {"cube_yaw": 4, "effector_yaw": 2, "wrist_3_pos": 2}


def test_cluster_mesh_keeps_shape_and_drops_triangles():
    n = 41  # a 1 m x 1 m grid of 2.5 cm squares, two triangles each
    xs, ys = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    verts = np.column_stack([xs.ravel(), ys.ravel(), np.zeros(n * n)])
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            v00, v01, v10, v11 = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [(v00, v01, v10), (v01, v11, v10)]
    faces = np.array(faces)
    normals = np.tile([0.0, 0.0, 1.0], (n * n, 1))
    pos, nrm, tri = cluster_mesh(verts, normals, faces, 0.1)
    assert len(tri) < len(faces) / 10 and len(pos) < len(verts) / 10
    assert np.all(pos[:, 2] == 0) and np.allclose(nrm, [0, 0, 1])  # still the same plane
    assert pos[:, :2].min() < 0.05 and pos[:, :2].max() > 0.95  # and the same extent
    assert tri.max() < len(pos) and len({tuple(sorted(t)) for t in tri}) == len(tri)
    with pytest.raises(ValueError, match="cell must be > 0"):
        cluster_mesh(verts, normals, faces, 0.0)


@pytest.mark.parametrize("name", ["ogbench_plan", "ogbench_markov"])
def test_ogbench_oracles_pick_up_the_cube_reproducibly(cube, name):
    runs = []
    for _ in range(2):
        policy = make_policy(name, 5, {}, cube)
        out = episode_buffers(cube, 301)
        collect_episode(cube, policy, 0, 1, 300, out)
        runs.append(out["states"])
    np.testing.assert_array_equal(runs[0], runs[1])
    z = runs[0][:, 2]
    assert z.max() > 0.06, "the oracle lifts the cube off the table"


def test_oracles_refuse_other_envs():
    env = make_pixel_env("wm/point_mass-v0", image_size=16)
    with pytest.raises(TypeError, match="OGBench cube envs"):
        make_policy("ogbench_plan", 5, {}, env)
    with pytest.raises(ValueError, match="give make_policy the env"):
        make_policy("ogbench_markov", 5, {})
    env.close()


def test_the_step_simulator_rolls_out_exactly_what_the_env_does(cube):
    from envs.simulator import MujocoSimulator, simulator_for

    assert MujocoSimulator.from_env(cube) is None  # actions go through OGBench's IK controller
    sims, reason = simulator_for([cube], lambda: make_pixel_env("wm/cube-single-v0", 64))
    assert reason == "" and len(sims) == 1
    cube.reset(seed=5)
    snapshot = sims[0].snapshot()
    actions = np.stack([_actions(4, 7), _actions(4, 8)])[None]  # (B=1, N=2, T=4, A)
    states = sims[0].rollout(snapshot[None], actions)
    assert states.shape == (1, 2, 4, cube.state_dim)
    for n in range(2):
        cube.restore_state(physics_state=snapshot)
        for t in range(4):
            _, _, _, _, info = cube.step(actions[0, n, t])
            np.testing.assert_array_equal(states[0, n, t], info["state"])
    assert not np.array_equal(states[0, 0], states[0, 1])
    sims[0].close()


def test_the_collect_cli_writes_an_oracle_cube_dataset(tmp_path, capsys):
    from envs.dataset import PixelDataset
    from worldmodel.app.collect import main

    out = tmp_path / "cube"
    assert main(["--out", str(out), "--env", "wm/cube-single-v0", "--policy", "ogbench_plan",
                 "--episodes", "2", "--steps", "30", "--workers", "1",
                 "--episodes-per-shard", "1", "--no-progress"]) == 0
    assert "dataset complete" in capsys.readouterr().out
    data = PixelDataset(out)
    assert data.meta.policy["name"] == "ogbench_plan" and data.has_physics
    assert data.meta.state_angles["cube_yaw"] == 4  # the state probe reads it mod 90 deg
    ep = data.episode(1)
    assert ep["pixels"].shape == (31, 64, 64, 3) and ep["physics"].shape[0] == 31
    assert np.abs(np.diff(ep["states"][:, 4:7], axis=0)).sum() > 0.05  # the arm moved


def test_a_failed_cube_episode_is_told_by_where_it_stopped():
    from envs.cube_states import cube_outcome, cube_state_names

    names = cube_state_names(1)
    goal = np.zeros(len(names))
    goal[:3] = [0.5, 0.2, 0.02]  # cube x, y, z at the goal

    def episode(cube_xyz, effector_xyz):
        states = np.zeros((len(cube_xyz), len(names)))
        states[:, :3], states[:, 4:7] = cube_xyz, effector_xyz
        return states

    rest, above = [0.3, 0.0, 0.02], [0.3, 0.0, 0.2]
    assert cube_outcome(episode([rest] * 3, [above] * 3), goal, names) == "never reached the cube"
    pushed = [rest, [0.32, 0.0, 0.02], [0.36, 0.0, 0.02]]
    assert cube_outcome(episode(pushed, [above, rest, rest]), goal, names) == \
        "reached, never lifted"
    lifted = [rest, [0.3, 0.0, 0.1], [0.4, 0.1, 0.02]]  # up, then down off the goal
    assert cube_outcome(episode(lifted, [rest] * 3), goal, names) == \
        "lifted, put down off the goal"
    held = [rest, [0.3, 0.0, 0.1], [0.45, 0.2, 0.1]]
    assert cube_outcome(episode(held, [rest] * 3), goal, names) == "lifted, held off the goal"


def test_cube_episodes_get_outcomes_in_a_closed_loop_evaluation(cube):
    from planners.evaluate import ClosedLoopConfig, RandomAgent, run_episodes
    from planners.goal_sources import goal_pairs
    from planners.results import RunSummary

    assert cube.classifies_episodes
    pairs = goal_pairs(cube, cube.goal, ClosedLoopConfig(episodes=2, goal_source="task"))
    floor = RandomAgent(5)
    rows = run_episodes([cube], pairs, cube.goal, 4,
                        lambda envs, batch, frames: (floor.reset(1, batch[0].seed), floor)[1],
                        "floor", progress=False)
    summary = RunSummary.from_rows(rows)
    assert summary.outcomes == {"never reached the cube": 2}  # 4 random steps reach nothing
