"""Batch replays of recorded windows: realised returns and one-step dynamics error.

- :func:`closed_loop_returns`: each window's actions replayed open loop in MuJoCo from
  the window's recorded start state; a termination inside the window ends its replay
  (the lost reward counts against the actions).
- :func:`dynamics_error` (the "validity" check of Flow to Better): for each (s_t, a_t) of
  a window, the simulator is put in s_t, steps a_t, and the result is compared with the
  window's s_{t+1}.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from ctflow_gym.envs.point_maze import is_point_maze
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC, mujoco_handles
from ctflow_gym.replay.stepping import replay_actions
from ctflow_gym.workers import in_chunks, require_workers


def closed_loop_returns(
    env_id: str,
    sim_states: np.ndarray,
    actions,
    spec: int = REPLAY_STATE_SPEC,
    start_observations: np.ndarray | None = None,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Realised return of each window of ``actions`` replayed from ``sim_states``.

    ``actions``: (N, H, act_dim) replayed open loop, or N :class:`ActionPlan` objects
    (then ``start_observations`` (N, obs_dim) gives each window's first observation).
    ``workers`` > 1 replays contiguous chunks in that many processes
    (:mod:`ctflow_gym.workers`), with the same results.
    Returns ``(returns (N,), terminated (N,) bool, end observations (N, obs_dim))``.
    """
    if sim_states is None:
        raise ValueError(
            "sim_states: closed-loop replay needs the simulator state at each window start; this dataset has no "
            "recorded states (build it with ctflow_gym.data.build_dataset)"
        )
    require_workers(workers)
    if workers > 1:
        parts = in_chunks(_returns_chunk, workers, [sim_states, actions, start_observations], env_id=env_id, spec=spec)
        return tuple(np.concatenate(arrays) for arrays in zip(*parts))
    return _returns_chunk(sim_states, actions, start_observations, env_id=env_id, spec=spec)


def _returns_chunk(sim_states, actions, start_observations, env_id: str, spec: int):
    env = gym.make(env_id)
    env.reset(seed=0)
    returns = np.empty(len(actions))
    terminated = np.zeros(len(actions), dtype=bool)
    ends = []
    for i, (state, window_actions) in enumerate(zip(sim_states, actions)):
        start = None if start_observations is None else start_observations[i]
        rewards, terminated[i], end = replay_actions(env, state, window_actions, spec, start)
        returns[i] = rewards.sum()
        ends.append(end)
    env.close()
    return returns, terminated, np.asarray(ends)


def dynamics_error(env_id: str, observations: np.ndarray, actions: np.ndarray, workers: int = 1) -> np.ndarray:
    """Mean one-step error || f(s_t, a_t) - s_{t+1} || per window, in observation units.

    Supported for MuJoCo envs whose observation is ``[qpos[1:], qvel]`` (Hopper,
    HalfCheetah, Walker2d with default options) and for the PointMaze envs
    (``[qpos, qvel, goal]``: the error is over the point's state; the goal is fixed);
    raises ``ValueError`` otherwise.
    ``workers`` as in :func:`closed_loop_returns`.
    """
    require_workers(workers)
    if workers > 1:
        return np.concatenate(in_chunks(_errors_chunk, workers, [observations, actions], env_id=env_id))
    return _errors_chunk(observations, actions, env_id=env_id)


def _errors_chunk(observations: np.ndarray, actions: np.ndarray, env_id: str) -> np.ndarray:
    env = gym.make(env_id)
    env.reset(seed=0)
    handles = mujoco_handles(env)
    if handles is None:
        raise ValueError(f"env_id: {env_id!r} is not a MuJoCo env; the dynamics error needs a simulator")
    if is_point_maze(env_id):
        return _point_maze_errors(env, observations, actions)
    model, _ = handles
    n_pos = model.nq - 1
    if observations.shape[-1] != n_pos + model.nv:
        raise ValueError(
            f"env_id: dynamics error needs observations [qpos[1:], qvel] ({n_pos + model.nv} numbers); "
            f"{env_id!r} has {observations.shape[-1]}"
        )
    base = env.unwrapped
    errors = np.zeros(len(observations))
    for i, (window_obs, window_act) in enumerate(zip(observations, actions)):
        step_errors = []
        for t in range(len(window_act) - 1):
            qpos = np.concatenate([[0.0], window_obs[t, :n_pos]])
            base.set_state(qpos, window_obs[t, n_pos:].astype(np.float64))
            next_obs, *_ = base.step(window_act[t])
            step_errors.append(np.linalg.norm(next_obs - window_obs[t + 1]))
        errors[i] = np.mean(step_errors)
    env.close()
    return errors


def _point_maze_errors(env: gym.Env, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
    point = env.unwrapped.point_env
    errors = np.zeros(len(observations))
    for i, (window_obs, window_act) in enumerate(zip(observations, actions)):
        step_errors = []
        for t in range(len(window_act) - 1):
            point.set_state(window_obs[t, 0:2].astype(np.float64), window_obs[t, 2:4].astype(np.float64))
            next_state, *_ = point.step(np.asarray(window_act[t], dtype=np.float64))
            step_errors.append(np.linalg.norm(next_state - window_obs[t + 1, 0:4]))
        errors[i] = np.mean(step_errors)
    env.close()
    return errors
