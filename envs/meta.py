"""What a dataset and a trained model record about their data, as typed dataclasses.

- ``DatasetMeta``: a dataset's ``meta.json`` (the env, sizes, state names, how it was
  collected or imported, counts, package versions).
- ``ModelMeta``: what a model stores about the data it was trained on (in its checkpoint's
  hyper-parameters and in an export's ``config.json``): the dataset's meta, where it lives, the
  frames the model sees (``observation_shape``), the window (``history``, ``frameskip``) and
  the held-out split, so that probes and planners rebuild everything from the model alone.

Both are written as plain JSON dicts (``to_dict``; Lightning hyper-parameters must be plain)
and read back by one versioned reader each (``from_dict``): older files, which lack a key a
later version added, are completed here and nowhere else. A key this code does not know is
kept in ``extra`` and written back unchanged, so reading and rewriting loses nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from envs.config import EnvConfig
from envs.goals import GoalSpec

__all__ = ["DATASET_FORMAT_VERSION", "MODEL_META_VERSION", "DatasetMeta", "MetaError",
           "ModelMeta"]

DATASET_FORMAT_VERSION = 1  # meta.json and the shard layout (envs.dataset)
MODEL_META_VERSION = 1  # the model's record of its data; checkpoints before it have none


class MetaError(ValueError):
    """A meta dict of an unknown version, or one that lacks what every version has."""


def _require(d: dict[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in d]
    if missing:
        raise MetaError(f"{what} lacks {missing}: it was not written by this framework, or "
                        "was edited; restore it from the original")


MAX_SHARDS = 1_000_000  # far above any dataset; a larger count is a damaged or hostile file


def _check_counts(d: dict[str, Any]) -> None:
    """The counts a reader loops over are whole, positive, consistent and bounded."""
    counts = {k: d[k] for k in ("action_dim", "state_dim", "num_episodes", "episode_steps",
                                "episodes_per_shard", "num_shards")}
    bad = [f"{k}={v!r}" for k, v in counts.items() if isinstance(v, bool)
           or not isinstance(v, int) or v < (0 if k == "state_dim" else 1)]
    if bad:
        raise MetaError(f"meta.json has {', '.join(bad)}: counts are whole numbers >= 1 "
                        "(state_dim >= 0); it was edited or damaged, restore it")
    want = -(-counts["num_episodes"] // counts["episodes_per_shard"])
    if counts["num_shards"] != want or counts["num_shards"] > MAX_SHARDS:
        raise MetaError(f"meta.json says num_shards={counts['num_shards']}, but "
                        f"{counts['num_episodes']} episodes of {counts['episodes_per_shard']} "
                        f"per shard make {want} (at most {MAX_SHARDS}); it was edited or "
                        "damaged, restore it")


@dataclass
class DatasetMeta:
    """A dataset's ``meta.json`` (``envs.dataset``)."""

    env: EnvConfig
    action_dim: int  # per env step
    state_dim: int
    state_names: list[str]
    num_episodes: int
    episode_steps: int  # actions per episode (the collection's limit)
    episodes_per_shard: int
    num_shards: int
    goal: GoalSpec | None = None  # the env's declared goal
    state_angles: dict[str, int] = field(default_factory=dict)  # state name -> angle order
    physics_dim: int | None = None  # None: no physics arrays (not MuJoCo, or imported)
    render_fps: float | None = None
    policy: dict[str, Any] = field(default_factory=lambda: {"name": "random", "kwargs": {}})
    seed: int | None = None  # None for imported data
    source: dict[str, Any] | None = None  # where imported data came from
    versions: dict[str, str] = field(default_factory=dict)
    complete: bool = False  # set with the totals below once every shard exists
    num_frames: int | None = None
    num_episodes_written: int | None = None
    format_version: int = DATASET_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know

    _ORDER = ("format_version", "env", "goal", "action_dim", "state_dim", "state_names",
              "state_angles", "physics_dim", "render_fps", "policy", "seed", "num_episodes",
              "episode_steps", "source", "versions", "episodes_per_shard", "num_shards",
              "complete", "num_frames", "num_episodes_written")
    _OPTIONAL_ABSENT = ("source", "complete", "num_frames", "num_episodes_written")

    @property
    def image_size(self) -> int:
        return self.env.image_size

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``meta.json``; the keys a dataset does not have are left out."""
        out: dict[str, Any] = {}
        for key in self._ORDER:
            value = getattr(self, key)
            if key in self._OPTIONAL_ABSENT and value in (None, False):
                continue
            if key == "env":
                value = asdict(value)
            elif key == "goal":
                value = value.to_dict() if value is not None else None
            out[key] = value
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetMeta:
        """The meta of a ``meta.json`` dict of any version this code reads.

        Raises:
            MetaError: a newer or unknown format version, or a key every version has missing.
        """
        version = d.get("format_version")
        if version != DATASET_FORMAT_VERSION:
            raise MetaError(f"format version {version!r}, this code reads "
                            f"{DATASET_FORMAT_VERSION}; collect the dataset again")
        _require(d, ("env", "action_dim", "state_dim", "num_episodes", "episode_steps",
                     "episodes_per_shard", "num_shards"), "meta.json")
        _check_counts(d)
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in d.items() if k in known}
        values["env"] = EnvConfig(**d["env"])
        values["goal"] = GoalSpec.from_dict(d["goal"]) if d.get("goal") else None
        values["state_names"] = list(d.get("state_names") or [])
        values["state_angles"] = dict(d.get("state_angles") or {})
        values["complete"] = bool(d.get("complete", False))
        return cls(**values, extra={k: v for k, v in d.items() if k not in known})

    @staticmethod
    def shard_record(recorded: dict[str, Any]) -> dict[str, Any]:
        """A shard's record of its dataset's meta keys, with its env completed to this
        version's ``EnvConfig`` fields (shards of older versions recorded fewer)."""
        if isinstance(recorded.get("env"), dict):
            try:
                recorded = {**recorded, "env": asdict(EnvConfig(**recorded["env"]))}
            except (TypeError, ValueError):
                pass  # left as recorded: the comparison names it
        return recorded

    def identity(self) -> dict[str, Any]:
        """The keys a resumed collection must agree on with the dataset on disk."""
        d = self.to_dict()
        return {k: d.get(k) for k in ("format_version", "env", "policy", "seed",
                                      "num_episodes", "episode_steps", "episodes_per_shard",
                                      "action_dim", "state_dim")}


@dataclass
class ModelMeta:
    """What a model knows of its training data; ``dataset`` is None for synthetic worlds."""

    observation_shape: tuple[int, ...]
    action_dim: int = 0  # per env step; the model's action block is frameskip x this
    history: int = 1
    frameskip: int = 1
    num_preds: int | None = None
    state_names: list[str] = field(default_factory=list)
    dataset: DatasetMeta | None = None
    path: str | None = None  # the dataset folder it was trained on
    val_fraction: float | None = None
    split_seed: int | None = None  # None: recorded before it was (the split is unknown)
    train_episodes: int | None = None  # the first N training episodes only (None: all)
    version: int = MODEL_META_VERSION

    _OWN = ("path", "observation_shape", "history", "num_preds", "frameskip", "val_fraction",
            "split_seed", "train_episodes")

    def __post_init__(self) -> None:
        self.observation_shape = tuple(int(s) for s in self.observation_shape)
        if self.dataset is not None:  # one source of truth for what the dataset says
            self.action_dim = self.dataset.action_dim
            self.state_names = list(self.dataset.state_names)

    @property
    def is_pixel(self) -> bool:
        """Whether the model was trained on a pixel dataset (and so can plan)."""
        return self.dataset is not None

    @property
    def env(self) -> EnvConfig:
        return self._pixel("env").env

    @property
    def goal(self) -> GoalSpec | None:
        return self.dataset.goal if self.dataset is not None else None

    @property
    def state_angles(self) -> dict[str, int]:
        return self.dataset.state_angles if self.dataset is not None else {}

    @property
    def block_dim(self) -> int:
        """The size of one action block the model takes: ``frameskip * action_dim``."""
        return self.frameskip * self.action_dim

    def _pixel(self, what: str) -> DatasetMeta:
        if self.dataset is None:
            raise MetaError(f"this model was trained on a synthetic world: it has no {what}; "
                            "only models trained on a pixel dataset plan or have envs")
        return self.dataset

    def to_dict(self) -> dict[str, Any]:
        """One flat JSON dict: the dataset's meta keys, then the model's own."""
        out = self.dataset.to_dict() if self.dataset is not None else {
            "action_dim": self.action_dim, "state_names": list(self.state_names)}
        own = {"path": self.path, "observation_shape": list(self.observation_shape),
               "history": self.history, "num_preds": self.num_preds,
               "frameskip": self.frameskip, "val_fraction": self.val_fraction,
               "split_seed": self.split_seed, "train_episodes": self.train_episodes}
        if self.dataset is None:  # synthetic worlds record the window only
            own = {k: own[k] for k in ("observation_shape", "history", "frameskip")}
        return {**out, **own, "model_meta_version": self.version}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMeta:
        """The meta of a checkpoint's ``data_meta`` (or an export's), of any version.

        Checkpoints written before ``model_meta_version`` (version 0) may lack
        ``observation_shape`` (square frames of ``env.image_size``), ``history`` and
        ``frameskip`` (1): those are filled in here. ``path``, ``val_fraction`` and
        ``split_seed`` stay None when absent (the held-out split is then unknown).
        """
        version = d.get("model_meta_version", 0)
        if version > MODEL_META_VERSION:
            raise MetaError(f"model meta version {version}, this code reads up to "
                            f"{MODEL_META_VERSION}; update worldmodel-lab")
        dataset = None
        if "env" in d:
            dataset = DatasetMeta.from_dict({k: v for k, v in d.items()
                                             if k not in cls._OWN and k != "model_meta_version"})
        shape = d.get("observation_shape")
        if shape is None:
            _require(d, ("env",), "the model's data meta (no observation_shape)")
            side = d["env"]["image_size"]
            shape = [side, side, 3]
        return cls(observation_shape=tuple(shape),  # made ints by __post_init__
                   action_dim=int(d.get("action_dim", 0)), history=int(d.get("history", 1)),
                   frameskip=int(d.get("frameskip", 1)), num_preds=d.get("num_preds"),
                   state_names=list(d.get("state_names") or []), dataset=dataset,
                   path=d.get("path"), val_fraction=d.get("val_fraction"),
                   split_seed=d.get("split_seed"),
                   train_episodes=d.get("train_episodes"))
