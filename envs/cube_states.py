"""The cube scene's state vector: its entry names and angle orders, and failed episodes' stages.

The state is the ``info["state"]`` of ``envs.ogbench_cube.OGBenchCubeEnv``. Nothing here needs
a simulator: the benchmarks and the failure analysis read recorded states.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ARM_JOINTS", "CUBE_OUTCOMES", "LIFTED", "REACHED", "cube_outcome",
           "cube_state_angles", "cube_state_names"]

ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3")


def cube_state_names(num_cubes: int = 1) -> list[str]:
    """Names of ``info["state"]``, in order."""
    cubes = [""] if num_cubes == 1 else [str(i) for i in range(num_cubes)]
    names = [f"cube{c}_{k}" for c in cubes for k in ("x", "y", "z", "yaw")]
    names += ["effector_x", "effector_y", "effector_z", "effector_yaw", "gripper_opening"]
    return names + [f"{j}_pos" for j in ARM_JOINTS] + [f"{j}_vel" for j in ARM_JOINTS]


def cube_state_angles(num_cubes: int = 1) -> dict[str, int]:
    """The angle entries of ``info["state"]`` with the symmetry order the frames show them
    up to: a one-colour cube looks the same turned by 90 degrees (4), the two-finger gripper by
    180 (2); the effector yaw and the last wrist joint turn the gripper. A state probe reads
    these through (sin kθ, cos kθ) (``callbacks.state_probe``)."""
    names = cube_state_names(num_cubes)
    orders = {n: 4 for n in names if n.endswith("_yaw") and n.startswith("cube")}
    return {**orders, "effector_yaw": 2, "wrist_3_pos": 2}


REACHED = 0.03  # m, pinch point to cube centre: the gripper is at the cube (it is 4 cm wide)
LIFTED = 0.01  # m above its resting height: the cube is off the table


# the failure stages of ``cube_outcome``, earliest first
CUBE_OUTCOMES = ("never reached the cube", "reached, never lifted",
                 "lifted, put down off the goal", "lifted, held off the goal")


def cube_outcome(states: np.ndarray, goal_state: np.ndarray, names: list[str],
                 tolerance: float = 0.04) -> str:
    """Where a failed pick-and-place episode stopped, from its states ``(T + 1, S)`` (the
    start first) and the goal state: for the cubes not within ``tolerance`` of their goal at
    the end, the earliest stage any of them missed. "never reached the cube": the gripper's
    pinch point never came within ``REACHED`` of it; "reached, never lifted": it never rose
    ``LIFTED`` above its start height (pushed, or not grasped); "lifted, put down off the
    goal" or "lifted, held off the goal": picked up, then dropped or placed elsewhere, or still
    in the air away from the goal at the end."""
    states, goal_state = np.asarray(states, np.float64), np.asarray(goal_state, np.float64)
    effector = states[:, [names.index(f"effector_{k}") for k in "xyz"]]
    stages = []
    for c in [n[:-2] for n in names if n.startswith("cube") and n.endswith("_x")]:
        idx = [names.index(f"{c}_{k}") for k in "xyz"]
        cube = states[:, idx]
        if np.linalg.norm(cube[-1] - goal_state[idx]) < tolerance:
            continue
        if np.linalg.norm(effector - cube, axis=1).min() >= REACHED:
            stages.append(0)
        elif (cube[:, 2] - cube[0, 2]).max() < LIFTED:
            stages.append(1)
        else:
            stages.append(2 if cube[-1, 2] - cube[0, 2] < LIFTED else 3)
    return CUBE_OUTCOMES[min(stages)] if stages else "every cube at its goal at the end"
