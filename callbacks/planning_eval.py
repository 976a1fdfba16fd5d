"""Closed-loop planning during training: does the world model being trained already control?

Every ``every_n_steps`` optimiser steps (and once after the last), ``PlanningEval`` runs a
small closed-loop evaluation with the model as it is (eval mode, then back to training): a few
episodes of the same protocol ``plan.py`` runs (``plan.eval``), with a small planner budget,
no floor or ceiling. It logs ``plan/success`` (the fraction of episodes that met the goal),
``plan/distance`` (median final distance to the goal) and ``plan/unsolved_success`` (success on
the pairs not solved at the start) to the active logger, with the distance plot and
``videos`` agent | goal GIFs as media (``callbacks.media``), so success can be watched rising next
to the probe's R². The start/goal pairs are the same at every evaluation (the protocol's seed),
so the curve compares like with like. Only global rank 0 plans; the other ranks wait at the
next collective.

Configured by ``plan.train_eval`` (``every_n_steps = 0``, the default, turns it off).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from callbacks.media import log_media
from envs.meta import ModelMeta
from planners import build_planner
from planners.base import PlannerConfig
from planners.eval_config import ClosedLoopConfig, TrainEvalConfig

__all__ = ["PlanningEval"]

log = logging.getLogger(__name__)


class PlanningEval(L.Callback):
    """Small closed-loop evaluations of the module's world model during training.

    Args:
        config: when and how much (``TrainEvalConfig``).
        data_meta: the datamodule's ``model_meta`` (env, goal, history, frameskip).
        planner: a registered planner name; ``planner_config`` its settings (``samples`` and
            ``iterations`` are replaced by the config's).
        protocol: the evaluation protocol (``plan.eval``); episodes, budget, floor, ceiling,
            videos and progress are set here.
    """

    def __init__(self, config: TrainEvalConfig, data_meta: ModelMeta, planner: str = "cem",
                 planner_config: PlannerConfig | None = None,
                 protocol: ClosedLoopConfig | None = None) -> None:
        super().__init__()
        self.config, self.meta = config, data_meta
        base = planner_config or PlannerConfig()
        self.planner_name = planner
        self.planner_config = replace(base, samples=config.samples,
                                      iterations=config.iterations,
                                      elites=min(base.elites, config.samples))
        protocol = protocol or ClosedLoopConfig()
        self.protocol = replace(protocol, episodes=config.episodes,
                                num_envs=min(config.episodes, 8),
                                budget=config.budget or protocol.budget, floor=False,
                                ceiling=False, videos=min(config.videos, config.episodes),
                                progress=False, shard=0, num_shards=1)
        self.goal = data_meta.goal
        self.history: list[dict[str, float]] = []  # one entry per evaluation
        self._last_step = -1

    def evaluate(self, pl_module: L.LightningModule) -> tuple[dict[str, float], Any]:
        """One evaluation of ``pl_module.world_model`` as it is now: its metrics and report."""
        from envs.rollouts import make_env
        from planners.agent import MPCAgent
        from planners.evaluate import DatasetGoals, evaluate_closed_loop

        model = pl_module.world_model
        was_training = model.training
        model.eval()
        try:
            agent = MPCAgent(model, build_planner(self.planner_name, self.planner_config),
                             history=self.meta.history, frameskip=self.meta.frameskip,
                             replan_every=self.protocol.replan_every,
                             objective=self.protocol.objective, hold=self.protocol.hold)
            env_config = self.meta.env
            report = evaluate_closed_loop(lambda: make_env(env_config), agent, self.protocol,
                                          self.goal, DatasetGoals.from_meta(self.meta))
        finally:
            model.train(was_training)
        run = report.agent
        metrics = {"plan/success": run.success_rate, "plan/distance": run.final_distance_median}
        if run.unsolved_success_rate is not None and not math.isnan(run.unsolved_success_rate):
            metrics["plan/unsolved_success"] = run.unsolved_success_rate
        return metrics, report

    @staticmethod
    def _media(report: Any, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
        """The distance plot and the recorded episodes' GIFs (agent | goal) of ``report``."""
        import imageio.v2 as imageio

        from planners.report import plot_distances, write_videos

        plot = plot_distances(report, folder / "distance.png", report.goal.tolerance)
        images = {"plan/distance_plot": imageio.imread(plot)[..., :3]}
        videos = {f"plan/episode_{i}": path
                  for i, path in enumerate(write_videos(report.agent.rows, folder / "videos"))}
        return images, videos

    def _run(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if step == self._last_step or not trainer.is_global_zero:
            return
        self._last_step = step
        metrics, report = self.evaluate(pl_module)
        self.history.append({"step": step, **metrics})
        log.info("step %d: planning success %.0f%%, final distance median %.3f", step,
                 100 * metrics["plan/success"], metrics["plan/distance"])
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        if trainer.loggers and self.config.videos > 0:
            with tempfile.TemporaryDirectory(prefix="plan-media-") as tmp:
                images, videos = self._media(report, Path(tmp))
                log_media(trainer.loggers, step, images, videos)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        n = self.config.every_n_steps
        if n > 0 and trainer.global_step % n == 0 and trainer.global_step < trainer.max_steps:
            self._run(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.config.every_n_steps > 0:
            self._run(trainer, pl_module)
