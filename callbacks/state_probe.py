"""Linear probe of a pixel world model's latent: how much of ``info["state"]`` it holds.

Fits an affine map latent -> state on training windows and reports R² on held-out windows,
pooled and per state entry, joint angles through their (sin, cos) (SCIENCE.md section 3). An
angle the frames show only up to a symmetry (a one-colour cube's yaw repeats every 90 degrees)
is probed through (sin kθ, cos kθ), k its symmetry order (``state_angles`` in a dataset's meta).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import lightning as L
import torch
from torch import Tensor

from envs.meta import ModelMeta
from worldmodel.identifiability import (
    affine_fit,
    orthogonality_error,
    procrustes_error,
    scaled_orthogonality_error,
)
from worldmodel.world_model import JEPAWorldModel

__all__ = ["READABLE_R2", "StateProbe", "angle_orders", "angular_state_indices", "encode_frames",
           "heldout_r2", "is_velocity", "probe_summary", "probe_targets", "state_probe",
           "unreadable_warnings"]

Angles = Iterable[int] | Mapping[int, int]  # angle entries, or entry -> symmetry order

log = logging.getLogger(__name__)


@torch.no_grad()
def encode_frames(world_model: JEPAWorldModel, batches: Iterable[dict[str, Tensor]],
                  max_frames: int) -> tuple[Tensor, Tensor]:
    """Latents ``(N, D)`` and states ``(N, S)`` of up to ``max_frames`` window frames."""
    was_training = world_model.training
    world_model.eval()
    device = next(world_model.parameters()).device
    latents, states, n = [], [], 0
    for batch in batches:
        z = world_model.encode(batch["obs"].to(device))  # (B, T, D)
        latents.append(z.flatten(0, 1).float().cpu())
        states.append(batch["states"].flatten(0, 1))
        n += len(latents[-1])
        if n >= max_frames:
            break
    world_model.train(was_training)
    return torch.cat(latents)[:max_frames], torch.cat(states)[:max_frames]


def heldout_r2(fit_x: Tensor, fit_y: Tensor, x: Tensor, y: Tensor,
               groups: list[list[int]] | None = None) -> dict[str, Any]:
    """R² on ``(x, y)`` of the affine map fitted on ``(fit_x, fit_y)``.

    Returns the pooled R², one per target column, and one per group of columns (pooled within
    the group, e.g. the sin and cos of one joint angle) when ``groups`` is given.
    """
    coef, bias = affine_fit(fit_x, fit_y)
    y64 = y.double()
    resid = (y64 - (x.double() @ coef + bias)).pow(2).sum(0)  # (S,)
    total = (y64 - y64.mean(0)).pow(2).sum(0).clamp_min(1e-12)  # (S,)
    out = {"r2": float(1 - resid.sum() / total.sum()), "r2_per_dim": (1 - resid / total).tolist()}
    if groups is not None:
        out["r2_per_group"] = [float(1 - resid[g].sum() / total[g].sum()) for g in groups]
    return out


def probe_targets(states: Tensor, angular: Angles) -> tuple[Tensor, list[list[int]]]:
    """State columns as probe targets: angles as (sin, cos) pairs, the rest as they are.

    Hinge angles are unbounded (a spinning joint accumulates turns), so a linear probe is only
    meaningful on their sine and cosine. ``angular`` lists the angle entries, or maps each to its
    symmetry order k: an angle the frames show only modulo 2π/k is probed as (sin kθ, cos kθ).
    Returns the targets and each state entry's columns.
    """
    orders = _orders(angular)
    columns, groups = [], []
    for i in range(states.shape[-1]):
        start = len(columns)
        if i in orders:
            columns += [torch.sin(orders[i] * states[:, i]), torch.cos(orders[i] * states[:, i])]
        else:
            columns.append(states[:, i])
        groups.append(list(range(start, len(columns))))
    return torch.stack(columns, dim=-1), groups


def _orders(angular: Angles) -> dict[int, int]:
    orders = dict(angular) if isinstance(angular, Mapping) else dict.fromkeys(angular, 1)
    bad = {i: k for i, k in orders.items() if int(k) != k or k < 1}
    if bad:
        raise ValueError(f"angle symmetry orders must be positive integers, got {bad}")
    return {int(i): int(k) for i, k in orders.items()}


def state_probe(world_model: JEPAWorldModel, fit_batches: Iterable[dict[str, Tensor]],
                eval_batches: Iterable[dict[str, Tensor]], state_names: list[str],
                angular: Angles = (), max_frames: int = 20000) -> dict[str, Any]:
    """Held-out R² of latent -> state: pooled (``probe/r2``) and per state entry
    (``probe/r2_<name>``; angles in ``angular`` through their sin and cos, see
    :func:`probe_targets`)."""
    angular = _orders(angular)
    if not state_names:
        return _skipped("the data records no state (state_dim 0): there is nothing to probe")
    fit_z, fit_s = _finite_rows(*encode_frames(world_model, fit_batches, max_frames))
    z, s = _finite_rows(*encode_frames(world_model, eval_batches, max_frames))
    if len(fit_s) < 2 or len(s) < 2:
        return _skipped("fewer than 2 training or held-out frames have a finite state "
                        "(NaN or inf in the data's states)")
    fit_y, groups = probe_targets(fit_s, angular)
    y, _ = probe_targets(s, angular)
    result = heldout_r2(fit_z, fit_y, z, y, groups)
    out: dict[str, Any] = {"probe/r2": result["r2"]}
    out.update({f"probe/r2_{name}": r for name, r in zip(state_names, result["r2_per_group"])})
    # how close the latent is to a rotation of the (standardised) state: SCIENCE.md section 3
    y_std = (y - y.mean(0)) / y.std(0).clamp_min(1e-8)
    out["probe/orthogonality_error"] = orthogonality_error(z, y_std)
    out["probe/procrustes_error"] = procrustes_error(z, y_std)
    spread = {name: float(y[:, g].std(0).max()) for name, g in zip(state_names, groups)}
    # the same, scale-free, on what one frame shows and the data moves (no velocities, no
    # constants): 0 when the latent holds them as a scaled rotation, whatever share it takes
    shown = [c for name, g in zip(state_names, groups)
             if not is_velocity(name) and spread[name] > MOVES for c in g]
    if shown:
        out["probe/scaled_orthogonality_error"] = scaled_orthogonality_error(z, y_std[:, shown])
    out["probe/warnings"] = unreadable_warnings(
        {name: r for name, r in zip(state_names, result["r2_per_group"])}, spread)
    return out


def _finite_rows(z: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """The frames whose state is finite: imported data may hold NaN states."""
    keep = torch.isfinite(s).all(dim=1)
    return (z, s) if bool(keep.all()) else (z[keep], s[keep])


def _skipped(reason: str) -> dict[str, Any]:
    return {"probe/skipped": reason, "probe/warnings": []}


READABLE_R2 = 0.5  # below this, a coordinate that moves is reported as not linearly readable
MOVES = 1e-3  # the held-out spread (std; of sin and cos for angles) of a coordinate that moves


def unreadable_warnings(r2: dict[str, float], spread: dict[str, float]) -> list[str]:
    """One message per state entry that moves in the data (``spread > MOVES``) but that the
    latent reads with held-out R² below ``READABLE_R2``, naming the fixes to try. Velocities
    are left out: one frame does not show them, so their R² is low by design."""
    return [f"state entry {name!r} moves in the data (std {spread[name]:.3g}) but the latent "
            f"reads it with held-out R2 {r:.2f} < {READABLE_R2}: the world model may not see "
            "it. What moved this most on reacher (benchmarks/probe_coordinates.py): data in "
            "which it moves more from step to step (collect.policy, collect.policy_kwargs.std; "
            "white-noise actions jitter in place) and a smaller loss.regulariser_weight. If it "
            "is hard to see at all (a link 1-2 px wide), make it bigger in the frames "
            "(env.kwargs.geom_radius) or use a larger env.image_size; a longer run "
            "(trainer.max_steps) or another encoder (model.encoder) may help too"
            for name, r in r2.items()
            if spread.get(name, 0.0) > MOVES and r < READABLE_R2 and not is_velocity(name)]


def angular_state_indices(meta: ModelMeta) -> list[int]:
    """The state entries a dataset's goal spec marks as angles (probed through sin, cos)."""
    goal = meta.goal
    if goal is None:
        return []
    return [i for i, a in zip(goal.indices, goal.angular or (), strict=False) if a]


def angle_orders(meta: ModelMeta) -> dict[int, int]:
    """Every angle entry of a dataset's state with its symmetry order: the goal spec's angles
    (order 1) and the env's ``state_angles`` (name -> order, e.g. 4 for a one-colour cube's
    yaw)."""
    orders = dict.fromkeys(angular_state_indices(meta), 1)
    names = list(meta.state_names)
    for name, k in meta.state_angles.items():
        if name not in names:
            raise ValueError(f"state_angles names {name!r}, which is not a state entry "
                             f"({names})")
        orders[names.index(name)] = int(k)
    return orders


def is_velocity(name: str) -> bool:
    """Whether a state entry is a velocity by its name: ``<joint>_vel``, ``<joint>_vel[i]``
    (``envs.mujoco_state``, OGBench cube) or ``qvel[i]`` (dm_control with free joints)."""
    base = name.split("[", 1)[0]
    return base == "qvel" or base.endswith("_vel")


def probe_summary(metrics: dict[str, Any]) -> str:
    """Two lines for the terminal: the held-out R² of each position / goal coordinate (what a
    frame shows) first, then the R² pooled over every entry with the velocities named apart.

    The encoder sees one frame at a time and a velocity is not visible in one frame, so its R²
    is near zero and pulls the pooled figure down; that is expected, not a failure.
    """
    if "probe/skipped" in metrics:
        return f"state probe skipped: {metrics['probe/skipped']}"
    per_entry = {k.removeprefix("probe/r2_"): v for k, v in metrics.items()
                 if k.startswith("probe/r2_")}
    warned = "".join(f"\n  warning: {m}" for m in metrics.get("probe/warnings") or [])
    shown = {n: r for n, r in per_entry.items() if not is_velocity(n)}
    velocities = {n: r for n, r in per_entry.items() if is_velocity(n)}

    def listed(entries: dict[str, float]) -> str:
        return ", ".join(f"{n} {r:.3f}" for n, r in entries.items())

    pooled = f"pooled over all {len(per_entry)} state entries {metrics['probe/r2']:.3f}"
    if not velocities:
        return (f"held-out linear probe R2 (latent -> state; angles as sin, cos): "
                f"{listed(shown)}\n  {pooled}{warned}")
    if not shown:
        return (f"held-out linear probe R2 (latent -> state): {pooled} ({listed(velocities)}: "
                f"velocities only, which one frame does not show){warned}")
    return (f"held-out linear probe R2 (latent -> positions; angles as sin, cos): "
            f"{listed(shown)}\n  {pooled}, low as expected: it includes the velocities "
            f"({listed(velocities)}), which one frame does not show{warned}")


class StateProbe(L.Callback):
    """Logs the held-out state probe every ``every_n_steps`` and at the end of training.

    Uses the datamodule's train windows to fit and its validation windows to score; the last
    result is kept in ``self.metrics``. A run resumed after it finished trains no step and
    reaches no ``on_train_end``: ``on_fit_end`` measures it then.
    """

    @classmethod
    def from_meta(cls, meta: ModelMeta, every_n_steps: int = 0) -> StateProbe:
        """The probe of a dataset: its state names, its angles (:func:`angle_orders`)."""
        return cls(meta.state_names, angle_orders(meta), every_n_steps)

    def __init__(self, state_names: list[str], angular: Angles = (),
                 every_n_steps: int = 0, max_frames: int = 20000) -> None:
        self.state_names, self.angular = list(state_names), _orders(angular)
        self.every_n_steps, self.max_frames = every_n_steps, max_frames
        self.metrics: dict[str, Any] = {}
        self._warned: set[str] = set()

    def _run(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:  # a diagnostic: rank 0 measures and logs it
            return
        data = trainer.datamodule
        self.metrics = state_probe(module.world_model, data.probe_dataloader("train"),
                                   data.probe_dataloader("val"), self.state_names, self.angular,
                                   self.max_frames)
        if "probe/skipped" in self.metrics and "skipped" not in self._warned:
            self._warned.add("skipped")  # once per run, not at every probe
            log.warning("state probe skipped: %s", self.metrics["probe/skipped"])
        for message in self.metrics["probe/warnings"]:
            if message.split(" moves", 1)[0] not in self._warned:  # once per entry and run
                self._warned.add(message.split(" moves", 1)[0])
                log.warning("step %d: %s", trainer.global_step, message)
        logged = {f"val/{k.replace('/', '_')}": v for k, v in self.metrics.items()
                  if isinstance(v, float)}
        for logger in trainer.loggers:
            logger.log_metrics(logged, step=trainer.global_step)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step < trainer.max_steps:
            self._run(trainer, module)

    def on_train_end(self, trainer, module) -> None:
        self._run(trainer, module)

    def on_fit_end(self, trainer, module) -> None:
        if not self.metrics:
            self._run(trainer, module)
