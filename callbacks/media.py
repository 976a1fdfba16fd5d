"""Images and episode videos to whichever Lightning loggers a run uses.

``log_media(loggers, step, images, videos)`` sends each image (``uint8 (H, W, 3)``) and each
video (a GIF file) where the logger can show it:

- ``TensorBoardLogger``: images with ``add_image``; a video as ``add_video`` when moviepy is
  installed, else as one image, a strip of up to 8 evenly spaced frames.
- ``WandbLogger``: ``log_image`` and ``log_video`` (from the GIF file: no moviepy needed).
- ``CSVLogger`` (the default) and any other: files under ``<log_dir>/media/`` named by key
  and step, so the default run keeps them too.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["frame_strip", "log_media"]

log = logging.getLogger(__name__)


def frame_strip(frames: np.ndarray, count: int = 8) -> np.ndarray:
    """Up to ``count`` evenly spaced frames of ``(T, H, W, 3)`` side by side: ``(H, W', 3)``."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    return np.concatenate([frames[i] for i in picks], axis=1)


def _safe(key: str) -> str:
    return key.replace("/", "_")


def _file_logger(logger, step: int, images: dict[str, np.ndarray], videos: dict[str, Path]):
    import imageio.v2 as imageio

    folder = Path(logger.log_dir) / "media"
    folder.mkdir(parents=True, exist_ok=True)
    for key, image in images.items():
        imageio.imwrite(folder / f"{_safe(key)}-step{step:07d}.png", image)
    for key, gif in videos.items():
        shutil.copyfile(gif, folder / f"{_safe(key)}-step{step:07d}.gif")


def _tensorboard(logger, step: int, images: dict[str, np.ndarray], videos: dict[str, Path]):
    import imageio.v2 as imageio
    import torch

    writer = logger.experiment
    for key, image in images.items():
        writer.add_image(key, image, step, dataformats="HWC")
    for key, gif in videos.items():
        frames = np.stack([f[..., :3] for f in imageio.mimread(gif)])  # (T, H, W, 3)
        try:
            import moviepy  # noqa: F401  (add_video encodes with it)

            video = torch.from_numpy(frames).permute(0, 3, 1, 2)[None]  # (1, T, 3, H, W)
            writer.add_video(key, video, step, fps=10)
        except ImportError:
            writer.add_image(key, frame_strip(frames), step, dataformats="HWC")


def _wandb(logger, step: int, images: dict[str, np.ndarray], videos: dict[str, Path]):
    for key, image in images.items():
        logger.log_image(key=key, images=[image], step=step)
    for key, gif in videos.items():
        logger.log_video(key=key, videos=[str(gif)], step=step)


def log_media(loggers: Iterable, step: int, images: dict[str, np.ndarray] | None = None,
              videos: dict[str, Path] | None = None) -> None:
    """Send ``images`` and ``videos`` (GIF paths) to each logger, as its kind allows."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    images, videos = images or {}, videos or {}
    for logger in loggers:
        try:
            if isinstance(logger, TensorBoardLogger):
                _tensorboard(logger, step, images, videos)
            elif isinstance(logger, WandbLogger):
                _wandb(logger, step, images, videos)
            elif getattr(logger, "log_dir", None):
                _file_logger(logger, step, images, videos)
        except Exception as err:  # noqa: BLE001 (media must never stop a training run)
            log.warning("could not log media to %s: %s: %s", type(logger).__name__,
                        type(err).__name__, err)
