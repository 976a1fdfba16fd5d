"""Collection: dataset layout, determinism, resume, crash safety, clear errors."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from envs.collect import CollectConfig, EnvConfig, collect_rollouts, episode_seeds
from envs.dataset import DatasetError, PixelDataset
from envs.policies import OUNoisePolicy, UniformRandomPolicy, make_policy
from envs.registry import make_pixel_env
from worldmodel.app.collect import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"episodes": 4, "episode_steps": 8, "episodes_per_shard": 2, "workers": 1, "seed": 5}


def _collect(root, env=None, **kw):
    return collect_rollouts(root, env or EnvConfig(image_size=24),
                            CollectConfig(**{**SMALL, **kw}), progress=False)


def _arrays(root):
    data = PixelDataset(root)
    return {(k, name): np.array(s.array(name)) for k, s in enumerate(data.shards)
            for name in ("pixels", "actions", "states", "rewards", "episodes")}


def test_dataset_layout_and_contents(tiny_dataset):
    data = PixelDataset(tiny_dataset)
    meta = data.meta
    assert meta.env.id == "wm/reacher-v0" and meta.num_shards == 3
    assert meta.complete and meta.num_frames == data.num_frames == 6 * 21
    assert meta.state_names[:2] == ["shoulder_pos", "wrist_pos"]
    assert meta.goal.tolerance == 0.05 and "mujoco" in meta.versions
    episodes = data.episodes()
    assert sorted(episodes[:, 0]) == list(range(6)) and np.all(episodes[:, 3] == 21)
    ep = data.episode(4)
    assert ep["pixels"].dtype == np.uint8 and ep["pixels"].shape == (21, 32, 32, 3)
    assert np.all(np.isnan(ep["actions"][-1])) and np.all(np.isfinite(ep["actions"][:-1]))
    assert np.all(np.abs(ep["actions"][:-1]) <= 1)
    # the stored episode replays exactly in a fresh env from its seed and actions
    env = make_pixel_env("wm/reacher-v0", image_size=32)
    pixels, info = env.reset(seed=episode_seeds(meta.seed, 4)[0])
    np.testing.assert_array_equal(pixels, ep["pixels"][0])
    for t in range(20):
        pixels, _, _, _, info = env.step(ep["actions"][t])
    np.testing.assert_array_equal(pixels, ep["pixels"][-1])
    np.testing.assert_array_equal(info["state"], ep["states"][-1])
    env.close()
    data.verify()


def test_every_frame_records_the_physics_state_that_restores_it(tiny_dataset):
    data = PixelDataset(tiny_dataset)
    assert data.has_physics and "physics" in data.arrays()
    ep = data.episode(2)
    env = make_pixel_env("wm/reacher-v0", image_size=32)
    assert data.meta.physics_dim == ep["physics"].shape[1] == env.physics_state().shape[0]
    env.reset(seed=episode_seeds(data.meta.seed, 2)[0])  # reacher's target is drawn there
    for t in (0, 7, 20):
        state = env.restore_state(physics_state=ep["physics"][t])
        np.testing.assert_array_equal(state, ep["states"][t])
        np.testing.assert_array_equal(env.render_frame(), ep["pixels"][t])
    env.close()


def test_datasets_collected_before_physics_was_recorded_still_load(tiny_dataset, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_dataset, old)
    meta = json.loads((old / "meta.json").read_text())
    del meta["physics_dim"]
    (old / "meta.json").write_text(json.dumps(meta))
    for shard in old.glob("shard-*"):
        (shard / "physics.npy").unlink()
        info = json.loads((shard / "shard.json").read_text())
        del info["files"]["physics"]
        (shard / "shard.json").write_text(json.dumps(info))
    data = PixelDataset(old)
    assert not data.has_physics and set(data.episode(1)) == {"pixels", "actions", "states",
                                                              "rewards"}
    data.verify()


def test_same_seed_same_data_whatever_the_workers(tmp_path):
    _collect(tmp_path / "one", workers=1)
    result = _collect(tmp_path / "two", workers=2)
    assert result.complete and result.shards_written == [0, 1]
    one, two = _arrays(tmp_path / "one"), _arrays(tmp_path / "two")
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], two[key], err_msg=str(key))
    _collect(tmp_path / "other", seed=6)
    assert not np.array_equal(_arrays(tmp_path / "other")[(0, "pixels")], one[(0, "pixels")])


def test_array_jobs_write_disjoint_shards_and_resume(tmp_path):
    cfg = CollectConfig(**{**SMALL, "episodes": 6})
    first = collect_rollouts(tmp_path / "d", EnvConfig(image_size=24), cfg, shard=(1, 2),
                             progress=False)
    assert first.shards_written == [1] and not first.complete
    with pytest.raises(DatasetError, match="incomplete.*shard-00000"):
        PixelDataset(tmp_path / "d")
    assert len(PixelDataset(tmp_path / "d", allow_incomplete=True).shards) == 1
    stale = tmp_path / "d" / ".shard-00000.tmp-killed"
    stale.mkdir()
    (stale / "pixels.npy").write_bytes(b"half a shard")
    rest = collect_rollouts(tmp_path / "d", EnvConfig(image_size=24), cfg, progress=False)
    assert rest.shards_written == [0, 2] and rest.shards_skipped == [1] and rest.complete
    assert not stale.exists()
    again = collect_rollouts(tmp_path / "d", EnvConfig(image_size=24), cfg, progress=False)
    assert again.shards_written == [] and again.frames == 0
    fresh = collect_rollouts(tmp_path / "f", EnvConfig(image_size=24), cfg, progress=False)
    assert fresh.complete
    a, b = _arrays(tmp_path / "d"), _arrays(tmp_path / "f")
    for key in b:
        np.testing.assert_array_equal(a[key], b[key], err_msg=str(key))


def test_killed_collector_leaves_only_complete_shards_and_resumes(tmp_path):
    out = tmp_path / "d"
    cmd = [sys.executable, "-m", "worldmodel.app", "collect", "--out", str(out), "--episodes", "40",
           "--steps", "30", "--episodes-per-shard", "2", "--image-size", "24", "--workers", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "shard-00001").exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    visible = sorted(p.name for p in out.glob("shard-*"))
    assert 1 <= len(visible) < 20
    partial = PixelDataset(out, allow_incomplete=True)
    assert sorted(s.path.name for s in partial.shards) == visible
    for shard in partial.shards:  # every visible shard is whole
        shard.verify()
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False).returncode == 0
    data = PixelDataset(out)
    assert data.num_episodes == 40 and sorted(data.episodes()[:, 0]) == list(range(40))
    assert not list(out.glob(".shard-*"))
    data.verify()


def _start_collector(out, workers, wait_for="shard-00001", **popen):
    """A long collection in a subprocess, returned once ``wait_for`` exists in ``out``."""
    cmd = [sys.executable, "-m", "worldmodel.app", "collect", "--out", str(out), "--episodes", "400",
           "--steps", "50", "--episodes-per-shard", "2", "--image-size", "16", "--workers",
           str(workers), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, **({"stdout": subprocess.DEVNULL,
                                              "stderr": subprocess.DEVNULL} | popen))
    deadline = time.time() + 60
    while not (out / wait_for).exists() and time.time() < deadline:
        time.sleep(0.05)
    return cmd, proc


def _children(pid):
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in done.stdout.split()]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")  # a zombie (exited, not yet reaped) counts as gone
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_stop_when_the_collector_is_killed(tmp_path, sig):
    out = tmp_path / "d"
    _, proc = _start_collector(out, 2)
    workers = _children(proc.pid)
    assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
    proc.send_signal(sig)
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers if _alive(p)], "workers outlived the collector"
    assert len(list(out.glob("shard-*"))) < 200  # they did not collect on to the end


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_stops_collection_with_one_message_and_it_resumes(tmp_path, workers):
    out = tmp_path / "d"
    _, proc = _start_collector(out, workers, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and "rerun the same command to resume" in err
    partial = PixelDataset(out, allow_incomplete=True)
    for shard in partial.shards:  # what was kept is whole
        shard.verify()


def test_mismatched_settings_are_refused(tmp_path):
    _collect(tmp_path / "d")
    with pytest.raises(DatasetError, match="episode_steps: on disk 8, requested 9"):
        _collect(tmp_path / "d", episode_steps=9)
    with pytest.raises(DatasetError, match="other settings.*env"):
        _collect(tmp_path / "d", env=EnvConfig(image_size=32))


def test_corrupt_files_give_errors_naming_the_file(tmp_path):
    root = tmp_path / "d"
    _collect(root)
    pixels = root / "shard-00001" / "pixels.npy"
    pixels.write_bytes(pixels.read_bytes()[:1000])
    data = PixelDataset(root)
    with pytest.raises(DatasetError, match=r"shard-00001/pixels\.npy is corrupt"):
        data.shards[1].array("pixels")
    states = root / "shard-00000" / "states.npy"
    arr = np.load(states)
    arr[0, 0] += 1
    np.save(states, arr)
    with pytest.raises(DatasetError, match=r"shard-00000/states\.npy fails its checksum"):
        PixelDataset(root).shards[0].verify()
    info = json.loads((root / "shard-00000" / "shard.json").read_text())
    info["files"]["actions"]["shape"] = [3, 2]
    (root / "shard-00000" / "shard.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"shard-00000/actions\.npy has shape \[3, 2\]"):
        PixelDataset(root)
    (root / "meta.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"meta\.json is corrupt"):
        PixelDataset(root)
    shutil.rmtree(root)
    with pytest.raises(DatasetError, match="not a dataset directory"):
        PixelDataset(root)


def test_policies_are_seeded_and_ou_is_correlated():
    ou, uniform = OUNoisePolicy(2, rho=0.9), UniformRandomPolicy(2)
    runs = []
    for policy in (ou, uniform, ou):
        policy.reset(11)
        runs.append(np.stack([policy.act(None, {}) for _ in range(2000)]))
    np.testing.assert_array_equal(runs[0], runs[2])
    lag1 = [np.corrcoef(r[:-1, 0], r[1:, 0])[0, 1] for r in runs[:2]]
    assert lag1[0] > 0.8 and abs(lag1[1]) < 0.1
    assert np.all(np.abs(runs[0]) <= 1)
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("greedy", 2)
    with pytest.raises(ValueError, match="rejected its arguments"):
        make_policy("ou", 2, {"sigma": 1})


def test_ou_policy_takes_one_std_per_action_entry():
    policy = make_policy("ou", 2, {"std": [0.5, 0.1]})
    policy.reset(0)
    actions = np.stack([policy.act(None, {}) for _ in range(5000)])
    np.testing.assert_allclose(actions.std(0), [0.5, 0.1], rtol=0.15)
    with pytest.raises(ValueError, match="one number or 2"):
        OUNoisePolicy(2, std=[0.5, 0.1, 0.2])
    with pytest.raises(ValueError, match="must be > 0"):
        OUNoisePolicy(2, std=[0.5, 0.0])


class ConstantPolicy:
    """A plug-in policy class (used as 'test_collect:ConstantPolicy')."""

    def __init__(self, action_dim, value=0.5):
        self.action_dim, self.value = action_dim, value

    def reset(self, seed):
        pass

    def act(self, pixels, info):
        assert pixels.dtype == np.uint8 and "state" in info
        return np.full(self.action_dim, self.value, np.float32)


def test_plug_in_policy_by_module_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    _collect(tmp_path / "d", policy="test_collect:ConstantPolicy",
             policy_kwargs={"value": -0.25})
    actions = PixelDataset(tmp_path / "d").episode(0)["actions"][:-1]
    assert np.all(actions == -0.25)


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "d"), "--episodes", "2", "--steps", "4",
                 "--image-size", "16", "--workers", "1", "--no-progress"]) == 0
    assert "dataset complete" in capsys.readouterr().out
    assert main(["--out", str(tmp_path / "d"), "--episodes", "3", "--steps", "4",
                 "--image-size", "16", "--no-progress"]) == 2
    assert "num_episodes: on disk 2, requested 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "e"), "--shard", "1-of-2"])
    assert main(["--out", str(tmp_path / "e"), "--shard", "2/2", "--no-progress"]) == 2


def test_ensure_dataset_collects_once_and_refuses_other_settings(tmp_path):
    from envs.collect import ensure_dataset

    env, cfg = EnvConfig(image_size=24), CollectConfig(**SMALL)
    path = ensure_dataset(tmp_path / "d", env, cfg, progress=False)
    stamp = (path / "shard-00000" / "pixels.npy").stat().st_mtime_ns
    assert ensure_dataset(tmp_path / "d", env, cfg, progress=False) == path
    assert (path / "shard-00000" / "pixels.npy").stat().st_mtime_ns == stamp  # not recollected
    with pytest.raises(DatasetError, match="num_episodes: on disk 4, requested 40"):
        ensure_dataset(tmp_path / "d", env, CollectConfig(**{**SMALL, "episodes": 40}),
                       progress=False)


def test_slurm_array_tasks_collect_shards_that_read_as_one_dataset(tmp_path, monkeypatch,
                                                                   capsys):
    args = ["--out", str(tmp_path / "array"), "--episodes", "6", "--steps", "8",
            "--episodes-per-shard", "1", "--image-size", "24", "--workers", "1", "--seed", "5",
            "--no-progress"]
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")  # --array=1-2: tasks 1 and 2 of 2
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    for task, shards in (("2", [1, 3, 5]), ("1", [0, 2, 4])):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        assert main(args) == 0
        assert f"wrote {len(shards)} shards" in capsys.readouterr().out
        written = sorted(int(p.name[-5:]) for p in (tmp_path / "array").glob("shard-*"))
        assert set(shards) <= set(written)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    assert main([*args[:1], str(tmp_path / "one"), *args[2:]]) == 0
    array, one = PixelDataset(tmp_path / "array"), PixelDataset(tmp_path / "one")
    assert array.meta.complete and array.num_episodes == 6
    for e in range(6):  # the same episodes, whichever task wrote them
        for name, value in one.episode(e).items():
            np.testing.assert_array_equal(array.episode(e)[name], value, err_msg=name)


def test_ranks_other_than_zero_wait_for_the_dataset(tmp_path, monkeypatch):
    import threading

    import envs.collect
    from envs.collect import ensure_dataset

    def not_on_this_rank(*args, **kwargs):
        raise AssertionError("rank 1 collected")

    env, cfg = EnvConfig(image_size=24), CollectConfig(**SMALL)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(envs.collect, "collect_rollouts", not_on_this_rank)
    rank0 = threading.Timer(0.3, collect_rollouts, (tmp_path / "d", env, cfg),  # the original
                            {"progress": False})
    rank0.start()
    assert ensure_dataset(tmp_path / "d", env, cfg, progress=False, poll_seconds=0.05)
    rank0.join()
    assert PixelDataset(tmp_path / "d").meta.complete


def test_a_second_collector_on_the_same_shards_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "d"
    cmd, first = _start_collector(out, 1, wait_for="shard-00000")
    try:
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        assert second.returncode == 2
        assert f"is in use by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the lock of a collector that died is taken over: a resume runs
    other = tmp_path / "e"
    other.mkdir()
    (other / ".collect-0-of-1.lock").write_text(f"{__import__('socket').gethostname()} 999999")
    small = [sys.executable, "-m", "worldmodel.app", "collect", "--out", str(other), "--episodes", "4",
             "--steps", "5", "--episodes-per-shard", "2", "--image-size", "16", "--workers",
             "1", "--no-progress"]
    assert subprocess.run(small, cwd=ROOT, capture_output=True, check=False).returncode == 0


def test_an_episode_reads_only_the_arrays_asked_for(tiny_dataset):
    data = PixelDataset(tiny_dataset)
    some = data.episode(0, ("actions",))
    assert list(some) == ["actions"]
    np.testing.assert_array_equal(some["actions"], data.episode(0)["actions"])
    with pytest.raises(KeyError, match="not arrays of"):
        data.episode(0, ("pixel",))
