"""Envs the package registers with gymnasium (importing :mod:`ctflow_gym` registers them).

- ``ctflow/PointMazeUMaze-v0``, ``ctflow/PointMazeMedium-v0``, ``ctflow/PointMazeLarge-v0``:
  gymnasium-robotics PointMaze with one goal per episode, a sparse reward and the goal
  in a flat observation (:mod:`ctflow_gym.envs.point_maze`).
"""

from ctflow_gym.envs.point_maze import POINT_MAZES, PointMazeSpec, register_point_mazes

register_point_mazes()

__all__ = ["POINT_MAZES", "PointMazeSpec", "register_point_mazes"]
