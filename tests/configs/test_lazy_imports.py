"""The config schema and the light modules load without any simulator (``import envs``
imports Gymnasium, to register the ``wm/`` ids, and nothing heavier)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("mujoco", "dm_control", "ogbench")
LIGHT = ("configs.schema", "worldmodel.sigreg", "worldmodel.identifiability", "envs",
         "envs.config", "planners.eval_config")


def test_the_schema_and_light_modules_leave_simulators_unimported():
    code = (f"import sys; import {', '.join(LIGHT)}; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"imported: {done.stdout.strip()}"


def test_the_schema_composes_the_light_configs():
    from configs.schema import ExperimentConfig
    from envs.collect import CollectConfig as CollectFromCollect
    from envs.config import CollectConfig, EnvConfig
    from planners.eval_config import ClosedLoopConfig
    from planners.evaluate import ClosedLoopConfig as FromEvaluate

    cfg = ExperimentConfig()
    assert isinstance(cfg.env, EnvConfig) and isinstance(cfg.collect, CollectConfig)
    assert isinstance(cfg.plan.eval, ClosedLoopConfig)
    assert FromEvaluate is ClosedLoopConfig and CollectFromCollect is CollectConfig  # re-exported
