"""The dataset and policy shipped inside the package load, replay and stay small."""

import gymnasium as gym
import numpy as np

from ctflow_gym.data import DEFAULT_DATASET_ID, build_record, default_dataset_path, default_policy_path, load_dataset, load_sb3_policy, make_windows
from ctflow_gym.replay import closed_loop_returns


def test_shipped_dataset_loads_through_minari():
    dataset = load_dataset(DEFAULT_DATASET_ID)
    assert dataset.id == DEFAULT_DATASET_ID
    assert dataset.env_spec.id == "Hopper-v5"
    record = build_record(dataset)
    assert record["config"]["kind"] == "medium-replay" and "command" in record and record["wall_time_s"] > 0
    returns = [float(np.sum(e.rewards)) for e in dataset.iterate_episodes()]
    assert min(returns) < 100  # starts at random level
    assert max(returns) >= 1500  # reaches medium level
    assert dataset.total_steps >= 100_000
    assert record["target_reached"] and record["thinned"]["source_steps"] >= dataset.total_steps


def test_shipped_files_stay_under_30_mb():
    total = sum(p.stat().st_size for p in default_dataset_path().rglob("*") if p.is_file())
    assert total < 30 * 2**20


def test_shipped_windows_replay_exactly():
    windows = make_windows(DEFAULT_DATASET_ID, window=16, stride=64)
    picked = np.random.default_rng(0).choice(len(windows), 20, replace=False)
    returns, _ = closed_loop_returns("Hopper-v5", windows.sim_states[picked], windows.actions[picked], windows.sim_state_spec)
    np.testing.assert_array_equal(returns, windows.rewards[picked].sum(axis=1))


def test_shipped_policy_acts_in_the_env():
    policy = load_sb3_policy(default_policy_path())
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=0)
    action, _ = policy.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))
