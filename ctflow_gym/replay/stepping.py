"""Open-loop stepping of a MuJoCo env: apply a window of actions from where the simulator is.

Everything steps ``env.unwrapped``, so time limits and other wrappers stay out of a
replay; the caller restores the env (:mod:`ctflow_gym.replay.snapshot`) around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ctflow_gym.replay.scoring import ValueFn, window_score
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC, set_sim_state
from ctflow_gym.replay.snapshot import EnvSnapshot, restore_snapshot


def step_open_loop(env: gym.Env, actions) -> tuple[float, bool, np.ndarray | None, list[float]]:
    """Apply ``actions`` to the unwrapped env from its current state, stopping at a termination.

    Returns ``(summed reward, terminated, last observation, rewards)``, the rewards in
    step order (summed in that order, as an episode accumulates them).
    """
    window_return, terminated, observation, rewards, _ = _step_open_loop(env, actions)
    return window_return, terminated, observation, rewards


def _step_open_loop(env: gym.Env, actions) -> tuple[float, bool, np.ndarray | None, list[float], dict[str, Any]]:
    """:func:`step_open_loop`, plus the ``info`` of the last step taken (empty when no step was)."""
    base = env.unwrapped
    rewards: list[float] = []
    observation, terminated, info = None, False, {}
    for action in actions:
        observation, reward, terminated, _, info = base.step(np.asarray(action, dtype=np.float32))
        rewards.append(float(reward))
        if terminated:
            break
    return float(sum(rewards)), bool(terminated), observation, rewards, dict(info)


def replay_actions(
    env: gym.Env, state: np.ndarray, actions: np.ndarray, spec: int = REPLAY_STATE_SPEC
) -> tuple[np.ndarray, bool]:
    """Restore the recorded ``state`` in ``env`` and apply ``actions`` open loop (see :func:`step_open_loop`).

    Returns the rewards obtained (as many as steps taken) and whether the env terminated.
    """
    set_sim_state(env, state, spec)
    _, terminated, _, rewards = step_open_loop(env, actions)
    return np.asarray(rewards), terminated


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
    """

    window_return: float
    terminated: bool
    end_observation: np.ndarray | None
    score: float
    end_info: dict[str, Any] = field(default_factory=dict)


def replay_window(
    env: gym.Env, start: EnvSnapshot, actions, value_fn: ValueFn | None = None, gamma: float = 0.99
) -> WindowReplay:
    """Restore ``start`` and step ``actions`` open loop; the env is left at the window's end.

    The horizon of the value tail is ``len(actions)``. The caller decides where the env
    goes next (back to the user's state, or on from the replayed end).
    """
    restore_snapshot(env, start)
    window_return, terminated, end_observation, _, end_info = _step_open_loop(env, actions)
    score = window_score(window_return, end_observation, terminated, value_fn, gamma, len(actions))
    return WindowReplay(window_return, terminated, end_observation, score, end_info)
