"""A trained world model as ``model.safetensors`` + ``config.json``, loadable without Lightning.

``export_model(checkpoint, folder)`` writes the world model's weights (encoder, projector,
predictor; no optimiser state) as safetensors and everything needed to rebuild it as JSON: the
model config, the action-block size and history, the dataset meta (env, goal, state names),
the run's plan settings, the loss and optimiser it was trained with, and where it came from
(the checkpoint's path and SHA-256, package versions). ``worldmodel.checkpoint.from_pretrained(folder)`` rebuilds the
eval-mode ``JEPAWorldModel`` from those two files with plain torch; the Lightning checkpoint
stays the file that resumes training::

    folder = export_model("outputs/reacher/model.ckpt", "exported/reacher")
    model, meta = from_pretrained(folder)        # no Lightning import
    z = model.encode(frames)                     # (B, T, H, W, 3) uint8 -> (B, T, D)

``worldmodel.checkpoint.load_world_model`` and ``load_agent`` accept such a folder too.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from common.fileio import atomic_write_text, check_new_output, file_sha256, replace_folder
from envs.dataset_meta import package_versions
from worldmodel.checkpoint import (
    CONFIG_FILE,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    WEIGHTS_FILE,
    load_world_model,
    safetensors_module,
    saved_plan_config,
)

__all__ = ["export_model"]


def export_model(checkpoint: str | Path, folder: str | Path, force: bool = False) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/config.json`` for ``checkpoint``.

    The two files are written into a temporary folder that then takes ``folder``'s place, so a
    reader never sees half an export or one export's weights beside another's config; the
    config records the weights' SHA-256, which ``from_pretrained`` checks. Returns the folder.

    Raises:
        OutputError: ``folder`` exists and ``force`` is False, or it lies inside the input.
        ValueError: the checkpoint is unreadable, non-finite or not a pixel world model
            (the errors of ``load_world_model``).
    """
    checkpoint, folder = Path(checkpoint), Path(folder)
    check_new_output(folder, (checkpoint,), force, "the export folder")
    model, meta = load_world_model(checkpoint)
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    config = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
              "model": hparams["model"], "action_dim": model.action_dim,
              "history": meta.history, "observation_shape": list(model.observation_shape),
              "data_meta": meta.to_dict(), "plan": saved_plan_config(checkpoint),
              "loss": hparams.get("loss"), "optim": hparams.get("optim"),
              "max_steps": hparams.get("max_steps"),
              "source": {"checkpoint": str(checkpoint.resolve()),
                         "sha256": file_sha256(checkpoint)},
              "versions": package_versions()}
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    st = safetensors_module()

    def fill(tmp: Path) -> None:
        st.save_file(weights, tmp / WEIGHTS_FILE, metadata={"format": EXPORT_FORMAT})
        config["weights_sha256"] = file_sha256(tmp / WEIGHTS_FILE)
        atomic_write_text(tmp / CONFIG_FILE, json.dumps(config, indent=2))

    return replace_folder(folder, fill)
