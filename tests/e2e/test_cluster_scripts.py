"""The SLURM scripts in docs/slurm run the commands they promise, with valid config keys.

Each script runs under bash with stand-ins for ``srun`` and ``python`` that record the command
line, in a SLURM-like environment; the recorded train.py / plan.py arguments must then load as
a config, exactly as the real entry points would load them.
"""

import os
import subprocess
from pathlib import Path

import pytest

from configs.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "docs" / "slurm").glob("*.sbatch"))
SLURM = {"SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2", "SLURM_CPUS_PER_TASK": "8",
         "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_JOB_ID": "77"}


def recorded_command(script: Path, tmp_path: Path) -> list[str]:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text('#!/bin/bash\nprintf "%s\\0" "$@" > "$RECORD"\n')
    (fake / "srun").write_text('#!/bin/bash\nwhile [[ $1 == -* ]]; do shift; done\nexec "$@"\n')
    for f in fake.iterdir():
        f.chmod(0o755)
    submit = tmp_path / "submit"
    (submit / ".venv" / "bin").mkdir(parents=True)
    (submit / ".venv" / "bin" / "activate").write_text(f'export PATH="{fake}:$PATH"\n')
    env = {**os.environ, **SLURM, "SLURM_SUBMIT_DIR": str(submit),
           "RECORD": str(tmp_path / "args")}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "args").read_text().split("\0")[:-1]


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_slurm_script_runs_a_command_with_a_valid_config(script, tmp_path):
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    text = script.read_text()
    assert text.startswith("#!/bin/bash") and "#SBATCH --job-name=" in text
    args = recorded_command(script, tmp_path)
    entry, flags = args[0], args[1:]
    assert entry in ("train.py", "plan.py")
    assert flags[:2] == ["--config", "reacher_gpu"]
    overrides = [a for a in flags[2:] if not a.startswith("--")]
    cfg = load_config("reacher_gpu", overrides)
    if script.name == "train.sbatch":
        t = cfg.trainer
        assert (t.devices, t.num_nodes, t.strategy) == (4, 2, "ddp")
        assert cfg.data.num_workers == 6 and "--signal=USR1@" in text and "--requeue" in text
    if script.name == "plan.sbatch":
        assert (cfg.plan.eval.shard, cfg.plan.eval.num_shards) == (3, 8)
    if script.name == "collect.sbatch":
        assert "--collect-only" in flags and cfg.collect.workers == 8
