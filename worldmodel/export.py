"""A trained world model as ``model.safetensors`` + ``config.json``, loadable without Lightning.

``export_model(checkpoint, folder)`` writes the world model's weights (encoder, projector,
predictor; no optimiser state) as safetensors and everything needed to rebuild it as JSON: the
model config, the action-block size and history, the dataset meta (env, goal, state names),
the run's plan settings, the loss and optimiser it was trained with, and where it came from
(the checkpoint's path and SHA-256, package versions). ``from_pretrained(folder)`` rebuilds the
eval-mode ``JEPAWorldModel`` from those two files with plain torch; the Lightning checkpoint
stays the file that resumes training::

    folder = export_model("outputs/reacher/model.ckpt", "exported/reacher")
    model, meta = from_pretrained(folder)        # no Lightning import
    z = model.encode(frames)                     # (B, T, H, W, 3) uint8 -> (B, T, D)

``worldmodel.pretrained.load_world_model`` and ``load_agent`` accept such a folder too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from envs.fileio import atomic_write, file_sha256
from worldmodel.world_model import JEPAWorldModel, ModelConfig, observation_shape

__all__ = ["CONFIG_FILE", "EXPORT_FORMAT", "WEIGHTS_FILE", "export_model", "from_pretrained",
           "is_exported"]

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
EXPORT_FORMAT = "worldmodel-lab/jepa-world-model"
EXPORT_VERSION = 1


def _safetensors():
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


def export_model(checkpoint: str | Path, folder: str | Path) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json`` for ``checkpoint``.

    Files are written under temporary names and renamed, so a reader never sees half an
    export. Returns the folder.

    Raises:
        ValueError: the checkpoint is unreadable, non-finite or not a pixel world model
            (the errors of ``load_world_model``).
    """
    from envs.collect import package_versions
    from worldmodel.pretrained import load_world_model, saved_plan_config

    checkpoint, folder = Path(checkpoint), Path(folder)
    model, meta = load_world_model(checkpoint)
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    config = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
              "model": hparams["model"], "action_dim": model.action_dim,
              "history": meta.get("history", 1), "observation_shape": list(model.observation_shape),
              "data_meta": meta, "plan": saved_plan_config(checkpoint),
              "loss": hparams.get("loss"), "optim": hparams.get("optim"),
              "max_steps": hparams.get("max_steps"),
              "source": {"checkpoint": str(checkpoint.resolve()),
                         "sha256": file_sha256(checkpoint)},
              "versions": package_versions()}
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    st = _safetensors()
    for name, write in ((WEIGHTS_FILE, lambda p: st.save_file(weights, p,
                                                              metadata={"format": EXPORT_FORMAT})),
                        (CONFIG_FILE, lambda p: Path(p).write_text(json.dumps(config, indent=2)))):
        atomic_write(folder / name, write)
    return folder


def from_pretrained(folder: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[JEPAWorldModel, dict[str, Any]]:
    """The eval-mode world model of an exported ``folder`` on ``device``, and its dataset meta
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
    shape = config.get("observation_shape") or observation_shape(config["data_meta"])
    model = JEPAWorldModel(ModelConfig(**config["model"]), shape, config["action_dim"],
                           config["history"])
    weights = _safetensors().load_file(str(folder / WEIGHTS_FILE), device="cpu")
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise ValueError(f"{folder / WEIGHTS_FILE} does not fit {folder / CONFIG_FILE} "
                         f"({str(err)[:300]})") from None
    return model.to(torch.device(device)).eval(), dict(config["data_meta"])
