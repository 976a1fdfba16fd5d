"""The held-out split of a dataset's episodes: which ones train a model and which ones it never
saw (validation, probes, planning start/goal pairs).

The split depends on the episode count, the held-out fraction and a seed alone, so a model,
its probes and its planning evaluation agree on it without storing episode lists.
"""

from __future__ import annotations

import numpy as np

__all__ = ["split_episodes"]


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of train and validation episodes; at least one of each when both are asked."""
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_val = round(val_fraction * num_episodes)
    if val_fraction > 0 and num_episodes >= 2:
        n_val = min(max(n_val, 1), num_episodes - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
