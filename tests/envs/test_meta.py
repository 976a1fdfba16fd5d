"""Typed dataset and model metadata: one versioned reader each, lossless round trips."""

import json
from dataclasses import replace

import pytest

from envs.config import EnvConfig
from envs.dataset import PixelDataset
from envs.goals import GoalSpec
from envs.meta import DatasetMeta, MetaError, ModelMeta


def _dataset_meta(**changes) -> DatasetMeta:
    meta = DatasetMeta(env=EnvConfig(image_size=16), action_dim=2, state_dim=4,
                       state_names=["a_pos", "b_pos", "a_vel", "b_vel"], num_episodes=4,
                       episode_steps=10, episodes_per_shard=2, num_shards=2,
                       goal=GoalSpec(indices=(0, 1), tolerance=0.05, angular=(True, True)),
                       physics_dim=6, seed=3, versions={"numpy": "2"})
    return replace(meta, **changes)


def test_a_collected_meta_json_reads_and_writes_back_unchanged(tiny_dataset):
    on_disk = json.loads((tiny_dataset / "meta.json").read_text())
    meta = PixelDataset(tiny_dataset).meta
    assert isinstance(meta.env, EnvConfig) and isinstance(meta.goal, GoalSpec)
    assert meta.to_dict() == on_disk
    assert DatasetMeta.from_dict(meta.to_dict()) == meta


def test_unknown_keys_are_kept_and_old_files_get_this_versions_defaults():
    d = _dataset_meta().to_dict()
    d["added_by_a_later_tool"] = {"x": 1}
    del d["state_angles"], d["render_fps"], d["physics_dim"]  # absent in older meta.json files
    meta = DatasetMeta.from_dict(d)
    assert meta.extra == {"added_by_a_later_tool": {"x": 1}}
    assert meta.state_angles == {} and meta.physics_dim is None and not meta.complete
    assert meta.to_dict()["added_by_a_later_tool"] == {"x": 1}


@pytest.mark.parametrize("change, message", [
    ({"format_version": 2}, "format version 2, this code reads 1"),
    ({"format_version": None}, "format version None"),
    ({"num_shards": None}, r"lacks \['num_shards'\]"),
])
def test_a_meta_of_another_version_or_without_its_keys_is_refused(change, message):
    d = _dataset_meta().to_dict()
    for key, value in change.items():
        if value is None and key != "format_version":
            del d[key]
        else:
            d[key] = value
    with pytest.raises(MetaError, match=message):
        DatasetMeta.from_dict(d)


def test_a_model_meta_round_trips_as_one_flat_plain_dict():
    meta = ModelMeta((16, 16, 3), history=3, frameskip=5, num_preds=1,
                     dataset=_dataset_meta(), path="/data/x", val_fraction=0.1, split_seed=7,
                     train_episodes=None)
    d = meta.to_dict()
    assert json.loads(json.dumps(d)) == d  # Lightning hyper-parameters stay plain
    assert d["env"]["image_size"] == 16 and d["history"] == 3 and d["model_meta_version"] == 1
    back = ModelMeta.from_dict(d)
    assert back == meta and back.block_dim == 10 and back.goal == meta.dataset.goal
    assert back.action_dim == 2 and back.state_names[0] == "a_pos"  # the dataset's, always


def test_checkpoints_before_the_model_meta_version_read_with_their_defaults():
    """The first checkpoints stored the dataset's meta.json alone, with neither the window nor
    the held-out split: frames are square ``image_size``, one frame of history, no frameskip,
    and the split is unknown (so the dataset-goal protocol says what is missing)."""
    old = _dataset_meta().to_dict()
    meta = ModelMeta.from_dict(old)
    assert meta.observation_shape == (16, 16, 3) and (meta.history, meta.frameskip) == (1, 1)
    assert meta.split_seed is None and meta.path is None and meta.is_pixel


def test_synthetic_world_metas_have_no_env_and_say_so():
    meta = ModelMeta((2,), state_names=["z0", "z1"])
    back = ModelMeta.from_dict(meta.to_dict())
    assert back == meta and not back.is_pixel and back.goal is None
    with pytest.raises(MetaError, match="synthetic world: it has no env"):
        back.env  # noqa: B018
    with pytest.raises(MetaError, match="model meta version 9, this code reads up to 1"):
        ModelMeta.from_dict({**meta.to_dict(), "model_meta_version": 9})
