"""DataModules of endless fresh batches: synthetic worlds, and in-memory observation pairs.

Both feed ``JEPAModule`` the batches every DataModule gives it, ``{"obs": (B, T, *O),
"actions": (B, T, A), "states": (B, T, S)}``, here with two time steps (the views) and no
actions. ``batch_size`` is the global batch: each of R ranks draws ``batch_size / R`` samples
from its own stream, seeded by the seed and its rank.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from envs.meta import ModelMeta
from worldmodel.synthetic import SyntheticWorld, action_free_meta

__all__ = ["PairsDataModule", "PairsStream", "SyntheticDataModule", "SyntheticStream"]


class SyntheticStream(IterableDataset):
    """Endless stream of fresh batches from a world; seeded per DataLoader worker and rank."""

    def __init__(self, world: SyntheticWorld, batch_size: int, seed: int = 0, rank: int = 0):
        super().__init__()
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {batch_size}")
        self.world, self.batch_size, self.seed, self.rank = world, batch_size, seed, rank

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        generator = torch.Generator().manual_seed(self.seed * 7919 + self.rank * 104729 + worker)
        while True:
            yield self.world.sample(self.batch_size, generator)


class PairsStream(IterableDataset):
    """Endless random batches (with replacement) of in-memory pairs, from a seeded generator.

    ``pairs``: ``{"obs": (N, 2, *O), "states": (N, 2, S)}``, e.g. rendered frames at sampled
    states (``benchmarks/pixel_identifiability.py``).
    """

    def __init__(self, pairs: dict[str, Tensor], batch_size: int, seed: int = 0) -> None:
        super().__init__()
        missing = {"obs", "states"} - set(pairs)
        if missing:
            raise ValueError(f"pairs need the keys obs and states; missing {sorted(missing)}")
        self.pairs, self.batch_size, self.seed = pairs, batch_size, seed

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        g = torch.Generator().manual_seed(self.seed)
        n = len(self.pairs["obs"])
        while True:
            idx = torch.randint(0, n, (self.batch_size,), generator=g)
            obs = self.pairs["obs"][idx]
            yield {"obs": obs, "actions": torch.zeros(len(idx), obs.shape[1], 0),
                   "states": self.pairs["states"][idx]}


class _StreamDataModule(L.LightningDataModule):
    """Shared: the global batch split over ranks, one stream per rank."""

    def __init__(self, batch_size: int, seed: int) -> None:
        super().__init__()
        self.batch_size, self.seed = batch_size, seed

    def _rank_batch(self) -> tuple[int, int]:
        rank, world = ((self.trainer.global_rank, self.trainer.world_size)
                       if self.trainer is not None else (0, 1))
        if self.batch_size % world:
            raise ValueError(f"trainer.batch_size={self.batch_size} is the global batch and "
                             f"must divide evenly over {world} processes")
        return rank, self.batch_size // world


class SyntheticDataModule(_StreamDataModule):
    """Fresh batches of a synthetic world."""

    def __init__(self, world: SyntheticWorld, batch_size: int, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.world = world

    @property
    def model_meta(self) -> ModelMeta:
        return self.world.to_meta()

    def train_dataloader(self) -> DataLoader:
        rank, batch = self._rank_batch()
        return DataLoader(SyntheticStream(self.world, batch, self.seed, rank), batch_size=None,
                          num_workers=0)


class PairsDataModule(_StreamDataModule):
    """Random batches of in-memory observation pairs (one process: the stream is unsharded)."""

    def __init__(self, pairs: dict[str, Tensor], batch_size: int, seed: int = 0) -> None:
        super().__init__(batch_size, seed)
        self.pairs = pairs

    @property
    def model_meta(self) -> ModelMeta:
        return action_free_meta(list(self.pairs["obs"].shape[2:]))

    def train_dataloader(self) -> DataLoader:
        rank, batch = self._rank_batch()
        if rank:
            raise ValueError("PairsDataModule trains on one process; use a single device")
        return DataLoader(PairsStream(self.pairs, batch, self.seed), batch_size=None)
