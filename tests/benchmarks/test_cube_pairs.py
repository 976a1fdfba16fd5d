"""benchmarks/cube_pairs.py: pairs grouped by where the gripper starts, successes per run."""

import numpy as np

from benchmarks.cube_pairs import GROUPS, start_groups, table
from envs.cube_states import cube_state_names


class Episodes:
    """A dataset stand-in: episode e's frame t has the effector ``t`` cm from the cube."""

    def episode(self, e):
        names = cube_state_names(1)
        states = np.zeros((10, len(names)))
        states[:, names.index("effector_x")] = np.arange(10) / 100
        return {"states": states}


def test_pairs_split_by_the_gripper_distance_and_count_only_the_unsolved():
    row = lambda success, steps: {"success": success, "steps": steps}
    report = {"pairs": [{"episode": 0, "frame": t} for t in (0, 2, 5, 9)],
              "agent": {"rows": [row(True, 0), row(True, 12), row(False, 50), row(True, 30)]},
              "floor": {"rows": [row(True, 0), row(False, 50), row(False, 50), row(True, 7)]},
              "ceiling": {"skipped": "not simulable", "rows": []}}
    groups = start_groups(report, Episodes())
    assert groups == [GROUPS[0], GROUPS[0], GROUPS[1], GROUPS[1]]  # 0, 2 cm near; 5, 9 cm away
    lines = table(report, groups)
    assert lines[0] == "| start | unsolved pairs | agent | floor |"  # the skipped ceiling left out
    assert lines[2] == f"| {GROUPS[0]} | 1 | 1/1 | 0/1 |"  # pair 0 was solved at the start
    assert lines[3] == f"| {GROUPS[1]} | 2 | 1/2 | 1/2 |"
