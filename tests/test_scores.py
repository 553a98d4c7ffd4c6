import numpy as np
import pytest

from ctflow_gym.data import D4RL_REFERENCE_RETURNS, d4rl_reference_returns, normalized_score


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "hopper-medium-v2"])
def test_reference_points_map_to_0_and_100(env_id):
    random_return, expert_return = d4rl_reference_returns(env_id)
    assert normalized_score(env_id, random_return) == pytest.approx(0.0)
    assert normalized_score(env_id, expert_return) == pytest.approx(100.0)


def test_hopper_values_are_d4rl_ones():
    assert D4RL_REFERENCE_RETURNS["hopper"] == (-20.272305, 3234.3)
    # D4RL hopper-medium's behaviour return of about 1422 is a score of about 44.3.
    assert normalized_score("Hopper-v5", 1422.0) == pytest.approx(44.32, abs=0.01)


def test_array_input_gives_array():
    scores = normalized_score("Walker2d-v5", np.array([1.629008, 4592.3, 2296.96]))
    assert isinstance(scores, np.ndarray)
    np.testing.assert_allclose(scores, [0.0, 100.0, 50.0], atol=1e-3)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Humanoid-v5"])
def test_env_without_reference_returns_is_rejected(env_id):
    with pytest.raises(KeyError, match="no D4RL reference returns"):
        normalized_score(env_id, 100.0)


def test_empty_env_id_is_rejected():
    with pytest.raises(ValueError, match="env_id"):
        d4rl_reference_returns("")
