"""A planning agent ready to act, from a checkpoint: the model wired into an ``MPCAgent``.

``load_agent`` wires a checkpoint's world model into an ``MPCAgent`` exactly as ``plan.py``
does, together with a factory for the env of the checkpoint's dataset (or ``env_id``) and its
goal spec::

    loaded = load_agent("outputs/reacher/model.ckpt")
    env = loaded.make_env()
    frame, _ = env.reset(seed=0)
    loaded.agent.reset(frame[None], goal_frame[None], seed=0)  # goal_frame: (H, W, 3) uint8
    action = loaded.agent.act(frame[None])[0]  # (A,) in [-1, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from envs.config import EnvConfig
from envs.goals import GoalSpec
from envs.meta import ModelMeta
from envs.rollouts import make_env
from planners import build_planner
from planners.agent import MPCAgent
from planners.base import PlannerConfig
from planners.eval_config import ClosedLoopConfig
from worldmodel.checkpoint import load_world_model, resolve_device, saved_plan_config
from worldmodel.utils import native_bf16
from worldmodel.world_model import JEPAWorldModel

__all__ = ["AGENT_SETTINGS", "PRECISIONS", "PretrainedAgent", "agent_for", "load_agent"]

PRECISIONS = ("auto", "bf16", "fp32")
AGENT_SETTINGS = ("replan_every", "objective", "hold")  # MPCAgent knobs, as in plan.eval
_PLANNER_SETTINGS = tuple(f.name for f in fields(PlannerConfig))
CostHeads = Callable[[JEPAWorldModel, ModelMeta, torch.device], dict[str, Any]]


@dataclass
class PretrainedAgent:
    """A checkpoint's planning agent and what it plans for.

    Attributes:
        agent: the ``MPCAgent`` (model on ``device``): ``reset(frames, goal_frames, seed)``,
            then ``act(frames) -> actions (B, A)``.
        make_env: a fresh env of ``env_config`` per call.
        goal: the goal spec the dataset recorded, when planning on the dataset's own env;
            None otherwise (the env's declared goal applies).
        env_config, planner, planner_config, device, bf16: how it was built.
        meta: the checkpoint's dataset meta.
    """

    agent: MPCAgent
    make_env: Callable[[], Any]
    goal: GoalSpec | None
    env_config: EnvConfig
    planner: str
    planner_config: PlannerConfig
    device: torch.device
    bf16: bool
    meta: ModelMeta


def _settings(saved: dict[str, Any], planner: str | None, overrides: dict[str, Any]
              ) -> tuple[str, PlannerConfig, dict[str, Any]]:
    """Planner name and config, and the agent knobs: overrides over the saved plan config
    over the defaults (``PlannerConfig``, ``ClosedLoopConfig``)."""
    unknown = set(overrides) - set(_PLANNER_SETTINGS) - set(AGENT_SETTINGS)
    if unknown:
        raise TypeError(f"load_agent got unknown settings {sorted(unknown)}; planner settings "
                        f"are {list(_PLANNER_SETTINGS)}, agent settings {list(AGENT_SETTINGS)}")
    saved_planner, saved_eval = saved.get("planner") or {}, saved.get("eval") or {}
    name = planner or saved_planner.get("name") or "cem"
    planner_config = PlannerConfig(**{k: overrides.get(k, saved_planner.get(k))
                                      for k in _PLANNER_SETTINGS
                                      if k in overrides or k in saved_planner})
    defaults = ClosedLoopConfig()
    agent = {k: overrides.get(k, saved_eval.get(k, getattr(defaults, k))) for k in AGENT_SETTINGS}
    return name, planner_config, agent


def agent_for(model: JEPAWorldModel, meta: ModelMeta, planner, bf16: bool = False,
              **settings: Any) -> MPCAgent:
    """The ``MPCAgent`` of a world model trained on data described by ``meta``: its history
    and frameskip come from the meta, ``settings`` are ``AGENT_SETTINGS``."""
    return MPCAgent(model, planner, history=meta.history, frameskip=meta.frameskip, bf16=bf16,
                    **settings)


def _check_other_env(env_config: EnvConfig, meta: ModelMeta) -> None:
    """Refuse ``env_id`` when the checkpoint's env settings do not build it, or when its
    frames or actions differ from the ones the model was trained on."""
    trained = meta.env.id
    fix = (f"leave plan.env_id unset to plan on {trained}, the env this model was trained "
           "on, or give an env with the same frames and actions")
    try:
        env = make_env(env_config)
    except Exception as err:  # noqa: BLE001 (the env's own error, whatever it is, is quoted)
        raise ValueError(f"plan.env_id={env_config.id!r}: this checkpoint was trained on "
                         f"{trained} with env settings {meta.env.kwargs}, which "
                         f"{env_config.id} does not accept ({type(err).__name__}: {err}); "
                         f"{fix}") from None
    try:
        frames, actions = tuple(env.observation_space.shape), int(env.action_space.shape[0])
    finally:
        env.close()
    want_frames = meta.observation_shape
    if frames != want_frames or actions != meta.action_dim:
        raise ValueError(f"plan.env_id={env_config.id!r} has frames {frames} and "
                         f"{actions} actions, but this checkpoint's model ({trained}) takes "
                         f"frames {want_frames} and {meta.action_dim} actions; {fix}")


def _check_plugin_trusted(checkpoint: str | Path, env_id: str, trusted: tuple[str, ...]
                          ) -> None:
    """Refuse a plug-in env id (``module:Env-v0``) that only a file names: importing its
    module would run code a checkpoint or a dataset chose."""
    if ":" in env_id and env_id not in trusted:
        raise ValueError(f"{checkpoint} names the plug-in env {env_id!r}, whose module would be "
                         "imported; a file does not choose code to run. Name it yourself: "
                         f"env.id={env_id} in your config or plan.env_id={env_id} (from Python, "
                         "load_agent(..., env_id=...))")


def load_agent(checkpoint: str | Path, planner: str | None = None,
               device: str | torch.device = "cpu", precision: str = "auto",
               env_id: str | None = None, cost_heads: CostHeads | None = None,
               trusted_env_ids: tuple[str, ...] = (), **overrides: Any) -> PretrainedAgent:
    """The world model of ``checkpoint`` as a ready ``MPCAgent``, wired as ``plan.py`` wires it.

    Args:
        checkpoint: a ``model.ckpt`` written by ``train.py``.
        planner: a registered planner name; None takes the run's (``plan.planner.name`` in its
            ``config.yaml``), else ``"cem"``.
        device: where the model plans (``"auto"``: CUDA when available).
        precision: ``"auto"`` (bf16 rollouts where native), ``"bf16"`` or ``"fp32"``.
        env_id: plan on another env with the same pixels and actions (default: the dataset's).
        trusted_env_ids: plug-in env ids (``module:Env-v0``) the caller's own config names; a
            checkpoint's plug-in id is imported only when it is one of these or ``env_id``.
        cost_heads: ``(model, meta, device) -> dict`` of further ``MPCAgent`` arguments
            (``distance``, ``prior``, ``prior_weight``, ``prior_init``), built on the loaded
            model before the agent is (``plan.py`` fits its heads on frozen latents so).
        **overrides: planner settings (``samples``, ``iterations``, ``horizon``, ...: see
            ``PlannerConfig``) and agent settings (``replan_every``, ``objective``, ``hold``);
            unset ones come from the run's ``config.yaml`` when present, else the defaults.
            History and frameskip always come from the checkpoint.

    Raises:
        TypeError: an override that is neither a planner nor an agent setting.
        ValueError: an unknown precision or planner, or invalid settings.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    name, planner_config, agent_settings = _settings(saved_plan_config(checkpoint), planner,
                                                     overrides)
    planner_obj = build_planner(name, planner_config)  # fails on a bad name before loading
    device = resolve_device(device)
    model, meta = load_world_model(checkpoint, device)
    _check_plugin_trusted(checkpoint, meta.env.id if env_id is None else env_id,
                          (*trusted_env_ids, *([env_id] if env_id else [])))
    bf16 = precision == "bf16" or (precision == "auto" and native_bf16(device))
    heads = cost_heads(model, meta, device) if cost_heads is not None else {}
    agent = agent_for(model, meta, planner_obj, bf16=bf16, **agent_settings, **heads)
    env_config = replace(meta.env, id=env_id or meta.env.id)
    if env_id is not None and env_id != meta.env.id:
        _check_other_env(env_config, meta)
    goal = meta.goal if env_id is None else None
    return PretrainedAgent(agent, partial(make_env, env_config), goal, env_config, name,
                           planner_config, device, bf16, meta)
