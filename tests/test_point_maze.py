"""PointMaze: the registered envs, the waypoint navigator's datasets, exact replay with the goal,
success-rate scores, and the refiner and agent running on maze data."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

from ctflow_gym.data import BuildConfig, build_dataset, load_dataset, make_windows, normalized_score
from ctflow_gym.data.maze_planner import WaypointController, shortest_path_successors
from ctflow_gym.envs.point_maze import GOAL_SLICE, POINT_MAZES
from ctflow_gym.replay.closed_loop import dynamics_error
from ctflow_gym.replay.sim_state import get_sim_state, set_sim_state

UMAZE = POINT_MAZES["umaze"].env_id


@pytest.fixture(scope="module")
def maze_dataset_path(datasets_root):
    """1,500 navigator steps in UMaze (about 20 episodes)."""
    config = BuildConfig(env_id=UMAZE, kind="waypoint", n_steps=1500, seed=2, root=str(datasets_root))
    return build_dataset(config)


def test_the_flat_observation_holds_the_point_and_the_goal():
    env = gym.make(UMAZE)
    obs, info = env.reset(seed=0)
    assert obs.shape == (6,) and env.observation_space.shape == (6,)
    np.testing.assert_array_equal(obs[GOAL_SLICE], env.unwrapped.goal)
    assert env.spec.max_episode_steps == 300 and info["success"] is False


def test_the_planner_takes_shortest_paths_around_walls():
    umaze = [[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 1, 0, 1], [1, 0, 0, 0, 1], [1, 1, 1, 1, 1]]
    successors = shortest_path_successors(umaze, (3, 1))
    path, cell = [], (1, 1)
    while cell != (3, 1):
        cell = successors[cell]
        path.append(cell)
    assert path == [(1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    # In the open, ties go to the first move in Minari's order (up = +1 column).
    assert shortest_path_successors([[0, 0], [0, 0]], (1, 1))[(0, 0)] == (0, 1)


def test_the_navigator_reaches_goals_and_episodes_end_there(maze_dataset_path):
    dataset = load_dataset(maze_dataset_path)
    returns, successes = [], []
    for episode in dataset.iterate_episodes():
        returns.append(float(episode.rewards.sum()))
        successes.append(bool(episode.infos["success"][-1]))
        assert episode.terminations[-1] == successes[-1]  # one goal per episode: success ends it
        assert np.all(np.abs(episode.actions) <= 1.0)
    assert set(returns) <= {0.0, 1.0} and returns == [float(s) for s in successes]
    assert np.mean(successes) > 0.9  # truncated last episode aside, the navigator gets there
    assert normalized_score(UMAZE, np.array(returns)).mean() == pytest.approx(100 * np.mean(returns))


def test_windows_replay_exactly_from_their_recorded_state_goal_included(maze_dataset_path):
    dataset = load_dataset(maze_dataset_path)
    episode = next(dataset.iterate_episodes())
    env = gym.make(UMAZE)
    env.reset(seed=123)  # another goal and start: the recorded state must overwrite both
    set_sim_state(env, episode.infos["sim_state"][5])
    replayed = [env.step(a) for a in episode.actions[5:25]]
    np.testing.assert_array_equal(np.array([r[0] for r in replayed]), episode.observations[6:26])
    np.testing.assert_array_equal(get_sim_state(env), episode.infos["sim_state"][25])
    np.testing.assert_array_equal(np.array([r[1] for r in replayed]), episode.rewards[5:25])


def test_dynamics_error_is_zero_on_recorded_windows_and_not_on_shuffled_actions(maze_dataset_path):
    windows = make_windows(load_dataset(maze_dataset_path), window=8)
    errors = dynamics_error(UMAZE, windows.observations[:10], windows.actions[:10])
    assert np.max(errors) < 1e-5  # windows hold float32 observations
    wrong = dynamics_error(UMAZE, windows.observations[:10], -windows.actions[:10])
    assert np.min(wrong) > 1e-3


def test_controller_draws_only_from_its_own_generator():
    env = gym.make(UMAZE)
    runs = []
    for _ in range(2):
        controller = WaypointController(env.unwrapped.maze, np.random.default_rng(7))
        obs, _ = env.reset(seed=1)
        controller.start_episode(obs)
        np.random.seed(None)  # the global RNG must not matter
        runs.append(np.array([controller.act(obs) for _ in range(5)]))
    np.testing.assert_array_equal(*runs)


def test_waypoint_kind_and_maze_envs_go_together():
    with pytest.raises(ValueError, match="kind='waypoint'"):
        BuildConfig(env_id="Hopper-v5", kind="waypoint").validate()
    with pytest.raises(ValueError, match="kind='waypoint'"):
        BuildConfig(env_id=UMAZE, kind="random").validate()


def test_without_gymnasium_robotics_the_error_says_how_to_install(monkeypatch):
    for name in list(sys.modules):
        if name.startswith("gymnasium_robotics"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    with pytest.raises(ImportError, match="pip install 'gymnasium-robotics"):
        gym.make(UMAZE)


def test_refiner_and_agent_run_on_maze_data(maze_dataset_path):
    from agents import GTPAgent
    from ctflow_gym import TrajectoryRefiner
    from ctflow_gym.refine.evaluation import evaluate_refinement

    small = dict(ae_steps=40, flow_steps=40, predictor_steps=20, inverse_dynamics_steps=40, batch_size=64)
    refiner = TrajectoryRefiner(window=8, seed=0, **small).fit(maze_dataset_path, progress_bar=False)
    windows = make_windows(load_dataset(maze_dataset_path), window=8)
    subset = windows.subset(np.arange(6))
    report = evaluate_refinement(refiner, subset, strength=1.0)
    assert np.isfinite(report["realized_gain"]["mean"]) and np.isfinite(report["dynamics_error"]["mean"])

    tiny = dict(actor_hidden=32, actor_layers=2, critic_hidden=32, critic_layers=2, critic_ensemble=1, batch_size=32)
    agent = GTPAgent(UMAZE, maze_dataset_path, seed=0, device="cpu", **tiny).learn(20)
    result = agent.evaluate(n_episodes=2, seed=0)
    assert 0.0 <= result["normalized_score"] <= 100.0


def test_the_env_module_works_alone_where_the_package_is_not_installed():
    """d3rlpy's venv loads ``point_maze.py`` by itself (benchmarks/peer_d3rlpy.py): it must not need the package."""
    import json
    import subprocess
    from pathlib import Path

    module = Path(__file__).resolve().parents[1] / "ctflow_gym" / "envs" / "point_maze.py"
    alone = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('maze_alone', {str(module)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)\n"
        "m.register_point_mazes(entry_point=m.make_point_maze)\n"
        "import gymnasium as gym\n"
        "import json; print(json.dumps(gym.make('ctflow/PointMazeMedium-v0').reset(seed=1000)[0].tolist()))\n"
        "assert not any(name.startswith('ctflow_gym') for name in sys.modules), 'the package was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", alone], capture_output=True, text=True, check=True, cwd="/")
    expected = gym.make(POINT_MAZES["medium"].env_id).reset(seed=1000)[0]
    np.testing.assert_array_equal(np.array(json.loads(out.stdout.strip().splitlines()[-1])), expected)
