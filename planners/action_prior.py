"""A goal-conditioned action prior on the latents: plans that stay where the model saw data.

A sampling planner exploits a world model wherever the model is wrong, and a model trained on
play data is wrong mostly off the data: on the cube it scores plans that push the cube with an
open gripper 4-12x better than the data's own actions that really move it (README). The prior
``LatentPolicy`` is a small MLP on the frozen encoder's latents, fitted on the training episodes
to the action block the data took from a frame, given a frame up to ``max_blocks`` blocks later
in the same episode (goal-conditioned behaviour cloning with hindsight goals). Planning uses it
twice (``MPCAgent.prior``): each search starts from the prior's own rollout through the world
model, and every candidate pays ``weight`` times its actions' squared distance from what the
prior would do at the latents the candidate itself reaches, in units of the fit's held-out
residual per action entry. The planner then trades the model's cost against staying near
behaviour it was trained on (a MAP plan under a Gaussian action prior). It works for any env
with a pixel dataset; ``action_prior_for`` fits it once per checkpoint and caches it
(``plan.eval.prior.weight > 0`` in ``plan.py``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from envs.meta import ModelMeta
from planners.eval_config import ActionPriorConfig
from planners.head_cache import (
    episode_latents,
    fit_pairs_head,
    held_out_indices,
    load_head,
    save_head,
    training_episodes,
)

if TYPE_CHECKING:
    from envs.dataset import PixelDataset
    from planners.protocols import WorldModel

__all__ = ["ActionPriorConfig", "LatentPolicy", "PriorFit", "action_prior_for",
           "episode_actions", "fit_action_prior"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriorFit:
    """How well a fitted ``LatentPolicy`` predicts the data's action blocks on held-out
    episodes: ``held_out_r2`` is ``1 - mse / variance`` over every action entry."""

    held_out_mse: float
    action_variance: float  # the mse of always predicting the mean block
    held_out_r2: float
    held_out_episodes: int  # 0: too few episodes to hold any out, the figures are in-sample


class LatentPolicy(nn.Module):
    """``(…, D), (…, D) -> (…, kA)``: the data's next action block from ``z`` towards
    ``z_goal``. ``scale (kA,)`` is the fit's held-out residual per entry (``penalty``'s unit)."""

    def __init__(self, latent_dim: int, block_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.latent_dim, self.block_dim = latent_dim, block_dim
        self.fit: PriorFit | None = None
        self.net = nn.Sequential(nn.Linear(3 * latent_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, block_dim))
        self.register_buffer("scale", torch.ones(block_dim))

    def forward(self, z: Tensor, z_goal: Tensor) -> Tensor:
        z, z_goal = torch.broadcast_tensors(z, z_goal)
        return self.net(torch.cat([z, z_goal, z_goal - z], dim=-1)).clamp(-1.0, 1.0)

    def penalty(self, z: Tensor, z_goal: Tensor, actions: Tensor) -> Tensor:
        """``(…, D), (…, D), (…, kA) -> (…)``: mean squared standardised distance of
        ``actions`` from the prior's blocks (about 1 for the data's own actions)."""
        return ((actions - self(z, z_goal)) / self.scale).pow(2).mean(-1)


def episode_actions(dataset: PixelDataset, episodes: Sequence[int]) -> list[np.ndarray]:
    """The recorded actions ``(T_i, A)`` of these episodes (the last row of each is NaN)."""
    return [dataset.episode(int(ep), ("actions",))["actions"] for ep in episodes]


class _Episodes:
    """Per-episode latents ``(T_i, D)`` and actions ``(T_i, A)`` at the env's control rate,
    flattened once, for drawing (frame, goal frame, action block) triples."""

    def __init__(self, latents: list[Tensor], actions: list[np.ndarray], frameskip: int
                 ) -> None:
        self.k = frameskip
        keep = [i for i, z in enumerate(latents) if len(z) > frameskip]  # one block at least
        self.lengths = np.array([len(latents[i]) for i in keep])
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)
        self.z = torch.cat([latents[i] for i in keep])  # (N, D)
        self.actions = torch.as_tensor(np.concatenate([actions[i] for i in keep]))  # (N, A)

    def draw(self, n: int, max_blocks: int, rng: np.random.Generator
             ) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` triples: a frame ``t`` (any phase), the block of ``k`` actions taken from it,
        and the frame ``m`` blocks later, ``m`` uniform in ``[1, max_blocks]`` within the
        episode."""
        k = self.k
        ep = rng.integers(0, len(self.lengths), n)
        t = rng.integers(0, self.lengths[ep] - k)  # actions t .. t+k-1 are recorded
        most = np.minimum(max_blocks, (self.lengths[ep] - 1 - t) // k)  # >= 1
        m = rng.integers(1, most + 1)
        a, b = self.offsets[ep] + t, self.offsets[ep] + t + m * k
        rows = torch.as_tensor(a[:, None] + np.arange(k))  # (n, k)
        block = self.actions[rows].reshape(n, -1)  # (n, kA)
        return self.z[a], self.z[b], block


def fit_action_prior(latents: list[Tensor], actions: list[np.ndarray], frameskip: int,
                     cfg: ActionPriorConfig | None = None, progress: bool = False
                     ) -> tuple[LatentPolicy, PriorFit]:
    """Fit a ``LatentPolicy`` on per-episode latents ``(T_i, D)`` and actions ``(T_i, A)``,
    both at the control rate (every frame), to blocks of ``frameskip`` actions.

    One episode in ten (at least one, where there are two or more) is held out to measure the
    fit and set ``scale``. Seeded by ``cfg.seed`` without touching the global random state.

    Raises:
        ValueError: when the episodes and actions do not pair up, or no episode holds a block.
    """
    cfg = cfg or ActionPriorConfig()
    if len(latents) != len(actions) or any(len(z) != len(a) for z, a in zip(latents, actions)):
        raise ValueError("the action prior needs one action row per latent in every episode; "
                         f"got {[len(z) for z in latents][:5]} latents and "
                         f"{[len(a) for a in actions][:5]} actions")
    if not latents or max(len(z) for z in latents) <= frameskip:
        raise ValueError(f"the action prior needs episodes longer than one block of "
                         f"{frameskip} steps; got lengths {[len(z) for z in latents][:5]}")
    held_idx = held_out_indices(len(latents))
    train_idx = [i for i in range(len(latents)) if i not in held_idx]
    train = _Episodes([latents[i] for i in train_idx], [actions[i] for i in train_idx],
                      frameskip)
    held = _Episodes([latents[i] for i in sorted(held_idx)],
                     [actions[i] for i in sorted(held_idx)], frameskip) if held_idx else None
    if not len(train.lengths):
        raise ValueError(f"no training episode is longer than one block of {frameskip} steps")
    if held is None or not len(held.lengths):
        held = train  # the figures are then in-sample
    rng = np.random.default_rng(cfg.seed)
    block_dim = frameskip * actions[0].shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        head = LatentPolicy(latents[0].shape[1], block_dim, cfg.hidden)
    fit_pairs_head(head, lambda: train.draw(cfg.batch_size, cfg.max_blocks, rng), cfg.steps,
                   cfg.lr, "action prior", progress)
    z, z_goal, block = held.draw(20_000, cfg.max_blocks, np.random.default_rng(cfg.seed + 1))
    residual = head(z, z_goal) - block  # (n, kA)
    head.scale.copy_(residual.pow(2).mean(0).sqrt().clamp_min(cfg.min_scale))
    mse, var = residual.pow(2).mean().item(), block.var(0).mean().item()
    head.fit = PriorFit(mse, var, 1.0 - mse / max(var, 1e-12),
                        len(held_idx) if held is not train else 0)
    return head, head.fit


def action_prior_for(checkpoint: Path, model: WorldModel, meta: ModelMeta,
                     cfg: ActionPriorConfig, device: torch.device | str = "cpu",
                     progress: bool = True) -> LatentPolicy:
    """The action prior of a trained world model, fitted on its training episodes and cached
    beside the checkpoint (``model.ckpt`` -> ``model.prior.pt``; any change of the fit
    settings, the checkpoint or the dataset refits). ``head.fit`` is its ``PriorFit``.

    Raises:
        ValueError: when the checkpoint does not say where its dataset is, or the fit diverged.
    """
    cache = Path(checkpoint).with_suffix(".prior.pt")
    fit_settings = {k: v for k, v in asdict(cfg).items() if k not in ("weight", "init")}
    dataset, episodes, key = training_episodes(checkpoint, meta, fit_settings,
                                               "plan.eval.prior.weight=0")
    frameskip = meta.frameskip
    saved = load_head(cache, key)
    if saved is not None:
        head = LatentPolicy(saved["latent_dim"], saved["block_dim"], cfg.hidden)
        head.load_state_dict(saved["state_dict"])
        head.fit = PriorFit(**saved["fit"])
        return head.eval().requires_grad_(False).to(device)
    latents = episode_latents(model, dataset, episodes, frameskip=1, device=device)
    acts = episode_actions(dataset, episodes)
    head, fit = fit_action_prior(latents, acts, frameskip, cfg, progress=progress)
    if not math.isfinite(fit.held_out_mse):
        raise ValueError("the action prior's fit diverged (non-finite error); lower "
                         "plan.eval.prior.lr")
    save_head(cache, {"key": key, "latent_dim": head.latent_dim, "block_dim": head.block_dim,
                      "state_dict": head.state_dict(), "fit": asdict(fit)}, "action prior")
    return head.to(device)
