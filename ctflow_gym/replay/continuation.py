"""A policy's continuation from many simulator states at once: the exact return of "then the policy acts".

Verifying an improved window by its own return judges it as if the episode ended with
it; a window can buy speed with a posture its policy then falls from. Run from the
window's end state, the policy that will act afterwards says what the window is worth
to it: :func:`policy_continuations` restores each end state, lets the policy act for
``steps`` steps (or until a termination) and returns what it collected. The envs step in
lockstep, so the policy is asked once per step for every state still running (an SB3
model's ``predict`` takes the whole batch).

The continuation steps ``env.unwrapped``: no time limit applies, as in
:func:`ctflow_gym.replay.realisation.realise_window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ctflow_gym.data.actor_policies import policy_action_fn
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC, set_sim_state

LOCKSTEP_ENVS = 256
"""States continued side by side (envs kept alive at once; one policy call per step for them)."""


@dataclass(frozen=True)
class Continuations:
    """What a policy collected from each of N states.

    Attributes:
        returns: (N,) float64 sum of its rewards, in step order.
        steps: (N,) steps it took (``steps`` asked for, fewer where it terminated).
        terminated: (N,) whether it ended in a terminal state.
        end_observations: (N, obs_dim) the last observation (for a value tail).
    """

    returns: np.ndarray
    steps: np.ndarray
    terminated: np.ndarray
    end_observations: np.ndarray


def policy_continuations(
    env_id: str,
    sim_states: np.ndarray,
    observations: np.ndarray,
    policy: Any,
    steps: int,
    spec: int = REPLAY_STATE_SPEC,
) -> Continuations:
    """Let ``policy`` act for ``steps`` steps from each row of ``sim_states`` (module docstring).

    ``observations`` (N, obs_dim): the observation recorded with each state (a restored
    state gives it back bit for bit). ``policy``: an SB3-style model (its deterministic
    ``predict``) or a callable, either taking a batch (n, obs_dim) to (n, act_dim)
    (:func:`~ctflow_gym.data.actor_policies.policy_action_fn`). The same inputs give the
    same result (the simulator and a deterministic policy are exact).
    """
    act = policy_action_fn(policy, deterministic=True)
    n = len(sim_states)
    if len(observations) != n:
        raise ValueError(f"sim_states ({n}) and observations ({len(observations)}) must have one row per state")
    returns = np.zeros(n)
    taken = np.zeros(n, dtype=np.int64)
    terminated = np.zeros(n, dtype=bool)
    ends = np.array(observations, dtype=np.float64, copy=True)
    envs = [gym.make(env_id) for _ in range(min(n, LOCKSTEP_ENVS))]
    try:
        for env in envs:
            env.reset(seed=0)
        for lo in range(0, n, len(envs) or 1):
            rows = np.arange(lo, min(lo + len(envs), n))
            for env, row in zip(envs, rows):
                set_sim_state(env, sim_states[row], spec)
            running = np.ones(len(rows), dtype=bool)
            for _ in range(steps):
                live = np.flatnonzero(running)
                if not len(live):
                    break
                actions = np.asarray(act(ends[rows[live]].astype(np.float32)))
                for k, action in zip(live, actions):
                    observation, reward, done, _, _ = envs[k].unwrapped.step(action)
                    row = rows[k]
                    ends[row], returns[row], taken[row] = observation, returns[row] + float(reward), taken[row] + 1
                    if done:
                        terminated[row], running[k] = True, False
    finally:
        for env in envs:
            env.close()
    return Continuations(returns, taken, terminated, ends)


__all__ = ["LOCKSTEP_ENVS", "Continuations", "policy_continuations"]
