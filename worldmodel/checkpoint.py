"""Read a trained world model: a ``model.ckpt`` ``train.py`` wrote, or an exported folder.

``load_world_model`` gives the eval-mode model and the dataset meta stored with it, from either
file; ``from_pretrained`` reads an export (``model.safetensors`` + ``config.json``, written by
``worldmodel.export.export_model``) with plain torch, without Lightning::

    model, meta = load_world_model("outputs/reacher/model.ckpt")
    z = model.encode(frames)                     # (B, T, H, W, 3) uint8 -> (B, T, D)

A planning agent built from a checkpoint is the application's job (``worldmodel.app.agents``).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch

from common.fileio import file_sha256
from envs.meta import ModelMeta
from worldmodel.utils import non_finite_tensors
from worldmodel.world_model import JEPAWorldModel, ModelConfig

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "EXPORT_VERSION", "WEIGHTS_FILE", "from_pretrained",
           "is_exported", "load_world_model", "resolve_device", "saved_plan_config"]

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
EXPORT_FORMAT = "worldmodel-lab/jepa-world-model"
EXPORT_VERSION = 1


def safetensors_module():
    try:
        import safetensors.torch as st
    except ImportError:
        raise ImportError("model export needs the safetensors package: pip install "
                          "'worldmodel-lab[export]' (or pip install safetensors)") from None
    return st


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` is a folder ``export_model`` wrote."""
    path = Path(path)
    return path.is_dir() and (path / WEIGHTS_FILE).is_file() and (path / CONFIG_FILE).is_file()


def from_pretrained(folder: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[JEPAWorldModel, ModelMeta]:
    """The eval-mode world model of an exported ``folder`` on ``device``, and its data meta
    (the same pair ``load_world_model`` gives for the checkpoint it was exported from).

    Raises:
        FileNotFoundError: ``folder`` holds no export.
        ValueError: a config of another format or version, or weights that do not fit it.
    """
    folder = Path(folder)
    if not is_exported(folder):
        raise FileNotFoundError(f"{folder} holds no exported model ({WEIGHTS_FILE} and "
                                f"{CONFIG_FILE}); write one with `wml export CHECKPOINT "
                                f"--format safetensors {folder}`")
    config = json.loads((folder / CONFIG_FILE).read_text())
    if config.get("format") != EXPORT_FORMAT or config.get("version", 0) > EXPORT_VERSION:
        raise ValueError(f"{folder / CONFIG_FILE} is format {config.get('format')!r} version "
                         f"{config.get('version')}; this code reads {EXPORT_FORMAT!r} up to "
                         f"version {EXPORT_VERSION}")
    try:
        meta = ModelMeta.from_dict(config["data_meta"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{folder / CONFIG_FILE} holds no readable data meta ({err}); export "
                         "the checkpoint again") from None
    model = JEPAWorldModel(ModelConfig(**config["model"]), meta.observation_shape,
                           config["action_dim"], config["history"])
    recorded = config.get("weights_sha256")  # exports before it recorded none
    if recorded is not None and recorded != file_sha256(folder / WEIGHTS_FILE):
        raise ValueError(f"{folder / WEIGHTS_FILE} is not the file {folder / CONFIG_FILE} was "
                         "written with (its SHA-256 differs): the export was mixed or edited; "
                         "export the checkpoint again")
    weights = safetensors_module().load_file(str(folder / WEIGHTS_FILE), device="cpu")
    bad = non_finite_tensors(weights)
    if bad:
        raise ValueError(f"{folder / WEIGHTS_FILE} holds non-finite weights ({len(bad)} "
                         f"tensors, first {bad[0]}); export a checkpoint of a run that did not "
                         "diverge")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"{folder / WEIGHTS_FILE} does not fit {folder / CONFIG_FILE} "
                         f"({str(err)[:300]})") from None
    return model.to(torch.device(device)).eval(), meta


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else as ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"plan.device={device!r} is not a device ({err}); use auto, cpu or "
                         "cuda[:N]") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"plan.device={device!r} but no CUDA GPU is visible to this process; "
                         "use plan.device=cpu, or auto (the GPU when there is one)")
    return resolved


def load_world_model(checkpoint: str | Path, device: str | torch.device = "cpu"
                     ) -> tuple[JEPAWorldModel, ModelMeta]:
    """The world model of ``checkpoint`` in eval mode on ``device``, and its data meta
    (env config, goal, action and state sizes, ``history``, ``frameskip``, ...).

    ``checkpoint`` is a ``model.ckpt`` or a folder ``export_model`` wrote."""
    path = Path(checkpoint)
    if is_exported(path):  # a folder export_model wrote: no Lightning needed
        return from_pretrained(path, resolve_device(device))
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    from worldmodel.module import JEPAModule  # Lightning: imported only for a model.ckpt

    device = resolve_device(device)
    try:
        module = JEPAModule.load_from_checkpoint(path, map_location=device, weights_only=True)
    except (RuntimeError, IndexError, KeyError, EOFError, ValueError, TypeError,
            pickle.UnpicklingError) as err:
        raise ValueError(f"{path} is not a readable world-model checkpoint ({type(err).__name__}:"
                         f" {str(err)[:200]}): truncated, corrupt, or written by something "
                         "else; use a model.ckpt that train.py wrote") from None
    bad = non_finite_tensors(module.state_dict())
    if bad:
        raise ValueError(f"{path} holds non-finite weights ({len(bad)} tensors, first "
                         f"{bad[0]}): it comes from a training run that diverged; plan with "
                         "another checkpoint or retrain with a lower optim.lr")
    if not module.data_meta.is_pixel:
        raise ValueError(f"{path} holds no pixel dataset meta (a synthetic-world encoder?); "
                         "only pixel world models plan")
    return module.world_model.eval(), module.data_meta


def saved_plan_config(checkpoint: str | Path) -> dict[str, Any]:
    """The ``plan`` section of the run's ``config.yaml`` (``train.py`` writes it beside
    ``model.ckpt``), or ``{}`` when there is none."""
    if is_exported(checkpoint):
        return dict(json.loads((Path(checkpoint) / CONFIG_FILE).read_text()).get("plan") or {})
    path = Path(checkpoint).parent / "config.yaml"
    if not path.is_file():
        return {}
    import yaml

    return dict((yaml.safe_load(path.read_text()) or {}).get("plan") or {})
