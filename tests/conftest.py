"""Shared test set-up: headless rendering before any GL import, small thread counts."""

import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # train.py / plan.py live at the repository root
    sys.path.insert(0, str(ROOT))
