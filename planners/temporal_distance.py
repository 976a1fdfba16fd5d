"""A learned temporal distance between latents: a planning cost that knows what takes time.

The default planning cost is the squared L2 distance between a predicted latent and the goal's.
It weighs every latent direction alike, so a plan that moves a large, easy part of the scene
(an arm) to where it is in the goal image scores well even when the small, slow part (the
cube it should have carried) is left behind. In play data the slow parts are the ones that take
many steps to change. ``TemporalDistance`` is a small MLP on the frozen encoder's latents,
fitted on pairs of frames of the same episode to the number of action blocks between them
(capped at ``max_blocks``; pairs from different episodes count as the cap). As a cost it
reads as "blocks from here to the goal", as a goal-conditioned value would, learned without
rewards or states: it works for any env with a pixel dataset.

``fit_temporal_distance`` fits it; ``temporal_distance_for`` fits it once per checkpoint and
caches it beside the checkpoint (``plan.eval.cost=temporal`` in ``plan.py``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from envs.fileio import atomic_write
from planners.protocol import TemporalDistanceConfig

__all__ = ["TemporalDistance", "TemporalDistanceConfig", "episode_latents",
           "fit_temporal_distance", "temporal_distance_for"]

log = logging.getLogger(__name__)


class TemporalDistance(nn.Module):
    """``(…, D), (…, D) -> (…)``: predicted action blocks from ``z`` to ``z_goal``, in
    ``[0, max_blocks]``."""

    def __init__(self, latent_dim: int, hidden: int = 256, max_blocks: int = 10) -> None:
        super().__init__()
        self.latent_dim, self.max_blocks = latent_dim, max_blocks
        self.net = nn.Sequential(nn.Linear(3 * latent_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, z: Tensor, z_goal: Tensor) -> Tensor:
        z, z_goal = torch.broadcast_tensors(z, z_goal)
        x = torch.cat([z, z_goal, z - z_goal], dim=-1)
        return self.max_blocks * torch.sigmoid(self.net(x)).squeeze(-1)


@torch.inference_mode()
def episode_latents(model, dataset, episodes: np.ndarray, frameskip: int,
                    batch: int = 512, device: torch.device | str = "cpu") -> list[Tensor]:
    """Latents of every ``frameskip``-th frame of each episode: a list of ``(T_i, D)``."""
    out = []
    for ep in episodes:
        frames = dataset.episode(int(ep))["pixels"][::frameskip]
        z = [model.encode(torch.as_tensor(np.ascontiguousarray(frames[i:i + batch]),
                                          device=device)[:, None])[:, 0].float()
             for i in range(0, len(frames), batch)]
        out.append(torch.cat(z).cpu())
    return out


def _pairs(latents: list[Tensor], n: int, cfg: TemporalDistanceConfig,
           rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` training pairs ``(z_a, z_b, blocks)``: later frames of the same episode at a
    uniform offset in ``[0, max_blocks]`` (the rest of the episode when shorter), and a
    fraction from two episodes, labelled ``max_blocks``."""
    lengths = np.array([len(z) for z in latents])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = torch.cat(latents)
    ep = rng.integers(0, len(latents), n)
    t = rng.integers(0, lengths[ep])
    k = np.minimum(rng.integers(0, cfg.max_blocks + 1, n), lengths[ep] - 1 - t)
    a, b = offsets[ep] + t, offsets[ep] + t + k
    label = k.astype(np.float32)
    other = rng.random(n) < (cfg.other_episode_fraction if len(latents) > 1 else 0.0)
    if other.any():
        ep2 = (ep[other] + rng.integers(1, len(latents), other.sum())) % len(latents)
        b[other] = offsets[ep2] + rng.integers(0, lengths[ep2])
        label[other] = cfg.max_blocks
    return flat[a], flat[b], torch.as_tensor(label)


def fit_temporal_distance(latents: list[Tensor], cfg: TemporalDistanceConfig | None = None,
                          progress: bool = False) -> tuple[TemporalDistance, dict[str, float]]:
    """Fit a ``TemporalDistance`` on per-episode latent sequences (``episode_latents``).

    Returns the head (eval mode) and its fit: mean absolute error in blocks on held-out pairs
    (one episode in ten) and that of always predicting the mean label.

    Raises:
        ValueError: with fewer than two frames in every episode.
    """
    cfg = cfg or TemporalDistanceConfig()
    if not latents or max(len(z) for z in latents) < 2:
        raise ValueError("the temporal distance needs episodes of at least two frames "
                         f"(after frameskip); got lengths {[len(z) for z in latents][:5]}")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    held = [z for i, z in enumerate(latents) if i % 10 == 9] if len(latents) >= 10 else latents
    train = [z for i, z in enumerate(latents) if i % 10 != 9] if len(latents) >= 10 else latents
    head = TemporalDistance(latents[0].shape[1], cfg.hidden, cfg.max_blocks)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, desc="temporal distance", leave=False)
    for _ in range(cfg.steps):
        za, zb, k = _pairs(train, cfg.batch_size, cfg, rng)
        loss = (head(za, zb) - k).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    head.eval().requires_grad_(False)
    za, zb, k = _pairs(held, 20_000, cfg, np.random.default_rng(cfg.seed + 1))
    with torch.no_grad():
        mae = (head(za, zb) - k).abs().mean().item()
    fit = {"held_out_mae_blocks": mae, "mean_label_mae_blocks": (k - k.mean()).abs().mean().item()}
    return head, fit


def temporal_distance_for(checkpoint: Path, model, meta: dict[str, Any],
                          cfg: TemporalDistanceConfig, device: torch.device | str = "cpu",
                          progress: bool = True) -> TemporalDistance:
    """The temporal distance of a trained world model, fitted on its training episodes.

    Cached as ``<checkpoint>.temporal.pt`` with the fit settings and the checkpoint's size and
    modification time; any change refits.

    Raises:
        ValueError: when the checkpoint does not say where its dataset is.
    """
    from envs.dataset import PixelDataset
    from worldmodel.data import split_episodes

    checkpoint = Path(checkpoint)
    cache = checkpoint.with_suffix(".temporal.pt")
    stat = checkpoint.stat()
    key = {"config": asdict(cfg), "checkpoint_size": stat.st_size,
           "checkpoint_mtime_ns": stat.st_mtime_ns}
    if cache.is_file():
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            head = TemporalDistance(saved["latent_dim"], cfg.hidden, cfg.max_blocks)
            head.load_state_dict(saved["state_dict"])
            return head.eval().requires_grad_(False).to(device)
    if not meta.get("path") or meta.get("val_fraction") is None:
        raise ValueError(f"{checkpoint} does not record its dataset (path, val_fraction): the "
                         "temporal distance is fitted on the training episodes; retrain with "
                         "this version, or use plan.eval.cost=latent")
    dataset = PixelDataset(meta["path"])
    train_eps, _ = split_episodes(len(dataset.episodes()), meta["val_fraction"],
                                  meta.get("split_seed", 0))
    if meta.get("train_episodes"):
        train_eps = train_eps[:meta["train_episodes"]]
    log.info("fitting the temporal distance on %d training episodes of %s", len(train_eps),
             meta["path"])
    latents = episode_latents(model, dataset, train_eps, int(meta.get("frameskip", 1)),
                              device=device)
    head, fit = fit_temporal_distance(latents, cfg, progress=progress)
    log.info("temporal distance: held-out error %.2f blocks (predicting the mean: %.2f)",
             fit["held_out_mae_blocks"], fit["mean_label_mae_blocks"])
    if not math.isfinite(fit["held_out_mae_blocks"]):
        raise ValueError("the temporal distance fit diverged (non-finite error); lower "
                         "plan.eval.temporal.lr")
    atomic_write(cache, lambda tmp: torch.save(
        {"key": key, "latent_dim": head.latent_dim, "state_dict": head.state_dict(),
         "fit": fit}, tmp))
    return head.to(device)
