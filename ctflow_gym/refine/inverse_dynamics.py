"""Inverse dynamics fitted on logged data, and tracked execution of a refined window.

A refined window is a *plan*: states s^_1..s^_H and actions a^_1..a^_H decoded together.
Replaying a^ open loop ignores where the system actually goes; Decision Diffuser and
DiffStitch instead execute a planned state sequence with an inverse-dynamics model
g(s_t, s_{t+1}) -> a_t. :class:`InverseDynamics` is that g, an MLP on normalised
(s_t, s_{t+1} - s_t) trained by mean squared error on the dataset's transitions.

Tracked execution (:meth:`InverseDynamics.tracked_action`) uses g as a *correction* of
the planned action rather than in its place:

    a_t = clip(a^_t + g(s_t, s^_{t+1}) - g(s^_t, s^_{t+1}))                       (Eq. T1)

where s_t is the state actually reached. On plan (s_t = s^_t) this is exactly a^_t, so
an unrefined window (strength 0) replays bit for bit and g's fitting error cancels; off
plan, the correction steers back toward the next planned state. The last step of a
window has no next planned state and takes a^_H. We chose Eq. T1 over pure tracking
a_t = g(s_t, s^_{t+1}) because pure tracking changes even an unrefined window (by g's
error), while on refined windows both realise about the same return.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ctflow_gym.checkpoint import load_module_tensors, module_tensors
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.models import MLP
from ctflow_gym.refine.training import train_minibatch

HIDDEN, LAYERS = 256, 2
"""Width and depth of the inverse-dynamics MLP."""


def inverse_dynamics_loss(model: torch.nn.Module, states: torch.Tensor, deltas: torch.Tensor, actions: torch.Tensor):
    """|| g(s_t, s_{t+1} - s_t) - a_t ||^2 on normalised inputs and actions, averaged over entries."""
    return (model(torch.cat([states, deltas], dim=-1)) - actions).pow(2).mean()


class InverseDynamics:
    """g(s_t, s_{t+1}) -> a_t with its normalisation (see the module docstring).

    Args:
        obs_mean, obs_std, act_mean, act_std: normalisation of states and actions (float32 vectors).
        low, high: action bounds tracked actions are clipped to (None: no clipping).
        device: torch device.
    """

    def __init__(self, obs_mean, obs_std, act_mean, act_std, low=None, high=None, device="cpu"):
        self.obs_mean, self.obs_std = np.asarray(obs_mean, np.float32), np.asarray(obs_std, np.float32)
        self.act_mean, self.act_std = np.asarray(act_mean, np.float32), np.asarray(act_std, np.float32)
        self.low = None if low is None else np.asarray(low, np.float32)
        self.high = None if high is None else np.asarray(high, np.float32)
        self.device = torch.device(device)
        self.network = MLP(2 * len(self.obs_mean), len(self.act_mean), HIDDEN, LAYERS).to(self.device)

    def fit(
        self,
        states: np.ndarray,
        next_states: np.ndarray,
        actions: np.ndarray,
        steps: int,
        batch_size: int,
        lr: float,
        generator: torch.Generator,
        logger: RunLogger = NULL_LOGGER,
        progress_bar: bool = True,
    ) -> float:
        """Fit on transitions (M, obs_dim), (M, obs_dim), (M, act_dim); returns the final loss."""
        s = self._states(states)
        delta = self._states(next_states) - s
        a = torch.as_tensor((actions - self.act_mean) / self.act_std, dtype=torch.float32, device=self.device)
        transitions = lambda b: (s[b], delta[b], a[b])  # noqa: E731
        return self._train(transitions, len(s), steps, batch_size, lr, generator, logger, progress_bar)

    def fit_windows(
        self,
        observations: torch.Tensor,
        actions: torch.Tensor,
        end_observations: torch.Tensor | None,
        steps: int,
        batch_size: int,
        lr: float,
        generator: torch.Generator,
        logger: RunLogger = NULL_LOGGER,
        progress_bar: bool = True,
    ) -> float:
        """:meth:`fit` on every (s_t, s_{t+1}, a_t) inside windows, gathered batch by batch.

        ``observations`` (N, H, obs_dim) and ``actions`` (N, H, act_dim) are windows
        already normalised with this model's statistics, ``end_observations`` (N, obs_dim)
        the normalised observation after each window (None: none recorded). The
        transitions are indexed as :func:`~ctflow_gym.refine.fit_inputs.window_transitions`
        lays them out (window by window, then one step out of each window), so the
        batches, and the fit, are those of ``fit(*window_transitions(windows))``; but
        the N x (H - 1) transitions are never copied out of the windows (1.3 GB for a
        million 16-step Hopper windows).
        """
        n, horizon = observations.shape[:2]
        inner = n * (horizon - 1)
        total = inner + (0 if end_observations is None else n)

        def transitions(b: torch.Tensor):
            inside = b < inner
            i = torch.where(inside, b // (horizon - 1), b - inner)
            t = torch.where(inside, b % (horizon - 1), horizon - 1)
            s = observations[i, t]
            following = observations[i, (t + 1).clamp(max=horizon - 1)]
            if end_observations is not None:
                following = torch.where(inside[:, None], following, end_observations[i])
            return s, following - s, actions[i, t]

        return self._train(transitions, total, steps, batch_size, lr, generator, logger, progress_bar)

    def _train(self, transitions, n, steps, batch_size, lr, generator, logger, progress_bar) -> float:
        """Adam on the loss of ``transitions(batch indices) -> (s, s' - s, a)`` over ``n`` transitions."""
        self.network.train()
        loss = train_minibatch(
            self.network.parameters(),
            lambda b: inverse_dynamics_loss(self.network, *transitions(b)),
            n,
            steps,
            batch_size,
            lr,
            generator,
            "refiner/inverse_dynamics_loss",
            logger,
            progress_bar,
        )
        self.network.eval()
        return loss

    def _states(self, states) -> torch.Tensor:
        normalized = (np.asarray(states, dtype=np.float32) - self.obs_mean) / self.obs_std
        return torch.as_tensor(normalized, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def predict(self, states, next_states) -> np.ndarray:
        """g(s, s') in action units for batches (M, obs_dim) -> (M, act_dim), unclipped."""
        s = self._states(states)
        out = self.network(torch.cat([s, self._states(next_states) - s], dim=-1)).cpu().numpy()
        return out * self.act_std + self.act_mean

    def tracked_action(self, observation, plan_observations, plan_actions, t: int) -> np.ndarray:
        """Eq. T1: the action at step ``t`` of a plan, from the state actually reached.

        Args:
            observation: (obs_dim,) the state reached before step ``t``.
            plan_observations, plan_actions: (H, obs_dim), (H, act_dim) the refined window.
            t: step index in [0, H).
        """
        planned = np.asarray(plan_actions[t], dtype=np.float32)
        if t + 1 >= len(plan_observations):
            return planned
        reached_state = np.asarray(observation, np.float32)
        planned_state = np.asarray(plan_observations[t], np.float32)
        if np.array_equal(reached_state, planned_state):
            return planned  # on plan the correction is exactly 0 (a batched MLP may differ in the last bit)
        target = np.asarray(plan_observations[t + 1], dtype=np.float32)[None]
        states = np.stack([reached_state, planned_state])
        reached, on_plan = self.predict(states, np.repeat(target, 2, axis=0))
        action = planned + reached - on_plan
        if self.low is not None:
            action = np.clip(action, self.low, self.high)
        return action.astype(np.float32)

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The network's tensors keyed ``"<prefix>.<parameter>"``."""
        return module_tensors({prefix: self.network})

    def meta(self) -> dict[str, Any]:
        """JSON-ready normalisation and bounds."""
        return {
            "obs_mean": self.obs_mean.tolist(),
            "obs_std": self.obs_std.tolist(),
            "act_mean": self.act_mean.tolist(),
            "act_std": self.act_std.tolist(),
            "low": None if self.low is None else self.low.tolist(),
            "high": None if self.high is None else self.high.tolist(),
        }

    @classmethod
    def from_saved(
        cls,
        meta: dict[str, Any],
        tensors: dict[str, torch.Tensor],
        prefix: str,
        device: torch.device | str,
        path: str | os.PathLike,
    ) -> "InverseDynamics":
        """Inverse of :meth:`meta` / :meth:`tensors`; ``path`` (the checkpoint) is named if the tensors do not fit."""
        model = cls(
            meta["obs_mean"], meta["obs_std"], meta["act_mean"], meta["act_std"], meta["low"], meta["high"], device
        )
        load_module_tensors({prefix: model.network}, tensors, path)
        model.network.eval()
        return model
