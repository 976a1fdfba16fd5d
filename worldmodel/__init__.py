"""LeJEPA world models that plan: the public API, imported on first use.

What a user imports to make an env, collect, load a dataset, train, load a checkpoint, plan
and export (docs/python_api.md walks through it)::

    from worldmodel import (load_config, make_pixel_env, collect_rollouts, PixelDataset,
                            train, load_agent, load_world_model, evaluate_closed_loop,
                            export_model, from_pretrained)

Each name is imported from its module when first used, so ``import worldmodel.sigreg`` (or
``from worldmodel import load_config``) stays light. This facade belongs to the application
layer (docs/design.md): the model core's modules never import it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ClosedLoopConfig", "CollectConfig", "DatasetMeta", "EnvConfig", "ModelMeta",
           "PixelDataset", "collect_rollouts", "evaluate_closed_loop", "export_model",
           "from_pretrained", "load_agent", "load_config", "load_world_model", "make_pixel_env",
           "train"]

_HOME = {
    "load_config": "configs.loader",
    "make_pixel_env": "envs.registry",
    "EnvConfig": "envs.config",
    "CollectConfig": "envs.config",
    "collect_rollouts": "envs.collect",
    "PixelDataset": "envs.dataset",
    "DatasetMeta": "envs.meta",
    "ModelMeta": "envs.meta",
    "train": "worldmodel.app.train",
    "load_agent": "worldmodel.app.agents",
    "load_world_model": "worldmodel.checkpoint",
    "ClosedLoopConfig": "planners.eval_config",
    "evaluate_closed_loop": "planners.evaluate",
    "export_model": "worldmodel.export",
    "from_pretrained": "worldmodel.checkpoint",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'worldmodel' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
