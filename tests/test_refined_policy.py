"""The refiner attached after an SB3 policy, under SB3's evaluate_policy."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import default_policy_path, load_sb3_policy
from ctflow_gym.wrappers import RefinedPolicy


@pytest.fixture(scope="module")
def refiner(random_dataset):
    return TrajectoryRefiner(
        window=8,
        ae_steps=200,
        flow_steps=200,
        predictor_steps=100,
        inverse_dynamics_steps=300,
        ae_hidden=64,
        flow_hidden=64,
    ).fit(random_dataset, progress_bar=False)


@pytest.fixture(scope="module")
def sac():
    return load_sb3_policy(default_policy_path())


def _episode_returns(policy, env, n=2):
    returns, lengths = evaluate_policy(
        policy, env, n_eval_episodes=n, deterministic=True, return_episode_rewards=True, warn=False
    )
    return np.array(returns), np.array(lengths)


def test_strength_zero_is_the_base_policy_exactly(refiner, sac):
    env = gym.make("Hopper-v5", max_episode_steps=60)
    env.reset(seed=11)
    base = _episode_returns(sac, env)
    env = gym.make("Hopper-v5", max_episode_steps=60)
    env.reset(seed=11)
    attached = _episode_returns(RefinedPolicy(sac, refiner, env, strength=0.0, verify=False), env)
    np.testing.assert_array_equal(base[0], attached[0])
    np.testing.assert_array_equal(base[1], attached[1])
    env = gym.make("Hopper-v5", max_episode_steps=60)
    env.reset(seed=11)
    verified = RefinedPolicy(sac, refiner, env, strength=0.0, verify=True, continuation=4)
    np.testing.assert_array_equal(_episode_returns(verified, env)[0], base[0])
    # the source window itself, replayed, never beats the base window (the same sum in the same order)
    assert verified.history and not any(record["refined"] for record in verified.history)


def test_verified_refinement_runs_under_evaluate_policy(refiner, sac):
    env = gym.make("Hopper-v5", max_episode_steps=60)
    env.reset(seed=3)
    policy = RefinedPolicy(sac, refiner, env, strength=1.0, verify=True)
    returns, lengths = _episode_returns(policy, env)
    assert np.all(np.isfinite(returns)) and np.all(lengths > 0)
    refined = [r for r in policy.history if r["refined"]]
    kept_base = [r for r in policy.history if r.get("reason") == "verification kept the base window"]
    assert len(refined) + len(kept_base) > 0
    assert all(r["refined_return"] > r["source_return"] for r in refined)
    assert all(r["refined_return"] <= r["source_return"] for r in kept_base)


def test_critic_tail_verification(refiner, sac):
    from ctflow_gym.wrappers import sb3_value_function

    value = sb3_value_function(sac)
    env = gym.make("Hopper-v5", max_episode_steps=40)
    obs, _ = env.reset(seed=4)
    assert np.isfinite(value(obs))
    policy = RefinedPolicy(sac, refiner, env, strength=1.0, verify=True, value_fn=value)
    returns, _ = _episode_returns(policy, env, n=1)
    assert np.isfinite(returns).all() and policy.history
    with pytest.raises(TypeError, match="SAC/TD3"):
        sb3_value_function(object())


def test_single_observation_predict(refiner, sac):
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=0)
    policy = RefinedPolicy(sac, refiner, env, verify=False)
    action, state = policy.predict(obs)
    assert action.shape == (3,) and state is None
    with pytest.raises(ValueError, match="drives one env"):
        policy.predict(np.stack([obs, obs]), episode_start=np.array([True, True]))


def test_bad_inputs(refiner, sac):
    with pytest.raises(ValueError, match="differ from the refiner's"):
        RefinedPolicy(sac, refiner, gym.make("HalfCheetah-v5"))
    with pytest.raises(ValueError, match="differ from the refiner"):
        RefinedPolicy(sac, refiner, gym.make("Pendulum-v1"), verify=False)
    with pytest.raises(ValueError, match="strength"):
        RefinedPolicy(sac, refiner, gym.make("Hopper-v5"), strength=-0.5)
    with pytest.raises(TypeError, match="policy must be"):
        RefinedPolicy(42, refiner, gym.make("Hopper-v5"))


def test_non_mujoco_env_gets_refinement_without_replay():
    """Pendulum has no simulator state: the look-ahead runs in a deep copy, no verification."""
    from ctflow_gym.data import Windows

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(300, 4, 3)).astype(np.float32)
    act = rng.uniform(-2, 2, (300, 4, 1)).astype(np.float32)
    windows = Windows(
        observations=obs,
        actions=act,
        rewards=np.zeros((300, 4)),
        feedback=act.sum(axis=(1, 2)).astype(np.float64),
        episode_ids=np.arange(300) // 10,
        start_steps=(np.arange(300) % 10) * 4,
    )
    refiner = TrajectoryRefiner(
        window=4,
        latent_dim=4,
        ae_steps=100,
        flow_steps=100,
        predictor_steps=50,
        inverse_dynamics_steps=50,
        ae_hidden=32,
        flow_hidden=32,
    ).fit(windows, progress_bar=False)
    env = gym.make("Pendulum-v1", max_episode_steps=12)
    base = lambda observation: np.array([0.5], dtype=np.float32)  # noqa: E731
    with pytest.raises(TypeError, match="verify=True replays from a MuJoCo snapshot"):
        RefinedPolicy(base, refiner, env, verify=True)
    policy = RefinedPolicy(base, refiner, env, strength=1.0, verify=False)
    obs0, _ = env.reset(seed=0)
    state_before = env.unwrapped.state.copy()
    action, _ = policy.predict(obs0)
    np.testing.assert_array_equal(env.unwrapped.state, state_before)  # look-ahead left the env alone
    assert policy.history[-1]["refined"] and action.shape == (1,)
    returns, _ = evaluate_policy(policy, env, n_eval_episodes=1, warn=False)
    assert np.isfinite(returns)


def test_receding_horizon_replans_every_m_steps(refiner, sac):
    env = gym.make("Hopper-v5", max_episode_steps=30)
    env.reset(seed=11)
    base = _episode_returns(sac, env, n=1)
    env = gym.make("Hopper-v5", max_episode_steps=30)
    env.reset(seed=11)
    policy = RefinedPolicy(sac, refiner, env, strength=0.0, verify=False, replan_every=3)
    attached = _episode_returns(policy, env, n=1)
    np.testing.assert_array_equal(base[0], attached[0])  # strength 0: the base policy exactly, replanned or not
    assert len(policy.history) == -(-int(attached[1][0]) // 3)  # one plan per 3 executed steps
    assert policy.simulator_steps >= 8 * (len(policy.history) - 1)  # each plan looked ahead a whole window
    for bad in (0, 9, 2.5, True):
        with pytest.raises(ValueError, match=r"replan_every must be None or an integer in \[1, 8\]"):
            RefinedPolicy(sac, refiner, gym.make("Hopper-v5"), replan_every=bad)


def test_select_refiners_keeps_what_raised_the_return_on_validation_episodes(refiner, sac):
    from ctflow_gym.wrappers import run_episodes, select_refiners

    options = dict(strength=1.0, verify=False)
    selection = select_refiners(
        sac, [refiner, refiner], "Hopper-v5", episodes=2, seed=5, max_episode_steps=40, **options
    )
    base = run_episodes(gym.make("Hopper-v5", max_episode_steps=40), sac, 2, seed=5)
    assert selection.base_returns == base
    env = gym.make("Hopper-v5", max_episode_steps=40)
    again = run_episodes(env, RefinedPolicy(sac, refiner, env, **options), 2, seed=5)
    first, second = selection.validations
    assert first.returns == second.returns == again  # seeded: the same refiner gives the same episodes
    assert first.relative_change == pytest.approx(np.mean(again) / np.mean(base) - 1.0)
    assert selection.kept == ([0, 1] if first.relative_change > 0 else [])
    # Strength 0 changes nothing, so nothing is kept.
    unchanged = select_refiners(sac, [refiner], "Hopper-v5", episodes=1, max_episode_steps=20, strength=0.0)
    assert unchanged.validations[0].relative_change == 0.0 and unchanged.kept == []
    with pytest.raises(ValueError, match="refiners: give at least one"):
        select_refiners(sac, [], "Hopper-v5")
    with pytest.raises(TypeError, match=r"refiners\[0\] must follow"):
        select_refiners(sac, [object()], "Hopper-v5")


def test_run_episodes_tells_a_refined_policy_of_each_reset(refiner, sac):
    """A new episode must not finish the previous episode's plan."""
    from ctflow_gym.wrappers import run_episodes

    env = gym.make("Hopper-v5", max_episode_steps=13)  # episodes end inside an 8-step window
    policy = RefinedPolicy(sac, refiner, env, strength=1.0, verify=False)
    returns = run_episodes(env, policy, 2, seed=7)
    fresh_env = gym.make("Hopper-v5", max_episode_steps=13)
    fresh = run_episodes(fresh_env, RefinedPolicy(sac, refiner, fresh_env, strength=1.0, verify=False), 1, seed=8)
    assert returns[1] == fresh[0]


def test_an_observation_from_another_env_is_refused(refiner, sac):
    env, other = gym.make("Hopper-v5"), gym.make("Hopper-v5")
    env.reset(seed=0)
    policy = RefinedPolicy(sac, refiner, env, strength=1.0, verify=True)
    elsewhere, _ = other.reset(seed=1)
    with pytest.raises(ValueError, match="observation: it is not what env observes in its current state"):
        policy.predict(elsewhere)
    observation, _ = env.reset(seed=1)  # the same state reached in the policy's own env is fine
    action, _ = policy.predict(observation)
    assert action.shape == (3,)
