"""Receding-horizon agents: plan action blocks, execute them one env step at a time, replan.

``MPCAgent`` plans with a world model towards an encoded goal frame, keeping the latents of the
last ``history`` frames and the blocks between them. ``SimulatorAgent`` plans the same way on
the env's true physics (the ceiling of an evaluation). Both are batched over B environments.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from envs.goals import GoalSpec
from envs.simulator import MujocoSimulator
from planners.base import Planner, shift_plan
from planners.objectives import OBJECTIVES, LatentGoalCost
from planners.protocols import ActionPrior, CostFn, WorldModel

__all__ = ["BlockMPC", "MPCAgent", "SimulatorAgent", "SimulatorGoalCost"]


class BlockMPC:
    """Executes planned blocks of ``frameskip`` env actions; replans every ``replan_every``
    blocks, warm-started from the shifted plan. Subclasses provide ``cost_fn`` and may
    ``observe`` the frame at the end of each block.

    With ``hold``, the planner searches one env action per block, held for its ``frameskip``
    steps (a ``1/frameskip`` smaller search space). Without it, it searches the whole block;
    a model trained on smooth actions may then be exploited by plans that reverse the action
    inside a block, which it never saw (README, point_mass).
    """

    def __init__(self, planner: Planner, block_dim: int, frameskip: int = 1,
                 replan_every: int = 1, objective: str = "last", warm_start: bool = True,
                 device: torch.device | str = "cpu", hold: bool = False) -> None:
        if frameskip < 1 or block_dim % frameskip:
            raise ValueError(f"the action block ({block_dim}) must hold frameskip={frameskip} "
                             "env actions")
        if not 1 <= replan_every <= planner.config.horizon:
            raise ValueError(f"replan_every must be in [1, horizon={planner.config.horizon}], "
                             f"got {replan_every}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.planner, self.block_dim, self.frameskip = planner, block_dim, frameskip
        self.env_action_dim = block_dim // frameskip
        self.replan_every, self.objective, self.warm_start = replan_every, objective, warm_start
        self.hold = hold
        self.plan_dim = self.env_action_dim if hold else block_dim  # what the planner searches
        self.device = torch.device(device)
        self.plan_ms: list[float] = []

    def begin(self, batch_size: int, seed: int | Sequence[int] | None) -> None:
        self.planner.reset(seed)
        self.batch_size = batch_size
        self.plan: Tensor | None = None  # (B, H, plan_dim)
        self.next_block = 0  # index into plan
        self.block: Tensor | None = None  # the block being executed (B, kA)
        self.queue: deque[np.ndarray] = deque()  # env actions left in this block
        self.plan_ms = []

    def cost_fn(self) -> CostFn:
        raise NotImplementedError

    def blocks(self, planned: Tensor) -> Tensor:
        """Planned actions ``(..., plan_dim)`` as env action blocks ``(..., kA)``."""
        if not self.hold:
            return planned
        return planned.repeat(*(1,) * (planned.dim() - 1), self.frameskip)  # (a, a, ..., a)

    def observe(self, pixels: np.ndarray, block: Tensor) -> None:
        """The frames ``(B, H, W, 3)`` at the end of the executed ``block (B, kA)``."""

    def act(self, pixels: np.ndarray) -> np.ndarray:
        """The env actions ``(B, A)`` for the current frames ``(B, H, W, 3)``."""
        if not self.queue:
            if self.block is not None:
                self.observe(pixels, self.block)
            if self.plan is None or self.next_block >= self.replan_every:
                self._replan()
            self.block = self.blocks(self.plan[:, self.next_block])  # (B, kA)
            self.next_block += 1
            steps = self.block.view(self.batch_size, self.frameskip, self.env_action_dim)
            self.queue.extend(steps.transpose(0, 1).float().cpu().numpy())  # k x (B, A)
        return self.queue.popleft()

    def initial_plan(self) -> Tensor | None:
        """Where the search starts ``(B, H, plan_dim)``: the shifted previous plan (warm
        start), or None (the planner's own start)."""
        if self.warm_start and self.plan is not None:
            return shift_plan(self.plan, self.next_block)
        return None

    def _replan(self) -> None:
        start = time.perf_counter()  # the plan time counts the start's own rollout too
        init = self.initial_plan()
        block_cost = self.cost_fn()

        def cost(actions: Tensor) -> Tensor:  # (B, S, H, plan_dim) -> (B, S)
            return block_cost(self.blocks(actions))

        result = self.planner.plan(cost, self.batch_size, self.plan_dim, init, self.device)
        self.plan_ms.append((time.perf_counter() - start) * 1e3)
        self.plan, self.next_block = result.actions, 0


class MPCAgent(BlockMPC):
    """Plans in a world model's latent space towards the encoded goal frame.

    Args:
        model: the world model (``encode``, ``rollout``, ``action_dim`` = block size).
        planner: a sampling planner; its ``horizon`` counts blocks.
        history: latent frames the predictor reads (the data's ``history``).
        frameskip, replan_every, objective, warm_start, hold: see ``BlockMPC``.
        bf16: roll out under bf16 autocast (see ``LatentGoalCost``).
        distance: a learned latent distance for the cost (``TemporalDistance``); None: the
            squared L2 distance. An attribute, so a fitted head can be set after loading.
        prior, prior_weight, prior_init: a goal-conditioned action prior (``LatentPolicy``,
            ``planners.action_prior``): candidates pay ``prior_weight`` for leaving it and,
            with ``prior_init``, each search starts from its rollout through the model.
            Attributes, like ``distance``.
    """

    def __init__(self, model: WorldModel, planner: Planner, history: int, frameskip: int = 1,
                 replan_every: int = 1, objective: str = "last", warm_start: bool = True,
                 bf16: bool = False, hold: bool = False,
                 distance: Callable[[Tensor, Tensor], Tensor] | None = None,
                 prior: ActionPrior | None = None, prior_weight: float = 0.0,
                 prior_init: bool = True) -> None:
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        params = getattr(model, "parameters", None)
        device = next(params()).device if params is not None else torch.device("cpu")
        super().__init__(planner, model.action_dim, frameskip, replan_every, objective,
                         warm_start, device, hold)
        self.model, self.history, self.bf16, self.distance = model, history, bf16, distance
        self.prior, self.prior_weight, self.prior_init = prior, prior_weight, prior_init

    @torch.inference_mode()
    def encode(self, pixels: np.ndarray) -> Tensor:
        """``uint8 (B, H, W, 3) -> (B, D)``."""
        frames = torch.as_tensor(np.ascontiguousarray(pixels), device=self.device)
        return self.model.encode(frames[:, None])[:, 0].float()

    def reset(self, pixels: np.ndarray, goal_pixels: np.ndarray,
              seed: int | Sequence[int] | None = None) -> None:
        """Start from first frames ``(B, H, W, 3)`` towards goal frames of the same shape.

        Before the first frame the history repeats it with zero actions (the robot at rest).
        """
        if pixels.shape != goal_pixels.shape:
            raise ValueError(f"frames {pixels.shape} and goal frames {goal_pixels.shape} differ")
        z = self.encode(pixels)  # (B, D)
        self.begin(len(z), seed)
        self.z_goal = self.encode(goal_pixels)  # (B, D)
        self.z_hist = z[:, None].repeat(1, self.history, 1)  # (B, h, D)
        self.a_hist = z.new_zeros(len(z), self.history - 1, self.block_dim)  # (B, h-1, kA)

    def observe(self, pixels: np.ndarray, block: Tensor) -> None:
        z = self.encode(pixels)  # (B, D)
        self.z_hist = torch.cat([self.z_hist[:, 1:], z[:, None]], dim=1)
        if self.history > 1:
            self.a_hist = torch.cat([self.a_hist[:, 1:], block[:, None].float()], dim=1)

    def cost_fn(self) -> CostFn:
        return LatentGoalCost(self.model, self.z_hist, self.a_hist, self.z_goal, self.objective,
                              self.bf16, self.distance, self.prior, self.prior_weight)

    def initial_plan(self) -> Tensor | None:
        if self.prior is None or not self.prior_init:
            return super().initial_plan()
        return self.prior_rollout()

    @torch.inference_mode()
    def prior_rollout(self) -> Tensor:
        """The prior's plan ``(B, H, plan_dim)``: its block at the current latent, then at each
        latent the model predicts that block leads to (held blocks: the block's mean action)."""
        z, past = self.z_hist, self.a_hist  # (B, h, D), (B, h-1, kA)
        blocks = []
        for _ in range(self.planner.config.horizon):
            block = self.prior(z[:, -1], self.z_goal).float()  # (B, kA)
            blocks.append(block)
            seq = torch.cat([past, block[:, None]], dim=1)  # (B, h, kA)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                z_next = self.model.rollout(z, seq)[:, -1].float()  # (B, D)
            z, past = torch.cat([z[:, 1:], z_next[:, None]], dim=1), seq[:, 1:]
        plan = torch.stack(blocks, dim=1)  # (B, H, kA)
        if self.hold:
            plan = plan.view(*plan.shape[:2], self.frameskip, self.env_action_dim).mean(2)
        return plan


class SimulatorGoalCost:
    """Squared distance to the goal state on the goal coordinates (angles wrapped), from
    rolling candidate blocks through the true physics of each environment."""

    def __init__(self, simulator: MujocoSimulator, snapshots: np.ndarray,
                 goal_states: np.ndarray, goal: GoalSpec, frameskip: int, objective: str,
                 device: torch.device) -> None:
        self.simulator, self.snapshots, self.goal = simulator, snapshots, goal
        self.goal_states = np.asarray(goal_states)  # (B, S)
        self.frameskip, self.objective, self.device = frameskip, objective, device

    def __call__(self, actions: Tensor) -> Tensor:
        B, S, H, kA = actions.shape
        k = self.frameskip
        env_actions = actions.reshape(B, S, H * k, kA // k).double().cpu().numpy()
        states = self.simulator.rollout(self.snapshots, env_actions)[:, :, k - 1::k]  # (B,S,H,n)
        diff = self.goal.cost_difference(states, self.goal_states[:, None, None])  # (B,S,H,C)
        dist = (diff ** 2).sum(-1)  # (B, S, H)
        cost = dist[..., -1] if self.objective == "last" else dist.sum(-1)
        return torch.as_tensor(cost, dtype=torch.float32, device=self.device)


class SimulatorAgent(BlockMPC):
    """The same planner on the env's true physics: what a perfect world model would reach."""

    def __init__(self, planner: Planner, goal: GoalSpec, env_action_dim: int, frameskip: int = 1,
                 replan_every: int = 1, objective: str = "last", warm_start: bool = True,
                 hold: bool = False) -> None:
        super().__init__(planner, env_action_dim * frameskip, frameskip, replan_every,
                         objective, warm_start, hold=hold)
        self.goal = goal

    def reset(self, simulators: list[MujocoSimulator], goal_states: np.ndarray,
              seed: int | Sequence[int] | None = None) -> None:
        """``simulators``: one per environment (same model), read at every replan."""
        self.begin(len(simulators), seed)
        self.simulators, self.goal_states = simulators, np.asarray(goal_states)

    def cost_fn(self) -> CostFn:
        snapshots = np.stack([sim.snapshot() for sim in self.simulators])  # (B, nstate)
        return SimulatorGoalCost(self.simulators[0], snapshots, self.goal_states, self.goal,
                                 self.frameskip, self.objective, self.device)
