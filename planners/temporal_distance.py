"""A learned temporal distance between latents: a planning cost that knows what takes time.

The default planning cost is the squared L2 distance between a predicted latent and the goal's.
It weighs every latent direction alike, so a plan that moves a large, easy part of the scene
(an arm) to where it is in the goal image scores well even when the small, slow part (the
cube it should have carried) is left behind. In play data the slow parts are the ones that take
many steps to change. ``TemporalDistance`` is a small MLP on the frozen encoder's latents,
fitted on pairs of frames of the same episode to the number of action blocks between them
(offsets up to ``max_blocks``; pairs from two episodes are labelled ``max_blocks``). As a cost it
reads as "blocks from here to the goal", as a goal-conditioned value would, learned without
rewards or states: it works for any env with a pixel dataset.

``fit_temporal_distance`` fits it; ``temporal_distance_for`` fits it once per checkpoint and
caches it beside the checkpoint (``plan.eval.cost=temporal`` in ``plan.py``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from envs.meta import ModelMeta
from planners.eval_config import TemporalDistanceConfig
from planners.head_cache import (
    episode_latents,
    fit_pairs_head,
    held_out_indices,
    load_head,
    save_head,
    training_episodes,
)
from planners.protocols import WorldModel

__all__ = ["TemporalDistance", "TemporalDistanceConfig", "TemporalFit", "episode_latents",
           "fit_temporal_distance", "temporal_distance_for"]

log = logging.getLogger(__name__)


class TemporalDistance(nn.Module):
    """``(…, D), (…, D) -> (…)``: predicted action blocks from ``z`` to ``z_goal``, in
    ``[0, max_blocks]``."""

    def __init__(self, latent_dim: int, hidden: int = 256, max_blocks: int = 10) -> None:
        super().__init__()
        self.latent_dim, self.max_blocks = latent_dim, max_blocks
        self.fit: TemporalFit | None = None  # how well the fit that made it did
        self.net = nn.Sequential(nn.Linear(3 * latent_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, z: Tensor, z_goal: Tensor) -> Tensor:
        z, z_goal = torch.broadcast_tensors(z, z_goal)
        x = torch.cat([z, z_goal, z - z_goal], dim=-1)
        return self.max_blocks * torch.sigmoid(self.net(x)).squeeze(-1)


@dataclass(frozen=True)
class TemporalFit:
    """How well a fitted ``TemporalDistance`` predicts the blocks between held-out frames."""

    held_out_mae_blocks: float  # mean absolute error on pairs of the held-out episodes
    mean_label_mae_blocks: float  # the same for always predicting the mean label
    held_out_episodes: int  # 0: too few episodes to hold any out, the errors are in-sample


class _Table:
    """Per-episode latents flattened once: ``flat`` (N, D), ``lengths``, ``offsets``."""

    def __init__(self, latents: list[Tensor]) -> None:
        self.lengths = np.array([len(z) for z in latents])
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.flat = torch.cat(latents)


def _pairs(table: _Table, n: int, cfg: TemporalDistanceConfig,
           rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` training pairs ``(z_a, z_b, blocks)``: a frame and one of the same episode at a
    uniform offset in ``[0, max_blocks]`` blocks later (at most the episode's last frame), and
    a fraction ``other_episode_fraction`` with the second frame from another episode, labelled
    ``max_blocks``. Pairs of one episode further apart than ``max_blocks`` are not drawn."""
    lengths, offsets, count = table.lengths, table.offsets, len(table.lengths)
    ep = rng.integers(0, count, n)
    t = rng.integers(0, lengths[ep])
    k = np.minimum(rng.integers(0, cfg.max_blocks + 1, n), lengths[ep] - 1 - t)
    a, b = offsets[ep] + t, offsets[ep] + t + k
    label = k.astype(np.float32)
    other = rng.random(n) < (cfg.other_episode_fraction if count > 1 else 0.0)
    if other.any():
        ep2 = (ep[other] + rng.integers(1, count, other.sum())) % count
        b[other] = offsets[ep2] + rng.integers(0, lengths[ep2])
        label[other] = cfg.max_blocks
    return table.flat[a], table.flat[b], torch.as_tensor(label)


def fit_temporal_distance(latents: list[Tensor], cfg: TemporalDistanceConfig | None = None,
                          progress: bool = False) -> tuple[TemporalDistance, TemporalFit]:
    """Fit a ``TemporalDistance`` on per-episode latent sequences (``episode_latents``).

    One episode in ten (at least one, where there are two or more) is held out to measure the
    fit. Seeded by ``cfg.seed`` without touching the global random state.

    Returns:
        The head (eval mode, no gradients) and its ``TemporalFit``.

    Raises:
        ValueError: with fewer than two frames in every episode.
    """
    cfg = cfg or TemporalDistanceConfig()
    if not latents or max(len(z) for z in latents) < 2:
        raise ValueError("the temporal distance needs episodes of at least two frames "
                         f"(after frameskip); got lengths {[len(z) for z in latents][:5]}")
    held_idx = held_out_indices(len(latents))
    train = _Table([z for i, z in enumerate(latents) if i not in held_idx])
    held = _Table([latents[i] for i in sorted(held_idx)]) if held_idx else train
    rng = np.random.default_rng(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = TemporalDistance(latents[0].shape[1], cfg.hidden, cfg.max_blocks)
    fit_pairs_head(head, lambda: _pairs(train, cfg.batch_size, cfg, rng), cfg.steps, cfg.lr,
                   "temporal distance", progress)
    za, zb, k = _pairs(held, 20_000, cfg, np.random.default_rng(cfg.seed + 1))
    mae = (head(za, zb) - k).abs().mean().item()
    fit = TemporalFit(mae, (k - k.mean()).abs().mean().item(), len(held_idx))
    head.fit = fit
    return head, fit


def temporal_distance_for(checkpoint: Path, model: WorldModel, meta: ModelMeta,
                          cfg: TemporalDistanceConfig, device: torch.device | str = "cpu",
                          progress: bool = True) -> TemporalDistance:
    """The temporal distance of a trained world model, fitted on its training episodes.

    Cached beside the checkpoint (``model.ckpt`` -> ``model.temporal.pt``), keyed by the fit
    settings, the checkpoint's SHA-256 and the dataset's path and episode count: any change
    refits. An unreadable cache is refitted; one that cannot be written is only warned about.
    ``head.fit`` is its ``TemporalFit``.

    Raises:
        ValueError: when the checkpoint does not say where its dataset is, or the fit diverged.
    """
    cache = Path(checkpoint).with_suffix(".temporal.pt")
    dataset, episodes, key = training_episodes(checkpoint, meta, asdict(cfg),
                                               "plan.eval.cost=latent")
    saved = load_head(cache, key)
    if saved is not None:
        head = TemporalDistance(saved["latent_dim"], cfg.hidden, cfg.max_blocks)
        head.load_state_dict(saved["state_dict"])
        head.fit = TemporalFit(**saved["fit"])
        return head.eval().requires_grad_(False).to(device)
    latents = episode_latents(model, dataset, episodes, meta.frameskip,
                              device=device)
    head, fit = fit_temporal_distance(latents, cfg, progress=progress)
    if not math.isfinite(fit.held_out_mae_blocks):
        raise ValueError("the temporal distance fit diverged (non-finite error); lower "
                         "plan.eval.temporal.lr")
    save_head(cache, {"key": key, "latent_dim": head.latent_dim,
                      "state_dict": head.state_dict(), "fit": asdict(fit)}, "temporal distance")
    return head.to(device)

