"""Capture and restore the exact MuJoCo simulator state of a gymnasium env.

Every dataset the package builds stores, for every observation, the simulator state
that produced it, so that any window can later be replayed from its true start state.
The state is read with ``mujoco.mj_getState`` using :data:`REPLAY_STATE_SPEC`:
time, qpos, qvel, actuator activations and the constraint solver's warm start.
That is everything a gymnasium MuJoCo v5 env's ``step`` depends on: ``ctrl`` is
overwritten by the next action, and applied forces, mocap bodies and equality flags
are never touched by those envs. The warm start is kept because without it the
solver may converge to a slightly different (within tolerance) answer, and we want
replay to be bit for bit. 19 float64 numbers for Hopper, against 58 for the full
``mjSTATE_INTEGRATION``, which matters for the size of shipped data.

Goal-conditioned envs (gymnasium-robotics mazes, which keep their goal outside MuJoCo
in ``env.unwrapped.goal``) have the goal appended to the state vector: the MuJoCo part
alone would replay the dynamics exactly but score a window against whatever goal the
replaying env happens to hold. An env counts as goal-conditioned when its base env has
a ``goal`` array and an ``update_target_site_pos`` method (the maze envs' own API).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

REPLAY_STATE_SPEC: int = int(
    mujoco.mjtState.mjSTATE_TIME
    | mujoco.mjtState.mjSTATE_QPOS
    | mujoco.mjtState.mjSTATE_QVEL
    | mujoco.mjtState.mjSTATE_ACT
    | mujoco.mjtState.mjSTATE_WARMSTART
)
"""``mjtState`` bit mask of what datasets record (see the module docstring)."""

SIM_STATE_INFO_KEY = "sim_state"
"""Key under which :class:`SimStateRecorder` puts the state in ``info``."""


def mujoco_handles(env: gym.Env) -> tuple[Any, Any] | None:
    """Return ``(model, data)`` of a MuJoCo-based env, or ``None`` for any other env.

    Works through wrappers: it looks at ``env.unwrapped``.
    """
    base = env.unwrapped
    model = getattr(base, "model", None)
    data = getattr(base, "data", None)
    if isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData):
        return model, data
    return None


def _require_handles(env: gym.Env, argument: str) -> tuple[Any, Any]:
    handles = mujoco_handles(env)
    if handles is None:
        raise TypeError(
            f"{argument} must be a MuJoCo-based gymnasium env (with unwrapped.model "
            f"and unwrapped.data); got {type(env.unwrapped).__name__}, which has no "
            "MuJoCo simulator state"
        )
    return handles


def task_goal(env: gym.Env) -> np.ndarray | None:
    """The goal a goal-conditioned env holds outside MuJoCo (a copy), else ``None``."""
    base = env.unwrapped
    goal = getattr(base, "goal", None)
    if isinstance(goal, np.ndarray) and callable(getattr(base, "update_target_site_pos", None)):
        return np.array(goal, dtype=np.float64)
    return None


def state_size(env: gym.Env, spec: int = REPLAY_STATE_SPEC) -> int:
    """Number of float64 values in the state vector of ``env`` for ``spec`` (goal included)."""
    model, _ = _require_handles(env, "env")
    goal = task_goal(env)
    return int(mujoco.mj_stateSize(model, spec)) + (0 if goal is None else goal.size)


def get_sim_state(env: gym.Env, spec: int = REPLAY_STATE_SPEC) -> np.ndarray:
    """Return a copy of the simulator state of ``env`` as a float64 vector (then the goal, if any)."""
    model, data = _require_handles(env, "env")
    state = np.empty(mujoco.mj_stateSize(model, spec), dtype=np.float64)
    mujoco.mj_getState(model, data, state, spec)
    goal = task_goal(env)
    return state if goal is None else np.concatenate([state, goal])


def set_sim_state(env: gym.Env, state: np.ndarray, spec: int = REPLAY_STATE_SPEC) -> None:
    """Restore ``state`` (from :func:`get_sim_state` with the same ``spec``) into ``env``.

    The simulator's data is reset first so that nothing outside ``spec`` survives from
    the env's previous life, then ``mj_forward`` recomputes derived quantities
    (positions of bodies, contacts), as after a gymnasium ``reset``.
    """
    model, data = _require_handles(env, "env")
    state = np.asarray(state, dtype=np.float64)
    expected = state_size(env, spec)
    if state.shape != (expected,):
        raise ValueError(
            f"state must be a float64 vector of length {expected} for this env and spec {spec}; got shape {state.shape}"
        )
    mujoco_size = int(mujoco.mj_stateSize(model, spec))
    mujoco.mj_resetData(model, data)
    mujoco.mj_setState(model, data, state[:mujoco_size], spec)
    mujoco.mj_forward(model, data)
    if expected > mujoco_size:
        base = env.unwrapped
        base.goal = state[mujoco_size:].copy()
        base.update_target_site_pos()


class SimStateRecorder(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds the simulator state to ``info`` at every ``reset`` and ``step``.

    ``info["sim_state"]`` is the state *after* the call, i.e. the state in which the
    returned observation was made and from which the next action acts. Minari's
    ``DataCollector(record_infos=True)`` then stores it next to each observation.
    """

    def __init__(self, env: gym.Env, spec: int = REPLAY_STATE_SPEC):
        gym.utils.RecordConstructorArgs.__init__(self, spec=spec)
        gym.Wrapper.__init__(self, env)
        _require_handles(env, "env")
        self.state_spec = spec

    def reset(self, **kwargs):
        """Reset the env and add the initial simulator state to ``info``."""
        obs, info = self.env.reset(**kwargs)
        info = dict(info)
        info[SIM_STATE_INFO_KEY] = get_sim_state(self.env, self.state_spec)
        return obs, info

    def step(self, action):
        """Step the env and add the resulting simulator state to ``info``."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info[SIM_STATE_INFO_KEY] = get_sim_state(self.env, self.state_spec)
        return obs, reward, terminated, truncated, info
