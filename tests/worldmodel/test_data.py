"""Training windows: inside one episode, right frames and action blocks, split by episode."""

import itertools

import numpy as np
import pytest
import torch

from envs.dataset import PixelDataset
from envs.splits import split_episodes
from worldmodel.data import (
    DataConfig,
    PixelDataModule,
    StepBatchSampler,
    WindowDataset,
)


@pytest.mark.parametrize("num_frames, frameskip", [(2, 1), (4, 1), (3, 5), (4, 5)])
def test_windows_never_cross_episodes_and_match_the_episode(tiny_dataset, num_frames, frameskip):
    data = PixelDataset(tiny_dataset)
    table = data.episodes()
    windows = WindowDataset(data, np.arange(len(table)), num_frames, frameskip)
    # every valid start: L - T*k per episode of L = 21 frames
    assert len(windows) == len(table) * (21 - num_frames * frameskip)
    batch = windows.__getitems__(list(range(len(windows))))
    assert batch["obs"].dtype == torch.uint8
    assert batch["obs"].shape == (len(windows), num_frames, 32, 32, 3)
    assert batch["actions"].shape == (len(windows), num_frames, frameskip * 2)
    assert torch.isfinite(batch["actions"]).all()  # never the undefined last action row
    for i in range(len(windows)):
        ep = data.episode(int(windows.episode[i]))
        start = windows.start[i] - table[table[:, 0] == windows.episode[i], 2][0]
        rows = start + np.arange(num_frames) * frameskip
        assert rows[-1] + frameskip <= len(ep["pixels"]) - 1
        np.testing.assert_array_equal(batch["obs"][i].numpy(), ep["pixels"][rows])
        np.testing.assert_array_equal(batch["states"][i].numpy(), ep["states"][rows])
        blocks = ep["actions"][start:start + num_frames * frameskip].reshape(num_frames, -1)
        np.testing.assert_array_equal(batch["actions"][i].numpy(), blocks)
    single = windows[3]
    np.testing.assert_array_equal(single["obs"].numpy(), batch["obs"][3].numpy())


def test_window_longer_than_episodes_is_a_clear_error(tiny_dataset):
    data = PixelDataset(tiny_dataset)
    with pytest.raises(ValueError, match="collect longer episodes"):
        WindowDataset(data, np.arange(6), num_frames=5, frameskip=5)


def test_split_by_episode():
    train, val = split_episodes(100, 0.1, seed=0)
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 100
    np.testing.assert_array_equal(split_episodes(100, 0.1, seed=0)[1], val)
    assert len(split_episodes(3, 0.01, seed=0)[1]) == 1  # at least one validation episode
    assert len(split_episodes(5, 0.0, seed=0)[1]) == 0


def test_datamodule_splits_by_episode_and_loads_in_workers(tiny_dataset):
    cfg = DataConfig(history=2, num_preds=1, frameskip=2, val_fraction=0.34, num_workers=2)
    dm = PixelDataModule(tiny_dataset, cfg, batch_size=8, seed=1)
    train_eps, val_eps = set(dm.train_set.episode), set(dm.val_set.episode)
    assert len(val_eps) == 2 and len(train_eps) == 4 and not train_eps & val_eps
    batches = list(itertools.islice(dm.train_dataloader(), 3))
    b = batches[0]
    assert b["obs"].shape == (8, 3, 32, 32, 3) and b["actions"].shape == (8, 3, 4)
    assert sum(len(v["obs"]) for v in dm.val_dataloader()) == len(dm.val_set)
    for split, data in (("train", dm.train_set), ("val", dm.val_set)):  # finite, complete
        assert sum(len(v["obs"]) for v in dm.probe_dataloader(split)) == len(data)
    with pytest.raises(ValueError, match="fewer than one batch"):
        PixelDataModule(tiny_dataset, cfg, batch_size=10_000)
    with pytest.raises(ValueError, match="history >= 1"):
        DataConfig(history=0)


def test_train_episodes_shrinks_the_training_set_and_keeps_the_held_out_episodes(tiny_dataset):
    full = PixelDataModule(tiny_dataset, DataConfig(val_fraction=0.34), batch_size=4, seed=1)
    part = PixelDataModule(tiny_dataset, DataConfig(val_fraction=0.34, train_episodes=2),
                           batch_size=4, seed=1)
    np.testing.assert_array_equal(part.val_set.episode, full.val_set.episode)
    kept = sorted(set(part.train_set.episode))
    assert kept == sorted(set(full.train_set.episode))[:2]
    assert len(part.train_set) == len(full.train_set) // 2  # equal-length episodes
    assert part.model_meta.train_episodes == 2 and full.model_meta.train_episodes is None
    with pytest.raises(ValueError, match="has 4 training episodes"):
        PixelDataModule(tiny_dataset, DataConfig(val_fraction=0.34, train_episodes=5), 4, seed=1)
    with pytest.raises(ValueError, match="train_episodes must be >= 1"):
        DataConfig(train_episodes=0)


def test_split_seed_keeps_the_held_out_episodes_across_training_seeds(tiny_dataset):
    cfg = DataConfig(val_fraction=0.5)
    by_seed = [PixelDataModule(tiny_dataset, cfg, batch_size=4, seed=s) for s in range(6)]
    assert len({tuple(sorted(set(m.val_set.episode))) for m in by_seed}) > 1  # seed moves it
    fixed = [PixelDataModule(tiny_dataset, DataConfig(val_fraction=0.5, split_seed=3), 4, seed=s)
             for s in range(6)]
    for m in fixed:
        np.testing.assert_array_equal(m.val_set.episode, by_seed[3].val_set.episode)
        assert m.model_meta.split_seed == 3  # what planning reads to find the pairs
    assert by_seed[1].model_meta.split_seed == 1
    with pytest.raises(ValueError, match="split_seed must be >= 0"):
        DataConfig(split_seed=-1)


def test_global_batches_split_over_ranks_and_resume_at_any_step():
    one = StepBatchSampler(50, 12, seed=4)
    assert one.batches_per_epoch == 4
    single = list(itertools.islice(iter(one), 10))  # crosses two epoch boundaries
    assert all(len(b) == 12 and len(set(b)) == 12 for b in single)
    epoch0 = sorted(i for b in single[:4] for i in b)
    assert len(set(epoch0)) == 48  # an epoch visits distinct windows
    assert single[:4] != single[4:8]  # and every epoch has its own order
    ranks = [list(itertools.islice(iter(StepBatchSampler(50, 12, r, 3, seed=4)), 10))
             for r in range(3)]
    for step, batch in enumerate(single):  # rank slices put together = the single batch
        assert [i for r in range(3) for i in ranks[r][step]] == batch
    resumed = StepBatchSampler(50, 12, seed=4, start_step=lambda: 7)
    assert list(itertools.islice(iter(resumed), 3)) == single[7:10]
    with pytest.raises(ValueError, match="global batch and must divide evenly over 5"):
        StepBatchSampler(50, 12, 0, 5)


def test_state_probe_reads_angles_through_sin_and_cos():
    from callbacks.state_probe import heldout_r2, probe_targets

    g = torch.Generator().manual_seed(0)
    angle = torch.rand(4000, generator=g) * 20 - 10  # a joint that turned several times
    other = torch.randn(4000, generator=g)
    states = torch.stack([angle, other], dim=1)
    latents = torch.stack([torch.sin(angle), torch.cos(angle), other], dim=1)  # ideal encoder
    targets, groups = probe_targets(states, angular={0})
    assert groups == [[0, 1], [2]]
    fit, test = slice(0, 3000), slice(3000, None)
    r = heldout_r2(latents[fit], targets[fit], latents[test], targets[test], groups)
    assert min(r["r2_per_group"]) > 0.999
    raw = heldout_r2(latents[fit], states[fit], latents[test], states[test])
    assert raw["r2_per_dim"][0] < 0.2  # the unbounded angle itself is not linear in them
