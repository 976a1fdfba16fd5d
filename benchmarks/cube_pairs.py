"""Cube dataset-goal pairs split by where the gripper starts: at the cube, or away from it.

In OGBench's play data a start frame 25 steps before a goal in which the cube has moved either
catches the cube already in (or at) the gripper, so the pair asks to carry or place it, or has
the gripper away from it, so the pair asks to reach, grasp, lift and carry it inside 25 of the
data's steps. This prints, for each ``report.json`` of ``plan.py`` on the cube (the same dataset),
how many of the pairs not solved at the start each run solved in each group: the agent, the
random floor and the true-simulator ceiling where the report has them.

    python -m benchmarks.cube_pairs outputs/cube/plan-cem/report.json [more reports ...]
    python -m benchmarks.cube_pairs --oracle outputs/cube/plan-cem/report.json

``--oracle`` asks whether a miss is the search's or the model's: at each unsolved pair's start
it scores, in the report's world model with the report's planner and objective, the data's
own next 25 actions (which do reach the goal) and the plan the planner finds there, and
compares how smooth the two are. A planner that finds plans the model scores far below the
data's actions, and that fail in the env, is exploiting the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

GROUPS = ("gripper at the cube", "gripper away from the cube")


def start_groups(report: dict, dataset) -> list[str]:
    """Each pair's group, from the recorded states of its start frame."""
    from envs.cube_states import REACHED, cube_state_names

    names = cube_state_names(1)
    cube = [names.index(f"cube_{a}") for a in "xyz"]
    effector = [names.index(f"effector_{a}") for a in "xyz"]
    groups = []
    for pair in report["pairs"]:
        state = dataset.episode(int(pair["episode"]))["states"][int(pair["frame"])]
        near = np.linalg.norm(state[cube] - state[effector]) < REACHED
        groups.append(GROUPS[0] if near else GROUPS[1])
    return groups


def _unsolved(report: dict) -> list[bool]:
    """Per pair: not already solved at the start (``RunSummary.solved_at_start``'s rule)."""
    return [not (row["success"] and row["steps"] == 0) for row in report["agent"]["rows"]]


def table(report: dict, groups: list[str]) -> list[str]:
    """Markdown rows: per group, the unsolved pairs and each run's successes among them."""
    runs = [(name, report[name]) for name in ("agent", "floor", "ceiling")
            if report.get(name) and not report[name].get("skipped")]
    unsolved = _unsolved(report)
    lines = ["| start | unsolved pairs | " + " | ".join(n for n, _ in runs) + " |",
             "|---|---|" + "---|" * len(runs)]
    for group in GROUPS:
        idx = [i for i, g in enumerate(groups) if g == group and unsolved[i]]
        cells = [f"{sum(run['rows'][i]['success'] for i in idx)}/{len(idx)}" for _, run in runs]
        lines.append(f"| {group} | {len(idx)} | " + " | ".join(cells) + " |")
    return lines


def oracle_check(report: dict, groups: list[str], data) -> list[str]:
    """Per group: the model's cost of the data's actions against the found plan's, and the
    step-to-step action change of both (medians)."""
    import torch

    from worldmodel.app.agents import load_agent

    p, cfg = report["planner"], report["config"]
    keys = ("samples", "iterations", "elites", "horizon", "noise_beta", "keep_elites")
    loaded = load_agent(report["checkpoint"], p["name"], "cpu", "auto",
                        **{k: p[k] for k in keys}, objective=cfg["eval"]["objective"],
                        hold=cfg["eval"]["hold"])
    agent, unsolved = loaded.agent, _unsolved(report)
    k, offset = agent.frameskip, cfg["eval"]["goal_offset"] or report["goal"]["goal_offset"]
    if offset != agent.planner.config.horizon * k:
        raise SystemExit(f"error: --oracle needs the goal offset ({offset} steps) to equal the "
                         f"planning horizon ({agent.planner.config.horizon} blocks of {k})")
    lines = [("| start | pairs | model cost: data's actions | found plan | plan below the data's "
              "| action change per step: data's | plan's |"), "|---|---|---|---|---|---|---|"]
    for group in GROUPS:
        rows = []
        for i, (pair, row) in enumerate(zip(report["pairs"], report["agent"]["rows"])):
            if groups[i] != group or not unsolved[i]:
                continue
            ep, t = data.episode(int(pair["episode"])), int(pair["frame"])
            agent.reset(ep["pixels"][t][None], ep["pixels"][t + offset][None], seed=row["seed"])
            cost = agent.cost_fn()
            taken = ep["actions"][t:t + offset]
            found = agent.planner.plan(lambda a, cost=cost: cost(agent.blocks(a)), 1,
                                       agent.plan_dim, None, agent.device)
            planned = agent.blocks(found.actions)[0].reshape(offset, -1).float().numpy()
            data_cost = cost(torch.as_tensor(taken, dtype=torch.float32).reshape(
                1, 1, -1, agent.block_dim)).item()
            rows.append((data_cost, found.cost.item(),
                         np.abs(np.diff(taken, axis=0)).mean(),
                         np.abs(np.diff(planned, axis=0)).mean()))
        if not rows:
            continue
        v = np.array(rows)
        lines.append(f"| {group} | {len(v)} | {np.median(v[:, 0]):.1f} | {np.median(v[:, 1]):.1f} "
                     f"| {int((v[:, 1] < v[:, 0]).sum())}/{len(v)} | {np.median(v[:, 2]):.3f} "
                     f"| {np.median(v[:, 3]):.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--oracle", action="store_true",
                        help="also score the data's own actions against the found plans")
    args = parser.parse_args(argv)
    from envs.dataset import PixelDataset

    for path in args.reports:
        report = json.loads(path.read_text())
        if report.get("goal_source") != "dataset" or not report.get("pairs"):
            print(f"error: {path} is not a dataset-goal report (plan.eval.goal_source=dataset)",
                  file=sys.stderr)
            return 2
        data = PixelDataset(_dataset_of(report))
        groups = start_groups(report, data)
        print(f"\n{path}")
        print("\n".join(table(report, groups)))
        if args.oracle:
            print()
            print("\n".join(oracle_check(report, groups, data)))
    return 0


def _dataset_of(report: dict) -> str:
    """The dataset the report's checkpoint was trained on."""
    import torch

    from envs.meta import ModelMeta

    saved = torch.load(report["checkpoint"], map_location="cpu", weights_only=True)
    return ModelMeta.from_dict(saved["hyper_parameters"]["data_meta"]).path


if __name__ == "__main__":
    sys.exit(main())
