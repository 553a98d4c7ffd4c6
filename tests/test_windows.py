import numpy as np
import pytest

from ctflow_gym.data import NormalizationStats, make_windows, split_episodes
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY


def test_shapes_and_alignment(random_dataset):
    windows = make_windows(random_dataset, window=8)
    assert windows.observations.shape[1:] == (8, 11)
    assert windows.actions.shape[1:] == (8, 3)
    assert windows.rewards.shape[1:] == (8,)
    assert windows.feedback.shape == (len(windows),)
    assert windows.sim_states is not None and windows.sim_states.shape == (len(windows), 19)
    assert windows.env_id == "Hopper-v5"
    episodes = {e.id: e for e in random_dataset.iterate_episodes()}
    expected = sum(max(0, len(e.actions) - 8 + 1) for e in episodes.values())
    assert len(windows) == expected
    for i in np.random.default_rng(0).choice(len(windows), 25, replace=False):
        episode = episodes[windows.episode_ids[i]]
        start = windows.start_steps[i]
        # No window crosses an episode end.
        assert start + 8 <= len(episode.actions)
        np.testing.assert_array_equal(
            windows.observations[i], episode.observations[start : start + 8].astype(np.float32)
        )
        np.testing.assert_array_equal(windows.actions[i], episode.actions[start : start + 8])
        np.testing.assert_array_equal(windows.sim_states[i], episode.infos[SIM_STATE_INFO_KEY][start])
        assert windows.feedback[i] == pytest.approx(float(np.sum(episode.rewards[start : start + 8])), rel=1e-6)


def test_stride_skips_starts(random_dataset):
    dense = make_windows(random_dataset, window=5)
    sparse = make_windows(random_dataset, window=5, stride=3)
    assert np.all(sparse.start_steps % 3 == 0)
    assert len(sparse) < len(dense)


def test_return_to_go_feedback(random_dataset):
    windows = make_windows(random_dataset, window=4, feedback="return_to_go", gamma=0.9)
    episode = next(e for e in random_dataset.iterate_episodes() if e.id == windows.episode_ids[0])
    start = windows.start_steps[0]
    rewards = episode.rewards[start:]
    expected = float(np.sum(rewards * 0.9 ** np.arange(len(rewards))))
    assert windows.feedback[0] == pytest.approx(expected, rel=1e-9)


def test_callable_feedback(random_dataset):
    windows = make_windows(random_dataset, window=4, feedback=lambda obs, act, rew: rew[:, -1] * 2.0)
    np.testing.assert_allclose(windows.feedback, windows.rewards[:, -1] * 2.0, rtol=1e-6)
    with pytest.raises(ValueError, match="feedback callable must return shape"):
        make_windows(random_dataset, window=4, feedback=lambda obs, act, rew: rew)


def test_window_longer_than_every_episode(random_dataset):
    longest = max(len(e.actions) for e in random_dataset.iterate_episodes())
    with pytest.raises(ValueError, match=rf"window={longest + 1} is longer than every episode.*longest has {longest}"):
        make_windows(random_dataset, window=longest + 1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window": 0}, "window"),
        ({"window": 4, "stride": 0}, "stride"),
        ({"window": 4, "feedback": "nope"}, "feedback"),
        ({"window": 4, "gamma": 1.5}, "gamma"),
    ],
)
def test_bad_arguments(random_dataset, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_windows(random_dataset, **kwargs)


def test_split_by_episode(random_dataset):
    windows = make_windows(random_dataset, window=4)
    train, held = split_episodes(windows, 0.25, seed=1)
    assert len(train) + len(held) == len(windows)
    assert not set(train.episode_ids) & set(held.episode_ids)
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_episodes(windows, 1.0)


def test_windows_of_chosen_episodes(random_dataset):
    every = make_windows(random_dataset, window=4)
    chosen = [5, 2, 9]
    some = make_windows(random_dataset, window=4, episodes=chosen)
    expected = every.subset(np.isin(every.episode_ids, chosen))
    assert set(some.episode_ids) <= set(chosen) and len(some) == len(expected) > 0
    np.testing.assert_array_equal(some.actions, expected.actions)
    np.testing.assert_array_equal(some.sim_states, expected.sim_states)
    with pytest.raises(ValueError, match=r"episodes: ids \[100000\] are not episodes"):
        make_windows(random_dataset, window=4, episodes=[1, 100000])


def test_normalization_round_trip(random_dataset):
    stats = NormalizationStats.from_dataset(random_dataset)
    windows = make_windows(random_dataset, window=4)
    normalized = stats.normalize_actions(windows.actions)
    np.testing.assert_allclose(stats.denormalize_actions(normalized), windows.actions, atol=1e-5)
    restored = NormalizationStats.from_dict(stats.to_dict())
    np.testing.assert_array_equal(restored.obs_std, stats.obs_std)
    all_obs = np.concatenate([e.observations[:-1] for e in random_dataset.iterate_episodes()])
    np.testing.assert_allclose(stats.obs_mean, all_obs.mean(0), rtol=1e-4, atol=1e-5)
