"""Small heads fitted on a world model's frozen latents of its own training episodes (the
temporal distance, the action prior): where those episodes are, their latents, and a cache
beside the checkpoint keyed by everything the fit depends on."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from common.fileio import atomic_write, file_sha256
from envs.meta import ModelMeta

if TYPE_CHECKING:
    from envs.dataset import PixelDataset
    from planners.protocols import WorldModel

__all__ = ["episode_latents", "fit_pairs_head", "held_out_indices", "load_head", "save_head",
           "training_episodes"]

log = logging.getLogger(__name__)


@torch.inference_mode()
def episode_latents(model: WorldModel, dataset: PixelDataset, episodes: Sequence[int],
                    frameskip: int, batch: int = 512,
                    device: torch.device | str = "cpu") -> list[Tensor]:
    """Latents of every ``frameskip``-th frame of the episodes with these recorded indices
    (``dataset.episodes()[:, 0]``): a list of ``(T_i, D)``, on the CPU."""
    out = []
    for ep in episodes:
        frames = dataset.episode(int(ep), ("pixels",))["pixels"][::frameskip]
        z = [model.encode(torch.as_tensor(np.ascontiguousarray(frames[i:i + batch]),
                                          device=device)[:, None])[:, 0].float()
             for i in range(0, len(frames), batch)]
        out.append(torch.cat(z).cpu())
    return out


def held_out_indices(count: int) -> set[int]:
    """Which of ``count`` episodes a head's fit holds out to measure itself: one in ten (at
    least one where there are two or more; none for a single episode)."""
    return set(range(9, count, 10)) or ({count - 1} if count > 1 else set())


def fit_pairs_head(head: nn.Module, draw: Callable[[], tuple[Tensor, Tensor, Tensor]],
                   steps: int, lr: float, desc: str, progress: bool = False) -> nn.Module:
    """Fit ``head(a, b) ≈ target`` by mean squared error on ``steps`` batches ``draw()``
    (AdamW, cosine schedule); returns it in eval mode without gradients."""
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in tqdm(range(steps), desc=desc, leave=False, disable=not progress):
        a, b, target = draw()
        loss = (head(a, b) - target).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return head.eval().requires_grad_(False)


def training_episodes(checkpoint: Path, meta: ModelMeta, settings: dict[str, Any],
                      off: str) -> tuple[PixelDataset, np.ndarray, dict[str, Any]]:
    """The dataset a checkpoint was trained on, the recorded indices of its training episodes
    (the held-out ones are where the dataset-goal protocol starts) and a cache key: the fit
    ``settings``, the checkpoint's SHA-256 and the dataset's path and episode count.

    Raises:
        ValueError: when the checkpoint does not record its dataset; ``off`` names the setting
            that plans without the head.
    """
    from envs.dataset import PixelDataset
    from envs.splits import split_episodes

    if not meta.path or meta.val_fraction is None or meta.split_seed is None:
        raise ValueError(f"{checkpoint} does not record its dataset (path, val_fraction, "
                         "split_seed): this head is fitted on the training episodes; retrain "
                         f"with this version, or use {off}")
    dataset = PixelDataset(meta.path)
    table = dataset.episodes()
    key = {"config": settings, "checkpoint_sha256": file_sha256(checkpoint),
           "dataset": str(meta.path), "dataset_episodes": len(table)}
    train_eps, _ = split_episodes(len(table), meta.val_fraction, meta.split_seed)
    if meta.train_episodes:
        train_eps = train_eps[:meta.train_episodes]
    return dataset, table[train_eps, 0], key


def load_head(cache: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """What ``save_head`` wrote at ``cache`` under ``key``; None when absent, stale or
    unreadable (any damage means: fit again)."""
    if not cache.is_file():
        return None
    try:
        saved = torch.load(cache, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (any damage to the cache means: fit again)
        log.warning("refitting: %s is unreadable (%s)", cache, err)
        return None
    return saved if isinstance(saved, dict) and saved.get("key") == key else None


def save_head(cache: Path, payload: dict[str, Any], what: str) -> None:
    """Write ``payload`` (with its ``key``) to ``cache`` atomically; a cache that cannot be
    written is only warned about (the head is refitted on the next run)."""
    try:
        atomic_write(cache, lambda tmp: torch.save(payload, tmp))
    except OSError as err:
        log.warning("could not cache the %s at %s (%s); it is refitted on the next run", what,
                    cache, err.strerror or err)
