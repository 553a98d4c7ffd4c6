"""Replay in MuJoCo, the package's check of every claimed improvement, in one place.

- :mod:`~ctflow_gym.replay.sim_state`: the exact simulator state (get/set, the spec
  datasets record, the recorder wrapper that puts it in ``info``);
- :mod:`~ctflow_gym.replay.snapshot`: snapshots of a running env (simulator, time limits, RNG);
- :mod:`~ctflow_gym.replay.stepping`: open-loop stepping of a window from a state or snapshot;
- :mod:`~ctflow_gym.replay.scoring`: a window's score, return plus a value tail;
- :mod:`~ctflow_gym.replay.closed_loop`: batch replays of recorded windows (realised
  returns, one-step dynamics error), optionally spread over worker processes
  (:mod:`ctflow_gym.workers`).

This package depends on gymnasium, MuJoCo and numpy only; data, refiners, wrappers and
the command line build on it.
"""

from ctflow_gym.replay.closed_loop import closed_loop_returns, dynamics_error
from ctflow_gym.replay.scoring import ValueFn, require_value_fn, sb3_value_function, window_score
from ctflow_gym.replay.sim_state import (
    REPLAY_STATE_SPEC,
    SIM_STATE_INFO_KEY,
    SimStateRecorder,
    get_sim_state,
    mujoco_handles,
    set_sim_state,
    state_size,
)
from ctflow_gym.replay.snapshot import EnvSnapshot, capture_snapshot, has_simulator, restore_snapshot
from ctflow_gym.replay.stepping import WindowReplay, iterate_steps, replay_actions, replay_window, step_open_loop

__all__ = [
    "REPLAY_STATE_SPEC",
    "SIM_STATE_INFO_KEY",
    "EnvSnapshot",
    "SimStateRecorder",
    "ValueFn",
    "WindowReplay",
    "capture_snapshot",
    "closed_loop_returns",
    "dynamics_error",
    "get_sim_state",
    "has_simulator",
    "iterate_steps",
    "mujoco_handles",
    "replay_actions",
    "replay_window",
    "require_value_fn",
    "restore_snapshot",
    "sb3_value_function",
    "set_sim_state",
    "state_size",
    "step_open_loop",
    "window_score",
]
