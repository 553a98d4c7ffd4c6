"""The scripted maze navigator that makes the PointMaze datasets (D4RL maze2d's way).

D4RL made maze2d (``d4rl/pointmaze/waypoint_controller.py`` with
``q_iteration.py``), and Minari remade it (``minari-dataset-generation-scripts``,
``scripts/pointmaze/controller.py`` and ``maze_solver.py``), with a planner over the
maze's grid of cells and a PD controller that follows its waypoints, plus Gaussian
action noise. This module follows Minari's scripts:

- **Planner**: the shortest path over free cells (4-neighbour moves), from the point's
  cell to the goal's cell. Minari runs 50 sweeps of Q-value iteration with discount 0.99
  and takes the arg-max action in the order up, down, left, right; a breadth-first
  distance map with the first best neighbour in that order gives the same path (each
  Q-value is ``0.99 ** distance``) in one pass.
- **Waypoints**: the centres of the path's cells, each shifted by ``-U(0, 0.2)`` in x and
  y (as Minari's controller does, so paths do not all run through the exact centres);
  the last waypoint is the goal itself. The next waypoint is taken once the point is
  within ``waypoint_threshold`` (0.1) of the current one.
- **PD control**: ``action = kp (waypoint - position) - kd velocity`` with kp = 10,
  kd = 1, plus ``N(0, noise^2)`` noise with ``noise = 0.5``, clipped to the action box
  [-1, 1] (the env would clamp it anyway; the dataset records what was applied).

Differences from Minari, each because this package's datasets are rebuilt bit for bit
from a seed: noise and waypoint offsets come from one seeded ``numpy`` generator (Minari
draws them from ``np.random``'s global state); the path is planned when an episode
starts (one goal per episode, see :mod:`ctflow_gym.envs.point_maze`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ctflow_gym.envs.point_maze import GOAL_SLICE, POSITION_SLICE

MOVES = ((0, 1), (0, -1), (-1, 0), (1, 0))
"""Cell moves (row, column) in Minari's order of ``EXPLORATION_ACTIONS``: up, down, left, right."""


def shortest_path_successors(maze_map, goal_cell: tuple[int, int]) -> dict[tuple[int, int], tuple[int, int]]:
    """For every free cell that can reach ``goal_cell``, the next cell on a shortest path to it.

    ``maze_map`` is gymnasium-robotics' grid (1 = wall). Ties between equally short
    moves go to the first in :data:`MOVES`.
    """
    rows, cols = len(maze_map), len(maze_map[0])

    def free(cell):
        r, c = cell
        return 0 <= r < rows and 0 <= c < cols and maze_map[r][c] != 1

    distance = {goal_cell: 0}
    frontier = deque([goal_cell])
    while frontier:
        r, c = frontier.popleft()
        for dr, dc in MOVES:
            neighbour = (r + dr, c + dc)
            if free(neighbour) and neighbour not in distance:
                distance[neighbour] = distance[(r, c)] + 1
                frontier.append(neighbour)
    successors = {}
    for (r, c), d in distance.items():
        if d == 0:
            continue
        for dr, dc in MOVES:
            neighbour = (r + dr, c + dc)
            if distance.get(neighbour) == d - 1:
                successors[(r, c)] = neighbour
                break
    return successors


@dataclass
class WaypointController:
    """Plans a path at each episode start and follows it with a noisy PD controller.

    Args:
        maze: the env's ``unwrapped.maze`` (gymnasium-robotics ``Maze``).
        rng: the generator of waypoint offsets and action noise.
        kp, kd: PD gains (Minari: 10 and 1).
        noise: standard deviation of the Gaussian action noise (Minari: 0.5).
        waypoint_threshold: distance at which the next waypoint is taken (Minari: 0.1).
    """

    maze: object
    rng: np.random.Generator
    kp: float = 10.0
    kd: float = 1.0
    noise: float = 0.5
    waypoint_threshold: float = 0.1

    def start_episode(self, observation: np.ndarray) -> None:
        """Plan the waypoints from the observation's position to its goal."""
        position, goal = observation[POSITION_SLICE], observation[GOAL_SLICE]
        cell = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(position))
        goal_cell = tuple(int(v) for v in self.maze.cell_xy_to_rowcol(goal))
        successors = shortest_path_successors(self.maze.maze_map, goal_cell)
        waypoints = []
        while cell != goal_cell:
            cell = successors[cell]
            if cell != goal_cell:
                centre = self.maze.cell_rowcol_to_xy(np.array(cell))
                waypoints.append(centre - self.rng.uniform(size=2) * 0.2)
        waypoints.append(np.array(goal, dtype=np.float64))
        self._waypoints = waypoints
        self._next = 0

    def act(self, observation: np.ndarray) -> np.ndarray:
        """The noisy PD action toward the current waypoint (float32, in [-1, 1])."""
        position, velocity = observation[POSITION_SLICE], observation[2:4]
        target = self._waypoints[self._next]
        if np.linalg.norm(target - position) <= self.waypoint_threshold and self._next < len(self._waypoints) - 1:
            self._next += 1
            target = self._waypoints[self._next]
        action = self.kp * (target - position) - self.kd * velocity
        action = action + self.rng.normal(size=2) * self.noise
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def roll_out_waypoints(env, n_steps: int, seed: int, show_progress: bool) -> None:
    """Step ``env`` (a PointMaze env, e.g. a recording one) for ``n_steps`` with the navigator.

    Seeded by ``seed``: one generator draws the waypoint offsets and the action noise,
    the env's resets are seeded by whoever wraps it (the builder's seeded resets).
    """
    from ctflow_gym import progress

    controller = WaypointController(env.unwrapped.maze, np.random.default_rng(seed))
    obs, _ = env.reset()
    controller.start_episode(obs)
    for _ in progress.progress_bar(range(n_steps), desc="waypoint", disable=not show_progress, unit="step"):
        obs, _, terminated, truncated, _ = env.step(controller.act(obs))
        if terminated or truncated:
            obs, _ = env.reset()
            controller.start_episode(obs)
