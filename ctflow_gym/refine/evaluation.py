"""How good is a refinement? Proxy, deviation, and the closed-loop truth.

- proxy feedback gain: the held-out return predictor's P(E(refined)) - P(E(source))
  (seed 000, appendix A.5), reported by :meth:`TrajectoryRefiner.refine`;
- action and latent deviation between refined and source windows;
- closed-loop gain (what the paper could not report): the refined actions are
  replayed open loop in MuJoCo from the source window's recorded start state and the
  realised window return is compared with the source's realised return (the source
  replays bit for bit, so that is its recorded return). A termination inside the
  window ends the replay: the lost reward counts against the refinement;
- dynamics error (the "validity" check of seed 002): for each refined (s_t, a_t), the
  simulator is put in s_t, steps a_t, and the result is compared with the refined
  s_{t+1}; the same number for the source windows is the reference.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ctflow_gym.data.sim_state import REPLAY_STATE_SPEC, mujoco_handles, replay_actions
from ctflow_gym.data.windows import Windows


def closed_loop_returns(env_id: str, sim_states: np.ndarray, actions: np.ndarray, spec: int = REPLAY_STATE_SPEC) -> tuple[np.ndarray, np.ndarray]:
    """Realised return of each window of ``actions`` replayed from ``sim_states``.

    Returns ``(returns (N,), terminated (N,) bool)``.
    """
    if sim_states is None:
        raise ValueError("closed-loop replay needs the simulator state at each window start; this dataset has no recorded states (build it with ctflow_gym.data.build_dataset)")
    env = gym.make(env_id)
    env.reset(seed=0)
    returns = np.empty(len(actions))
    terminated = np.zeros(len(actions), dtype=bool)
    for i, (state, window_actions) in enumerate(zip(sim_states, actions)):
        rewards, terminated[i] = replay_actions(env, state, window_actions, spec)
        returns[i] = rewards.sum()
    env.close()
    return returns, terminated


def dynamics_error(env_id: str, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Mean one-step error || f(s_t, a_t) - s_{t+1} || per window, in observation units.

    Supported for MuJoCo envs whose observation is ``[qpos[1:], qvel]`` (Hopper,
    HalfCheetah, Walker2d with default options); raises ``ValueError`` otherwise.
    """
    env = gym.make(env_id)
    env.reset(seed=0)
    handles = mujoco_handles(env)
    if handles is None:
        raise ValueError(f"env_id: {env_id!r} is not a MuJoCo env; the dynamics error needs a simulator")
    model, _ = handles
    n_pos = model.nq - 1
    if observations.shape[-1] != n_pos + model.nv:
        raise ValueError(f"env_id: dynamics error needs observations [qpos[1:], qvel] ({n_pos + model.nv} numbers); {env_id!r} has {observations.shape[-1]}")
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


def _mean_se(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "se": se}


def evaluate_refinement(
    refiner,
    windows: Windows,
    strength: float = 1.0,
    method: str = "flow",
    closed_loop: bool = True,
    validity: bool = True,
    steps: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Refine ``windows`` and measure everything above; returns mean and SE per metric.

    ``windows`` should come from episodes the refiner did not train on (e.g. the
    second part of :func:`ctflow_gym.data.split_episodes`).
    """
    env_id = windows.env_id or refiner.env_id
    if (closed_loop or validity) and env_id is None:
        raise ValueError("windows.env_id is unknown; closed-loop and validity checks need the env")
    result = refiner.refine(windows.observations, windows.actions, strength=strength, steps=steps, method=method, seed=seed)
    report: dict[str, Any] = {
        "method": method,
        "strength": strength,
        "windows": len(windows),
        "action_deviation": _mean_se(result.action_deviation),
        "latent_deviation": _mean_se(result.latent_deviation),
    }
    if result.predicted_gain is not None:
        report["proxy_gain"] = _mean_se(result.predicted_gain)
    if closed_loop:
        spec = windows.sim_state_spec or REPLAY_STATE_SPEC
        refined_returns, terminated = closed_loop_returns(env_id, windows.sim_states, result.actions, spec)
        source_returns = windows.rewards.astype(np.float64).sum(axis=1)
        gain = refined_returns - source_returns
        report["realized_gain"] = _mean_se(gain)
        report["realized_gain_positive_fraction"] = float(np.mean(gain > 0))
        report["refined_terminated_fraction"] = float(terminated.mean())
        report["source_return"] = _mean_se(source_returns)
    if validity:
        report["dynamics_error"] = _mean_se(dynamics_error(env_id, result.observations, result.actions))
        report["source_dynamics_error"] = _mean_se(dynamics_error(env_id, windows.observations, windows.actions))
    return report
