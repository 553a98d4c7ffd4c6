"""Realise a planned window in MuJoCo: every transition the simulator actually produces.

A refined or generated window is a *plan*: its actions need not produce its states.
Realising it restores the source window's recorded simulator state, executes the plan
(its actions open loop, or an :class:`~ctflow_gym.replay.stepping.ActionPlan` that
chooses each action from the state reached) and records what happened: observations,
applied actions, true rewards, the termination flag and the simulator state before
every step and after the last. Those are real transitions, fit to be written as a
dataset (:mod:`ctflow_gym.improve`) and replayed again bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Sequence

import gymnasium as gym
import numpy as np

from ctflow_gym.data.validation import require_int
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC, get_sim_state, set_sim_state
from ctflow_gym.replay.stepping import Window, iterate_steps
from ctflow_gym.workers import in_chunks, require_workers


@dataclass(frozen=True)
class RealisedWindow:
    """The transitions a window really produced, from its start state (n <= H steps).

    Attributes:
        observations: (n + 1, obs_dim) the start observation, then one after each step.
        actions: (n, act_dim) the actions applied (for a plan, the ones it chose).
        rewards: (n,) float64 true rewards.
        terminated: whether the last step ended the episode in a terminal state (the
            realisation stops there, so n < H then).
        sim_states: (n + 1, state_dim) float64 simulator state at each observation.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    sim_states: np.ndarray

    @property
    def window_return(self) -> float:
        """Sum of the realised rewards, in step order."""
        return float(sum(self.rewards.tolist()))

    def __len__(self) -> int:
        return len(self.actions)


def realise_window(
    env: gym.Env,
    sim_state: np.ndarray,
    window: Window,
    start_observation: np.ndarray,
    spec: int = REPLAY_STATE_SPEC,
    steps: int | None = None,
) -> RealisedWindow:
    """Restore ``sim_state`` in ``env`` and execute ``window``, recording every transition.

    ``start_observation`` is the observation recorded with ``sim_state`` (the source
    window's first one; a recorded state replays bit for bit, so it is the observation
    the restored simulator gives). Steps ``env.unwrapped`` (no time limit), stopping at
    a termination, or after its first ``steps`` steps (None: all of them; what a teacher
    that replans sooner executes of its window).
    """
    if start_observation is None:
        raise ValueError("start_observation: realising a window records its first observation; give it")
    if steps is not None:
        require_int(steps, "steps", numpy_integers=True)
    set_sim_state(env, sim_state, spec)
    observations, actions, rewards, states = [np.asarray(start_observation)], [], [], [get_sim_state(env, spec)]
    terminated = False
    for action, observation, reward, terminated, _ in islice(iterate_steps(env, window, start_observation), steps):
        observations.append(np.asarray(observation))
        actions.append(action)
        rewards.append(float(reward))
        states.append(get_sim_state(env, spec))
    return RealisedWindow(
        observations=np.asarray(observations, dtype=np.float64),
        actions=np.asarray(actions, dtype=np.float32).reshape(len(actions), -1),
        rewards=np.asarray(rewards, dtype=np.float64),
        terminated=bool(terminated),
        sim_states=np.asarray(states, dtype=np.float64),
    )


def realise_windows(
    env_id: str,
    sim_states: np.ndarray,
    windows: Sequence[Window],
    start_observations: np.ndarray,
    spec: int = REPLAY_STATE_SPEC,
    workers: int = 1,
) -> list[RealisedWindow]:
    """:func:`realise_window` for each of ``windows`` from the matching row of ``sim_states``.

    ``windows``: (N, H, act_dim) actions, or N :class:`ActionPlan` objects;
    ``start_observations``: (N, obs_dim). ``workers`` > 1 spreads contiguous chunks over
    that many processes (:mod:`ctflow_gym.workers`), with the same results.
    """
    if sim_states is None:
        raise ValueError(
            "sim_states: realising a window needs the simulator state at its start, and this dataset recorded "
            "none; its improvements can only be used unverified (without replay)"
        )
    require_workers(workers)
    if len(sim_states) != len(windows) or len(start_observations) != len(windows):
        raise ValueError(
            f"sim_states ({len(sim_states)}), windows ({len(windows)}) and start_observations "
            f"({len(start_observations)}) must have one row per window"
        )
    if workers > 1:
        parts = in_chunks(_realise_chunk, workers, [sim_states, windows, start_observations], env_id=env_id, spec=spec)
        return [realised for part in parts for realised in part]
    return _realise_chunk(sim_states, windows, start_observations, env_id=env_id, spec=spec)


def _realise_chunk(sim_states, windows, start_observations, env_id: str, spec: int) -> list[RealisedWindow]:
    env = gym.make(env_id)
    env.reset(seed=0)
    try:
        return [realise_window(env, s, w, o, spec) for s, w, o in zip(sim_states, windows, start_observations)]
    finally:
        env.close()
