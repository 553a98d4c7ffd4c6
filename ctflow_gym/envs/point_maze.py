"""PointMaze as this package uses it: one goal per episode, sparse reward, flat observations.

gymnasium-robotics' ``PointMaze_*-v3`` envs return a ``Dict`` observation
(``observation`` = x, y, vx, vy; ``achieved_goal`` = x, y; ``desired_goal`` = goal x, y)
and by default keep going after the goal is reached (``continuing_task=True``). The
envs registered here are the same simulation with three choices made for offline RL:

- **One goal per episode** (``continuing_task=False``): an episode ends (``terminated``)
  the step the point comes within 0.45 of the goal, and each reset draws a new start
  and goal cell (gymnasium-robotics' own noisy draw). D4RL's maze2d and Minari's
  pointmaze datasets instead run one endless episode whose goal jumps when reached and
  cut it into "episodes" at each success; ending the episode makes every recorded
  window replayable with one fixed goal (the goal is part of the recorded state, see
  :mod:`ctflow_gym.replay.sim_state`).
- **Sparse reward**: 1 on the step that reaches the goal, else 0, so an episode's return
  is its success (0 or 1) and the D4RL-style normalised score is the success rate x 100
  (:mod:`ctflow_gym.data.scores`).
- **Flat observation** ``[x, y, vx, vy, goal_x, goal_y]`` (float64): every model in the
  package takes a ``Box`` observation; ``achieved_goal`` is dropped because it repeats
  ``x, y``. :data:`GOAL_SLICE` names where the goal sits.

Time limits are gymnasium-robotics' (and D4RL maze2d's evaluation horizons): 300 steps
in UMaze, 600 in Medium, 800 in Large.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

GOAL_SLICE = slice(4, 6)
"""Where the goal sits in the flat observation."""

POSITION_SLICE = slice(0, 2)
"""Where the point's position sits in the flat observation."""


@dataclass(frozen=True)
class PointMazeSpec:
    """One registered maze: its env id, gymnasium-robotics map name and time limit."""

    env_id: str
    map_name: str
    max_episode_steps: int


POINT_MAZES: dict[str, PointMazeSpec] = {
    "umaze": PointMazeSpec("ctflow/PointMazeUMaze-v0", "U_MAZE", 300),
    "medium": PointMazeSpec("ctflow/PointMazeMedium-v0", "MEDIUM_MAZE", 600),
    "large": PointMazeSpec("ctflow/PointMazeLarge-v0", "LARGE_MAZE", 800),
}
"""Maze size -> its registered env."""


def _gymnasium_robotics():
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            # Its import prints a note about the Adroit hand envs, which are not used here.
            from gymnasium_robotics.envs.maze import maps
            from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv
    except ImportError as error:
        raise ImportError(
            "the PointMaze envs need gymnasium-robotics: pip install 'gymnasium-robotics>=1.4'"
        ) from error
    return maps, PointMazeEnv


def flat_observation(observation: dict) -> np.ndarray:
    """``Dict`` maze observation -> ``[observation, desired_goal]`` as one float64 vector."""
    return np.concatenate([observation["observation"], observation["desired_goal"]]).astype(np.float64)


_FLAT_CLASS = []


def _flat_point_maze_class():
    """gymnasium-robotics' ``PointMazeEnv`` returning flat observations (made once, on first use).

    A subclass rather than an observation wrapper because replay steps ``env.unwrapped``
    (:mod:`ctflow_gym.replay.stepping`), which must give the same observations as the env.
    """
    if not _FLAT_CLASS:
        _, point_maze_env = _gymnasium_robotics()

        class FlatPointMazeEnv(point_maze_env):
            """PointMaze with the observation ``[x, y, vx, vy, goal_x, goal_y]``."""

            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self._dict_space = self.observation_space
                size = self._dict_space["observation"].shape[0] + 2
                self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float64)

            def reset(self, *, seed=None, options=None):
                # GoalEnv.reset insists on a Dict observation space: show it the original one meanwhile.
                flat_space, self.observation_space = self.observation_space, self._dict_space
                try:
                    observation, info = super().reset(seed=seed, options=options)
                finally:
                    self.observation_space = flat_space
                return flat_observation(observation), info

            def step(self, action):
                observation, reward, terminated, truncated, info = super().step(action)
                return flat_observation(observation), reward, terminated, truncated, info

        _FLAT_CLASS.append(FlatPointMazeEnv)
    return _FLAT_CLASS[0]


def make_point_maze(map_name: str, render_mode: str | None = None) -> gym.Env:
    """The gymnasium-robotics PointMaze on ``map_name`` with this package's choices (module docstring)."""
    maps, _ = _gymnasium_robotics()
    return _flat_point_maze_class()(
        maze_map=getattr(maps, map_name),
        render_mode=render_mode,
        reward_type="sparse",
        continuing_task=False,
        reset_target=False,
    )


def register_point_mazes(entry_point: Any = "ctflow_gym.envs.point_maze:make_point_maze") -> None:
    """Register the envs of :data:`POINT_MAZES` with gymnasium (idempotent).

    ``entry_point``: how gymnasium makes them; a process that loads this file alone, without
    the package installed (d3rlpy's venv in ``benchmarks/peer_d3rlpy.py``: this module needs
    only gymnasium, numpy and gymnasium-robotics), passes its own ``make_point_maze``.
    """
    for spec in POINT_MAZES.values():
        if spec.env_id not in gym.registry:
            gym.register(
                id=spec.env_id,
                entry_point=entry_point,
                kwargs={"map_name": spec.map_name},
                max_episode_steps=spec.max_episode_steps,
            )


def is_point_maze(env_id: str) -> bool:
    """Whether ``env_id`` is one of the PointMaze envs registered here."""
    return any(spec.env_id == env_id for spec in POINT_MAZES.values())
