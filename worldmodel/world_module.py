"""Temporary alias while the tree moves to ``worldmodel.module.JEPAModule`` (removed before commit)."""
from worldmodel.module import JEPAModule as WorldModelModule  # noqa: F401
from worldmodel.module import LossConfig, cpu_bf16_supported  # noqa: F401
