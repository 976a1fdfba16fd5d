"""End to end: collect -> train a few steps -> checkpoint -> plan.py -> report.json."""

import json
import math

import pytest
import torch
from conftest import TINY_PIXELS as TINY

from configs.loader import load_config
from worldmodel.app import plan, train

PLAN = ["plan.eval.episodes=2", "plan.eval.num_envs=2", "plan.eval.budget=6",
        "plan.eval.goal_offset=4", "plan.eval.videos=1", "plan.eval.progress=false",
        "plan.planner.samples=16", "plan.planner.elites=4", "plan.planner.iterations=2",
        "plan.planner.horizon=3"]


@pytest.fixture
def trained(tiny_run):
    """The session's tiny run (``conftest.tiny_run``): its overrides, and the run."""
    return tiny_run


def test_plan_py_writes_a_report_with_floor_and_ceiling(trained, capsys):
    overrides, result = trained
    assert plan.main(["--config", "reacher", *overrides, *PLAN]) == 0
    out = capsys.readouterr().out
    assert "random floor" in out and "true-sim ceiling" in out
    folder = result.run_dir / "plan-cem"
    report = json.loads((folder / "report.json").read_text())
    assert report["env_id"] == "wm/reacher-v0" and report["seeds"] == [0, 1]
    assert report["planner"]["model_calls_per_plan"] == 16 * 2 * 3
    assert len(report["checkpoint_sha256"]) == 64 and "torch" in report["versions"]
    tolerance = report["goal"]["tolerance"]
    for run in ("agent", "floor", "ceiling"):
        summary = report[run]
        assert summary["episodes"] == 2 and len(summary["rows"]) == 2
        solved = [row["success"] for row in summary["rows"]]
        assert summary["success_rate"] == sum(solved) / 2  # the rate is the rows' count
        lo, hi = summary["success_ci95"]
        assert 0.0 <= lo <= summary["success_rate"] <= hi <= 1.0 and hi - lo > 0.3  # n = 2
        for row in summary["rows"]:
            trace = row["distance"]  # the start, then after every step until success or 6
            assert math.isfinite(row["final_distance"]) and 1 <= len(trace) <= 7
            assert row["final_distance"] == pytest.approx(trace[-1], abs=1e-5)
            assert row["min_distance"] == pytest.approx(min(trace), abs=1e-5)
            # success: the distance fell under the tolerance, and the episode stopped there
            assert row["success"] == (min(trace) < tolerance)
            assert row["steps"] == len(trace) - 1
            if row["success"]:
                assert trace[-1] < tolerance and all(d >= tolerance for d in trace[:-1])
    assert report["agent"]["plan_ms_median"] > 0 and report["agent"]["plan_calls"] == 6
    assert (folder / "distance.png").stat().st_size > 0
    assert [p.name for p in (folder / "videos").iterdir()] == ["episode-00000.gif"]


def test_plan_py_dataset_goals_come_from_held_out_frames(trained, tmp_path, capsys):
    overrides, result = trained
    out = tmp_path / "dataset-goals"
    extra = ["plan.eval.goal_source=dataset", f"plan.out={out}"]
    assert plan.main(["--config", "reacher", *overrides, *PLAN, *extra]) == 0
    assert "(dataset goals)" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["goal_source"] == "dataset" and len(report["pairs"]) == 2
    meta = torch.load(result.checkpoint, weights_only=True)["hyper_parameters"]["data_meta"]
    from envs.dataset import PixelDataset
    from envs.splits import split_episodes

    table = PixelDataset(meta["path"]).episodes()  # the checkpoint's plain dict, as stored
    _, val = split_episodes(len(table), meta["val_fraction"], meta["split_seed"])
    assert {p["episode"] for p in report["pairs"]} <= set(table[val, 0].tolist())
    for run in ("agent", "floor", "ceiling"):
        summary = report[run]
        assert summary["solved_at_start"] + summary["unsolved_successes"] == summary["successes"]


@pytest.mark.parametrize("hold", [True, False])
def test_held_blocks_reach_the_env_from_the_agent_and_the_ceiling(tiny_dataset, tmp_path,
                                                                  monkeypatch, hold):
    from planners.agent import BlockMPC

    executed = []  # (agent class, block (B, kA)) for every block started
    act = BlockMPC.act

    def spy(self, pixels):
        fresh = not self.queue
        actions = act(self, pixels)
        if fresh:
            executed.append((type(self).__name__, self.block.clone()))
        return actions

    monkeypatch.setattr(BlockMPC, "act", spy)
    overrides = [*TINY, f"output_dir={tmp_path}", f"data.path={tiny_dataset}",
                 "env.image_size=32", "data.frameskip=2", "data.history=2"]
    train.train(load_config("reacher", overrides))
    assert plan.main(["--config", "reacher", *overrides, *PLAN, "plan.eval.videos=0",
                      "plan.eval.floor=false", f"plan.eval.hold={str(hold).lower()}"]) == 0
    assert {name for name, _ in executed} == {"MPCAgent", "SimulatorAgent"}
    for _, block in executed:
        steps = block.view(len(block), 2, -1)  # frameskip 2 of 2-D actions
        assert torch.equal(steps[:, 0], steps[:, 1]) == hold


def test_plan_py_without_a_checkpoint_says_how_to_make_one(tmp_path, capsys):
    assert plan.main(["--config", "reacher", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and "python train.py" in err


def test_plan_py_refuses_a_synthetic_config(tmp_path, capsys):
    assert plan.main(["--config", "identifiability", f"output_dir={tmp_path}"]) == 2
    assert "mode=synthetic" in capsys.readouterr().err


ROW_KEYS = ("seed", "success", "steps", "final_distance", "min_distance", "distance")
SUMMARY_KEYS = ("episodes", "successes", "success_rate", "success_ci95", "final_distance_mean",
                "final_distance_median", "steps_mean")


def test_sharded_evaluation_merges_into_the_single_process_report(trained, tmp_path, capsys):
    overrides, _ = trained
    common = ["--config", "reacher", *overrides, *PLAN, "plan.eval.episodes=3"]
    assert plan.main([*common, f"plan.out={tmp_path / 'one'}"]) == 0
    single = json.loads((tmp_path / "one" / "report.json").read_text())
    sharded = tmp_path / "sharded"
    for shard in (1, 0):  # batches of 2 envs: shard 0 runs episodes 0 and 1, shard 1 runs 2
        assert plan.main([*common, f"plan.out={sharded}", f"plan.eval.shard={shard}",
                          "plan.eval.num_shards=2"]) == 0
        assert (sharded / "report.json").exists() == (shard == 0)  # the last one merges
    assert "merged from 2 shards" in capsys.readouterr().out
    merged = json.loads((sharded / "report.json").read_text())
    assert merged["seeds"] == single["seeds"] == [0, 1, 2] and merged["shards"] == 2
    for run in ("agent", "floor", "ceiling"):
        for key in SUMMARY_KEYS:
            assert merged[run][key] == single[run][key], (run, key)
        for got, want in zip(merged[run]["rows"], single[run]["rows"], strict=True):
            assert {k: got[k] for k in ROW_KEYS} == {k: want[k] for k in ROW_KEYS}
    assert [p.name for p in (sharded / "videos").iterdir()] == ["episode-00000.gif"]
    assert (sharded / "distance.png").stat().st_size > 0
    # merging again gives the same report; a shard of another evaluation is refused
    assert plan.main(["--merge", str(sharded)]) == 0
    assert json.loads((sharded / "report.json").read_text())["agent"] == merged["agent"]
    stray = sharded / "shards" / "shard-0001-of-0002.json"
    data = json.loads(stray.read_text())
    stray.write_text(json.dumps({**data, "checkpoint_sha256": "0" * 64}))
    assert plan.main(["--merge", str(sharded)]) == 2
    assert "differ in ['checkpoint_sha256']" in capsys.readouterr().err
    stray.unlink()
    assert plan.main(["--merge", str(sharded)]) == 2
    assert "missing shards" in capsys.readouterr().err


def test_plan_py_plans_with_a_temporal_distance_fitted_once_per_checkpoint(trained, tmp_path,
                                                                            capsys):
    overrides, result = trained
    extra = ["plan.eval.cost=temporal", "plan.eval.temporal.steps=20",
             "plan.eval.temporal.batch_size=64", "plan.eval.temporal.hidden=16",
             "plan.eval.floor=false", "plan.eval.ceiling=false", "plan.eval.videos=0"]
    cache = result.checkpoint.with_suffix(".temporal.pt")
    assert plan.main(["--config", "reacher", *overrides, *PLAN, *extra,
                      f"plan.out={tmp_path / 'a'}"]) == 0
    assert "cost: learned temporal distance, held-out error" in capsys.readouterr().out
    saved = torch.load(cache, weights_only=True)
    assert saved["key"]["config"]["steps"] == 20 and math.isfinite(
        saved["fit"]["held_out_mae_blocks"])
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["config"]["eval"]["cost"] == "temporal" and report["agent"]["episodes"] == 2
    assert report["planner"]["temporal_distance_fit"] == saved["fit"]
    mtime = cache.stat().st_mtime_ns
    assert plan.main(["--config", "reacher", *overrides, *PLAN, *extra,
                      f"plan.out={tmp_path / 'b'}"]) == 0
    assert cache.stat().st_mtime_ns == mtime  # reused, not refitted
    again = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [r["final_distance"] for r in again["agent"]["rows"]] == \
        [r["final_distance"] for r in report["agent"]["rows"]]
    assert plan.main(["--config", "reacher", *overrides, *PLAN, *extra,
                      "plan.eval.temporal.steps=21", f"plan.out={tmp_path / 'c'}"]) == 0
    assert torch.load(cache, weights_only=True)["key"]["config"]["steps"] == 21  # refitted
    capsys.readouterr()


def test_plan_py_plans_with_an_action_prior_fitted_once_per_checkpoint(trained, tmp_path,
                                                                        capsys):
    overrides, result = trained
    extra = ["plan.eval.prior.weight=1.0", "plan.eval.prior.steps=20",
             "plan.eval.prior.batch_size=64", "plan.eval.prior.hidden=16",
             "plan.eval.prior.max_blocks=2", "plan.eval.floor=false", "plan.eval.ceiling=false",
             "plan.eval.videos=0"]
    cache = result.checkpoint.with_suffix(".prior.pt")
    assert plan.main(["--config", "reacher", *overrides, *PLAN, *extra,
                      f"plan.out={tmp_path / 'a'}"]) == 0
    assert "action prior (weight 1.0): held-out R²" in capsys.readouterr().out
    saved = torch.load(cache, weights_only=True)
    assert saved["key"]["config"]["steps"] == 20 and "weight" not in saved["key"]["config"]
    assert math.isfinite(saved["fit"]["held_out_mse"])
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["config"]["eval"]["prior"]["weight"] == 1.0
    assert report["planner"]["action_prior_fit"] == saved["fit"]
    assert report["agent"]["episodes"] == 2
    # another weight plans with the same fit (the weight is not a fit setting)
    mtime = cache.stat().st_mtime_ns
    assert plan.main(["--config", "reacher", *overrides, *PLAN, *extra,
                      "plan.eval.prior.weight=3.0", f"plan.out={tmp_path / 'b'}"]) == 0
    assert cache.stat().st_mtime_ns == mtime  # reused, not refitted
    # a damaged cache is refitted, not fatal
    cache.write_bytes(b"not a torch file")
    assert plan.main(["--config", "reacher", *overrides, *PLAN, *extra,
                      f"plan.out={tmp_path / 'c'}"]) == 0
    assert torch.load(cache, weights_only=True)["fit"] == saved["fit"]  # the same seeded fit
    capsys.readouterr()
