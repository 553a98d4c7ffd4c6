"""Exact snapshots of a running gymnasium MuJoCo env, for replay and restore.

A snapshot holds everything the env's future depends on: the full MuJoCo state
(``mjSTATE_INTEGRATION``: time, qpos, qvel, act, warm start, ctrl, applied forces,
mocap, ...), the step counter of every ``TimeLimit`` wrapper in the chain, and the
bit generator state of the env's ``np_random``. Restoring it puts the env back so
that the same actions give bit-identical observations and rewards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from ctflow_gym.replay.sim_state import get_sim_state, mujoco_handles, set_sim_state

FULL_STATE_SPEC = int(mujoco.mjtState.mjSTATE_INTEGRATION)


@dataclass(frozen=True)
class EnvSnapshot:
    """What :func:`capture_snapshot` saved."""

    sim_state: np.ndarray
    elapsed_steps: tuple[int | None, ...]
    rng_state: dict[str, Any] | None


def _wrapper_chain(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _time_limits(env: gym.Env) -> list[gym.wrappers.TimeLimit]:
    return [e for e in _wrapper_chain(env) if isinstance(e, gym.wrappers.TimeLimit)]


def capture_snapshot(env: gym.Env) -> EnvSnapshot:
    """Save the env's simulator state, time-limit counters and RNG."""
    base = env.unwrapped
    rng = getattr(base, "_np_random", None)
    return EnvSnapshot(
        sim_state=get_sim_state(env, FULL_STATE_SPEC),
        elapsed_steps=tuple(getattr(t, "_elapsed_steps", None) for t in _time_limits(env)),
        rng_state=None if rng is None else rng.bit_generator.state,
    )


def restore_snapshot(env: gym.Env, snapshot: EnvSnapshot) -> None:
    """Put the env back exactly where :func:`capture_snapshot` found it."""
    set_sim_state(env, snapshot.sim_state, FULL_STATE_SPEC)
    for limit, steps in zip(_time_limits(env), snapshot.elapsed_steps):
        limit._elapsed_steps = steps
    rng = getattr(env.unwrapped, "_np_random", None)
    if rng is not None and snapshot.rng_state is not None:
        rng.bit_generator.state = snapshot.rng_state


def has_simulator(env: gym.Env) -> bool:
    """Whether the env is MuJoCo-based, so that snapshots and replay are possible."""
    return mujoco_handles(env) is not None
