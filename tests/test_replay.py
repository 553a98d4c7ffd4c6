"""Exact replay of recorded windows from their start states."""

import gymnasium as gym
import numpy as np
import pytest

from ctflow_gym.data import get_sim_state, make_windows, set_sim_state


def _replay(env, sim_state, actions):
    set_sim_state(env, sim_state)
    rewards, observations = [], []
    for action in actions:
        obs, reward, *_ = env.unwrapped.step(action)
        observations.append(obs)
        rewards.append(reward)
    return np.array(rewards), np.array(observations)


def test_window_replays_bit_for_bit(random_dataset):
    windows = make_windows(random_dataset, window=6)
    episodes = {e.id: e for e in random_dataset.iterate_episodes()}
    env = gym.make("Hopper-v5")
    env.reset(seed=999)  # a different life: everything must come from the snapshot
    for i in np.random.default_rng(1).choice(len(windows), 20, replace=False):
        rewards, observations = _replay(env, windows.sim_states[i], windows.actions[i])
        episode = episodes[windows.episode_ids[i]]
        start = windows.start_steps[i]
        np.testing.assert_array_equal(rewards, episode.rewards[start : start + 6])
        np.testing.assert_array_equal(observations, episode.observations[start + 1 : start + 7])


def test_state_round_trip_and_bad_state():
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    state = get_sim_state(env)
    env.step(env.action_space.sample())
    set_sim_state(env, state)
    np.testing.assert_array_equal(get_sim_state(env), state)
    with pytest.raises(ValueError, match="state must be a float64 vector of length 19"):
        set_sim_state(env, state[:-1])
    with pytest.raises(TypeError, match="MuJoCo"):
        get_sim_state(gym.make("CartPole-v1"))
