"""KeepBest: the checkpoint best on validation episodes is the one the agent holds after ``learn``."""

from __future__ import annotations

import numpy as np
import pytest

from agents import BCAgent, KeepBest
from ctflow_gym.data import DEFAULT_DATASET_ID
from ctflow_gym.wrappers.episodes import record_episodes


def test_the_agent_after_learn_is_the_best_evaluated_one(one_torch_thread, tmp_path):
    """Evaluations every 40 steps (and at the last, 130); the agent ends at the best step and acts as it did there.

    On the shipped data with seed 1 the best of these steps is not the last, so the restore is
    exercised: the agent's own return on the validation episodes after ``learn`` is the best
    one recorded, and its weights are those saved to ``best_path``.
    """
    keep = KeepBest(every=40, episodes=2, seed=3000, best_path=tmp_path / "best")
    agent = BCAgent("Hopper-v5", DEFAULT_DATASET_ID, device="cpu", seed=1, hidden=64).learn(130, callback=keep)
    steps = [row["step"] for row in keep.history]
    assert steps == [40, 80, 120, 130]
    returns = [row["mean_return"] for row in keep.history]
    assert keep.best_return == max(returns) and keep.best_step == steps[int(np.argmax(returns))]
    assert keep.best_step != 130, "pick a seed whose best step is not the last, or the restore goes untested"
    assert agent.num_timesteps == keep.best_step
    again = record_episodes(keep._env, agent, 2, seed=3000)
    assert np.mean([r.episode_return for r in again]) == keep.best_return
    saved = BCAgent.load(tmp_path / "best", device="cpu")
    observations = agent.transitions.observations[:16]
    np.testing.assert_array_equal(saved.predict(observations)[0], agent.predict(observations)[0])


def test_without_restore_the_agent_stays_at_the_last_step(one_torch_thread):
    keep = KeepBest(every=40, episodes=1, restore=False)
    agent = BCAgent("Hopper-v5", DEFAULT_DATASET_ID, device="cpu", seed=0, hidden=64).learn(80, callback=keep)
    assert agent.num_timesteps == 80 and len(keep.history) == 2
    assert keep.best_path is None  # the temporary folder is gone


@pytest.mark.parametrize(
    "kwargs, name",
    [(dict(every=0), "every"), (dict(every=10, episodes=0), "episodes"), (dict(every=10, seed=-1), "seed")],
)
def test_bad_settings_are_named(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        KeepBest(**kwargs)
    with pytest.raises(TypeError, match="env must be"):
        KeepBest(every=10, env="Hopper-v5")
