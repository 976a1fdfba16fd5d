"""Training windows from a pixel dataset: ``history + num_preds`` frames inside one episode.

A window of ``T = history + num_preds`` frames starting at row ``s`` of an episode holds the
frames ``s, s + k, ..., s + (T - 1) k`` (``k`` = frameskip) and, for each of them, the block
of the ``k`` actions taken until the next frame, flattened to ``k * A`` values. Windows never
cross an episode boundary and never touch an episode's last (undefined) action row. Pixels stay
``uint8`` until the model; memory maps are opened lazily in every DataLoader worker.

Batches are *global*: ``batch_size`` windows per optimiser step, whatever the number of ranks.
Training batch ``g`` is a pure function of ``(seed, g)`` (epoch ``g // batches_per_epoch`` of a
seeded permutation), and rank ``r`` of ``R`` loads the ``r``-th slice of it. So a run on R
processes sees exactly the batches of a single-process run, and a run resumed at step ``g``
continues with batch ``g`` as if it had never stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from common.checks import require_at_least
from envs.dataset import PixelDataset
from envs.meta import DatasetMeta, ModelMeta
from envs.splits import split_episodes

__all__ = ["DataConfig", "PixelDataModule", "StepBatchSampler", "WindowDataset", "rank_slice",
           "split_episodes"]


@dataclass
class DataConfig:
    """Windows and loading; ``path = None`` uses the default dataset of the env config."""

    path: str | None = None
    history: int = 3
    num_preds: int = 1
    frameskip: int = 1
    val_fraction: float = 0.05
    num_workers: int = 0
    # train on only this many of the training episodes (the first of them, in dataset order):
    # a data-size sweep on one collection, with the same held-out episodes; None = all
    train_episodes: int | None = None
    # the seed of the train / held-out episode split; None = the run's seed. Fix it to compare
    # training seeds on the same held-out episodes (so on the same planning pairs)
    split_seed: int | None = None

    def __post_init__(self) -> None:
        if self.history < 1 or self.num_preds < 0 or self.frameskip < 1:
            raise ValueError(f"need history >= 1, num_preds >= 0, frameskip >= 1; got "
                             f"{self.history}, {self.num_preds}, {self.frameskip}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        require_at_least("data", self, {"num_workers": 0})
        if self.train_episodes is not None and self.train_episodes < 1:
            raise ValueError(f"data.train_episodes must be >= 1 (or null for all), got "
                             f"{self.train_episodes}")
        if self.split_seed is not None and self.split_seed < 0:
            raise ValueError(f"data.split_seed must be >= 0 (or null for the run's seed), got "
                             f"{self.split_seed}")

    @property
    def window(self) -> int:
        return self.history + self.num_preds


class WindowDataset(Dataset):
    """Every window of ``num_frames`` frames (stride ``frameskip``) in the given episodes.

    Items are dicts: ``obs uint8 (T, H, W, 3)`` (pixels), ``actions float32 (T, k*A)``,
    ``states float32 (T, S)``. ``__getitems__`` serves a whole batch with one gather per shard.
    """

    def __init__(self, dataset: PixelDataset, episodes: np.ndarray, num_frames: int,
                 frameskip: int = 1) -> None:
        if num_frames < 1 or frameskip < 1:
            raise ValueError(f"num_frames and frameskip must be >= 1, got {num_frames}, {frameskip}")
        self.dataset, self.num_frames, self.frameskip = dataset, num_frames, frameskip
        table = dataset.episodes()[np.asarray(episodes, dtype=np.int64)]  # (E, 4)
        span = num_frames * frameskip  # rows covered by frames and their action blocks
        counts = np.maximum(table[:, 3] - span, 0)  # valid starts s <= L - 1 - span
        self.shard = np.repeat(table[:, 1], counts)  # (M,)
        offsets = np.concatenate([np.arange(c) for c in counts]) if counts.sum() else \
            np.zeros(0, np.int64)
        self.start = np.repeat(table[:, 2], counts) + offsets  # (M,) first row in its shard
        self.episode = np.repeat(table[:, 0], counts)  # (M,) global episode index
        if len(self.start) == 0 and len(table):
            raise ValueError(f"no window of {num_frames} frames with frameskip {frameskip} "
                             f"fits in episodes of at most {table[:, 3].max()} frames; shorten "
                             "history/num_preds/frameskip or collect longer episodes")
        self._frame_offsets = np.arange(num_frames) * frameskip  # (T,)
        self._action_offsets = np.arange(span)  # (T*k,)

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        B, T, k = len(idx), self.num_frames, self.frameskip
        meta = self.dataset.meta
        size, A, S = meta.image_size, meta.action_dim, meta.state_dim
        pixels = np.empty((B, T, size, size, 3), np.uint8)
        actions = np.empty((B, T, k * A), np.float32)
        states = np.empty((B, T, S), np.float32)
        shards = self.shard[idx]  # (B,)
        for shard_pos in np.unique(shards):
            sel = np.flatnonzero(shards == shard_pos)
            shard = self.dataset.shards[shard_pos]
            start = self.start[idx[sel]]  # (b,)
            rows = (start[:, None] + self._frame_offsets).ravel()  # (b*T,)
            pixels[sel] = shard.array("pixels")[rows].reshape(len(sel), T, size, size, 3)
            states[sel] = shard.array("states")[rows].reshape(len(sel), T, S)
            a_rows = (start[:, None] + self._action_offsets).ravel()  # (b*T*k,)
            actions[sel] = shard.array("actions")[a_rows].reshape(len(sel), T, k * A)
        return {"obs": torch.from_numpy(pixels), "actions": torch.from_numpy(actions),
                "states": torch.from_numpy(states)}


def rank_slice(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s equal share of a global batch (the remainder of ``len % world`` dropped)."""
    per_rank = len(batch) // world_size
    return batch[rank * per_rank:(rank + 1) * per_rank]


class StepBatchSampler(Sampler[list[int]]):
    """Endless training batches indexed by optimiser step; this rank's slice of each.

    Global batch ``g`` holds positions ``perm_e[j * B:(j + 1) * B]`` of epoch ``e, j =
    divmod(g, num_items // B)``, ``perm_e`` a permutation seeded by ``(seed, e)``. Iteration
    starts at ``start_step()`` (the trainer's global step, read when the loader is iterated), so
    a resumed run continues with the next unseen batch.

    Args:
        num_items: windows in the dataset.
        batch_size: global batch ``B`` (divisible by ``world_size``).
        rank, world_size: this process and the number of processes.
        seed: the shuffling seed.
        start_step: the first step to serve.
    """

    def __init__(self, num_items: int, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, start_step: Callable[[], int] = lambda: 0) -> None:
        if batch_size % world_size:
            raise ValueError(f"trainer.batch_size={batch_size} is the global batch and must "
                             f"divide evenly over {world_size} processes")
        if num_items < batch_size:
            raise ValueError(f"{num_items} windows are fewer than one batch of {batch_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size, self.start_step = rank, world_size, start_step
        self.batches_per_epoch = num_items // batch_size
        self._epoch: int | None = None  # the epoch whose permutation is cached

    def global_batch(self, step: int) -> np.ndarray:
        """Dataset positions of global batch ``step`` (all ranks together)."""
        epoch, j = divmod(step, self.batches_per_epoch)
        if self._epoch != epoch:
            self._epoch = epoch
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
        return self._perm[j * self.batch_size:(j + 1) * self.batch_size]

    def __iter__(self) -> Iterator[list[int]]:
        step = int(self.start_step())
        while True:
            yield rank_slice(self.global_batch(step), self.rank, self.world_size).tolist()
            step += 1


def _batched(batch: Any) -> Any:
    return batch  # ``__getitems__`` already returns a batch


class PixelDataModule(L.LightningDataModule):
    """Train/validation windows of a dataset directory, split by episode.

    Args:
        path: the dataset directory.
        config: windows, split and workers.
        batch_size: windows per optimiser step, over all ranks together (the global batch).
        seed: shuffling, and the episode split unless ``config.split_seed`` is set.
    """

    def __init__(self, path: str | Path, config: DataConfig, batch_size: int, seed: int = 0
                 ) -> None:
        super().__init__()
        self.path, self.config, self.batch_size, self.seed = Path(path), config, batch_size, seed
        self.dataset = PixelDataset(self.path)
        self.dataset.verify_once()  # corrupt bytes are an error, not training data
        self.split_seed = seed if config.split_seed is None else config.split_seed
        train_eps, val_eps = split_episodes(len(self.dataset.episodes()), config.val_fraction,
                                            self.split_seed)
        if config.train_episodes is not None:
            if config.train_episodes > len(train_eps):
                raise ValueError(f"data.train_episodes={config.train_episodes} but {self.path} has "
                                 f"{len(train_eps)} training episodes; lower it or collect more "
                                 "(collect.episodes)")
            train_eps = train_eps[:config.train_episodes]
        self.train_set, self.val_set = (
            WindowDataset(self.dataset, eps, config.window, config.frameskip)
            for eps in (train_eps, val_eps))
        if len(self.train_set) < batch_size:
            raise ValueError(f"{self.path} yields {len(self.train_set)} training windows, fewer "
                             f"than one batch of {batch_size}; collect more episodes or lower "
                             "trainer.batch_size")

    @property
    def meta(self) -> DatasetMeta:
        return self.dataset.meta

    @property
    def model_meta(self) -> ModelMeta:
        """The dataset meta plus where it lives and the window settings: what a model stores."""
        c, side = self.config, self.dataset.meta.image_size
        return ModelMeta(observation_shape=(side, side, 3), history=c.history,
                         num_preds=c.num_preds, frameskip=c.frameskip, dataset=self.dataset.meta,
                         path=str(self.path), val_fraction=c.val_fraction,
                         split_seed=self.split_seed, train_episodes=c.train_episodes)

    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, data: WindowDataset, batches) -> DataLoader:
        workers = self.config.num_workers
        return DataLoader(data, batch_sampler=batches, num_workers=workers, collate_fn=_batched,
                          persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        """Endless: this rank's slice of global batch ``g`` at step ``g`` (see the module doc)."""
        rank, world = self._ranks()
        sampler = StepBatchSampler(len(self.train_set), self.batch_size, rank, world, self.seed,
                                   self._global_step)
        return self._loader(self.train_set, sampler)

    def _global_step(self) -> int:
        return self.trainer.global_step if self.trainer is not None else 0

    def probe_dataloader(self, split: str) -> DataLoader:
        """One pass over every ``split`` ("train" or "val") window in a fixed random order, on
        this process alone: for diagnostics such as the state probe, never for training."""
        data = {"train": self.train_set, "val": self.val_set}[split]
        return self._loader(data, self._fixed_batches(len(data), self.seed + 1))

    def _fixed_batches(self, num_items: int, seed: int, rank: int = 0, world: int = 1
                       ) -> list[list[int]]:
        """Batches of one seeded permutation; this rank's slice of each, empty ones dropped."""
        order = np.random.default_rng(seed).permutation(num_items)
        batches = (rank_slice(order[i:i + self.batch_size], rank, world).tolist()
                   for i in range(0, num_items, self.batch_size))
        return [b for b in batches if b]

    def val_dataloader(self) -> DataLoader:
        # one fixed random order: batches mix episodes (SIGReg assumes i.i.d. samples, and
        # consecutive windows of one episode are not), and every validation sees the same ones;
        # every rank gets an equal slice of each global batch (SIGReg syncs across ranks)
        rank, world = self._ranks()
        return self._loader(self.val_set,
                            self._fixed_batches(len(self.val_set), self.seed, rank, world))
