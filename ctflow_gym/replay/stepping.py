"""Stepping a MuJoCo env through a window from where the simulator is: open loop, or by a plan.

A window is either a sequence of H actions (open loop) or an :class:`ActionPlan`: an
object with ``len(plan)`` steps and ``plan.action(observation, t)`` that chooses each
action from the observation actually reached (for example tracked execution of a
refined window, :mod:`ctflow_gym.refine.execution`). A plan needs the observation the
window starts from (``start_observation``).

Everything steps ``env.unwrapped``, so time limits and other wrappers stay out of a
replay; the caller restores the env (:mod:`ctflow_gym.replay.snapshot`) around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

import gymnasium as gym
import numpy as np

from ctflow_gym.replay.scoring import ValueFn, window_score
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC, set_sim_state
from ctflow_gym.replay.snapshot import EnvSnapshot, restore_snapshot


@runtime_checkable
class ActionPlan(Protocol):
    """A window executed in closed loop: ``len(plan)`` steps, each action chosen from the state reached."""

    def __len__(self) -> int:
        """Number of steps H."""

    def action(self, observation: np.ndarray, t: int) -> np.ndarray:
        """The action at step ``t`` given the observation reached before it."""


Window = Sequence[np.ndarray] | np.ndarray | ActionPlan


def require_start_observation(actions: Window, start_observation) -> None:
    """Raise naming ``start_observation`` when ``actions`` is a plan and it is missing."""
    if isinstance(actions, ActionPlan) and start_observation is None:
        raise ValueError("start_observation: executing an ActionPlan needs the observation its window starts from")


def step_open_loop(
    env: gym.Env, actions: Window, start_observation=None
) -> tuple[float, bool, np.ndarray | None, list[float]]:
    """Apply ``actions`` (a sequence, or an :class:`ActionPlan`) to the unwrapped env, stopping at a termination.

    Returns ``(summed reward, terminated, last observation, rewards)``, the rewards in
    step order (summed in that order, as an episode accumulates them).
    """
    window_return, terminated, observation, rewards, _, _ = _step_open_loop(env, actions, start_observation)
    return window_return, terminated, observation, rewards


def iterate_steps(
    env: gym.Env, actions: Window, start_observation=None
) -> Iterator[tuple[np.ndarray, Any, float, bool, dict[str, Any]]]:
    """Step the unwrapped env through ``actions`` (a sequence, or an :class:`ActionPlan`), stopping at a termination.

    Yields ``(action applied, observation, reward, terminated, info)`` after each step:
    the one loop that every replay here and every realisation
    (:mod:`ctflow_gym.replay.realisation`) steps by.
    """
    require_start_observation(actions, start_observation)
    base = env.unwrapped
    observation = start_observation
    plan = actions if isinstance(actions, ActionPlan) else None
    for t in range(len(actions)):
        action = np.asarray(plan.action(observation, t) if plan is not None else actions[t], dtype=np.float32)
        observation, reward, terminated, _, info = base.step(action)
        yield action, observation, reward, terminated, info
        if terminated:
            break


def _step_open_loop(
    env: gym.Env, actions: Window, start_observation=None
) -> tuple[float, bool, np.ndarray | None, list[float], dict[str, Any], np.ndarray]:
    """:func:`step_open_loop`, plus the last step's ``info`` (empty when no step was) and the actions applied."""
    rewards: list[float] = []
    observation, terminated, info = start_observation, False, {}
    applied = []
    for action, observation, reward, terminated, info in iterate_steps(env, actions, start_observation):
        applied.append(action)
        rewards.append(float(reward))
    return float(sum(rewards)), bool(terminated), observation, rewards, dict(info), np.asarray(applied)


def replay_actions(
    env: gym.Env, state: np.ndarray, actions: Window, spec: int = REPLAY_STATE_SPEC, start_observation=None
) -> tuple[np.ndarray, bool, np.ndarray | None]:
    """Restore the recorded ``state`` in ``env`` and apply ``actions`` (see :func:`step_open_loop`).

    Returns the rewards obtained (as many as steps taken), whether the env terminated,
    and the last observation.
    """
    set_sim_state(env, state, spec)
    _, terminated, observation, rewards = step_open_loop(env, actions, start_observation)
    return np.asarray(rewards), terminated, observation


@dataclass(frozen=True)
class WindowReplay:
    """One window of actions replayed from a snapshot, and its score.

    Attributes:
        window_return: summed reward of the steps taken.
        terminated: whether the env terminated inside the window (the replay stops there).
        end_observation: the observation after the last step taken.
        score: ``window_return`` plus gamma^H x V(end observation) when a value function
            was given and the window did not terminate (:func:`~ctflow_gym.replay.scoring.window_score`).
        end_info: the unwrapped env's ``info`` of the last step taken (what the env says
            about the state it is left in, e.g. Hopper's ``x_position``).
        actions: (steps taken, act_dim) the actions applied (for a tracked plan, not the planned ones).
    """

    window_return: float
    terminated: bool
    end_observation: np.ndarray | None
    score: float
    end_info: dict[str, Any] = field(default_factory=dict)
    actions: np.ndarray | None = None


def replay_window(
    env: gym.Env,
    start: EnvSnapshot,
    actions: Window,
    value_fn: ValueFn | None = None,
    gamma: float = 0.99,
    start_observation=None,
) -> WindowReplay:
    """Restore ``start`` and step ``actions`` (open loop, or an :class:`ActionPlan` from ``start_observation``).

    The env is left at the window's end. The horizon of the value tail is
    ``len(actions)``. The caller decides where the env goes next (back to the user's
    state, or on from the replayed end).
    """
    require_start_observation(actions, start_observation)
    restore_snapshot(env, start)
    window_return, terminated, end_observation, _, end_info, applied = _step_open_loop(env, actions, start_observation)
    score = window_score(window_return, end_observation, terminated, value_fn, gamma, len(actions))
    return WindowReplay(window_return, terminated, end_observation, score, end_info, applied)
