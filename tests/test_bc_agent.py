"""BCAgent beyond the shared contract (tests/test_agent_contract.py): it learns; filtered BC keeps the best episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import BCAgent, BCConfig, load_agent
from agents.bc.filtering import episode_lengths, top_episodes
from ctflow_gym.data import DEFAULT_DATASET_ID
from ctflow_gym.data.transitions import load_transitions

TINY = dict(hidden=64, batch_size=64)


def test_bc_learns_the_shipped_policys_actions(one_torch_thread):
    """With FTB's settings the MSE to the data's actions falls well below the best constant action's in 300 steps.

    On the shipped data (SAC policies' episodes) the actions depend on the state; on the random
    fixture they do not (uniform noise), so there a constant already does nearly as well as BC can.
    """
    agent = BCAgent("Hopper-v5", DEFAULT_DATASET_ID, device="cpu", seed=0)
    assert agent.config == BCConfig()  # FTB's settings
    actions = agent._data["actions"]
    constant = float(((actions - actions.mean(0)) ** 2).mean())  # the best state-independent action
    before = agent.action_error()
    agent.learn(300)
    after = agent.action_error()
    assert after < 0.8 * before and after < 0.8 * constant, (before, after, constant)


def test_predict_is_deterministic_either_way(random_dataset_path):
    agent = BCAgent("Hopper-v5", random_dataset_path, device="cpu", **TINY).learn(5)
    obs = agent.transitions.observations[:8]
    np.testing.assert_array_equal(agent.predict(obs, deterministic=False)[0], agent.predict(obs)[0])
    with pytest.raises(TypeError, match="no acting options"):
        agent.predict(obs, sampling_steps=2)


def test_filtered_bc_keeps_the_top_episodes(random_dataset_path, tmp_path):
    full = load_transitions(random_dataset_path)
    returns, lengths = full.episode_returns, episode_lengths(full)
    best_first = np.argsort(-returns, kind="stable")

    agent = BCAgent("Hopper-v5", random_dataset_path, device="cpu", top_fraction=0.1, **TINY)
    kept = agent.transitions
    count = int(kept.episode_ends.sum())
    budget = int(0.1 * len(full))
    # The best episodes, best first, while they hold at most 10% of the transitions (DT's pct_traj rule).
    assert 1 < count < len(returns)
    np.testing.assert_allclose(np.sort(kept.episode_returns)[::-1], returns[best_first[:count]])
    assert len(kept) == lengths[best_first[:count]].sum() <= budget < len(kept) + lengths[best_first[count]]
    assert kept.episode_returns.min() >= np.sort(returns)[::-1][count - 1]
    assert len(agent._data["actions"]) == len(kept)
    # Observations are normalised with the whole dataset's statistics, as in the Decision Transformer code.
    whole = BCAgent("Hopper-v5", random_dataset_path, device="cpu", **TINY)
    np.testing.assert_array_equal(agent.stats.obs_mean, whole.stats.obs_mean)
    assert len(whole.transitions) == len(full)

    # A tiny fraction keeps the best episode alone; 1 keeps everything.
    best = top_episodes(full, 1e-9)
    assert int(best.episode_ends.sum()) == 1 and best.episode_returns[0] == returns.max()
    assert len(top_episodes(full, 1.0)) == len(full)

    # Saved with the agent; a loaded agent given the dataset trains on the same episodes.
    path = agent.learn(3).save(tmp_path / "bc")
    loaded = load_agent(path, device="cpu", dataset=random_dataset_path)
    assert loaded.config.top_fraction == 0.1 and len(loaded.transitions) == len(kept)
    torch.testing.assert_close(loaded._data["actions"], agent._data["actions"])


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.1"])
def test_bad_top_fraction_is_a_value_error_naming_it(bad, random_dataset_path):
    with pytest.raises(ValueError, match="top_fraction must be a number in"):
        BCAgent("Hopper-v5", random_dataset_path, device="cpu", top_fraction=bad, **TINY)
    with pytest.raises(ValueError, match="top_fraction"):
        BCConfig(top_fraction=bad).validate()
    with pytest.raises(ValueError, match="top_fraction"):
        top_episodes(load_transitions(random_dataset_path), bad)
