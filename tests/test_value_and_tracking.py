"""The dataset value function, bootstrapped feedback, inverse dynamics and tracked execution."""

import gymnasium as gym
import numpy as np
import pytest

from ctflow_gym import DatasetValueFunction, RefinedPolicy, TrajectoryRefiner
from ctflow_gym.checkpoint import CheckpointError
from ctflow_gym.data import load_transitions, make_windows
from ctflow_gym.refine.evaluation import choose_strength, evaluate_refinement, held_out_windows
from ctflow_gym.refine.fit_inputs import windows_as_transitions
from ctflow_gym.refine.value_function import lambda_returns

TINY = dict(window=8, ae_steps=100, flow_steps=100, predictor_steps=50, ae_hidden=64, flow_hidden=64)


def test_lambda_returns_match_a_hand_computation():
    rewards = np.array([1.0, 2.0, 3.0, 10.0, 20.0])
    next_values = np.array([5.0, 6.0, 7.0, 8.0, 9.0])  # V(s_{t+1}) of each transition
    terminations = np.array([0, 0, 1, 0, 0])  # episode 1 terminates at step 2; episode 2 is truncated
    ends = np.array([False, False, True, False, True])
    g = lambda_returns(rewards, next_values, terminations, ends, gamma=0.5, lam=0.5)
    g2 = 3.0  # terminal: no bootstrap
    g1 = 2.0 + 0.5 * (0.5 * 6.0 + 0.5 * g2)
    g0 = 1.0 + 0.5 * (0.5 * 5.0 + 0.5 * g1)
    g4 = 20.0 + 0.5 * 9.0  # truncated: bootstraps on V(s_T)
    g3 = 10.0 + 0.5 * (0.5 * 8.0 + 0.5 * g4)
    np.testing.assert_allclose(g, [g0, g1, g2, g3, g4])


@pytest.fixture(scope="module")
def value_fn(random_dataset):
    return DatasetValueFunction(rounds=2, steps_per_round=300, hidden=64).fit(random_dataset, progress_bar=False)


def test_value_function_ranks_states_by_what_follows_and_round_trips(value_fn, random_dataset, tmp_path):
    transitions = load_transitions(random_dataset)
    values = value_fn.values(transitions.observations)
    assert values.shape == (len(transitions),) and np.all(np.isfinite(values))
    # States just before a fall are worth less than the average state (random actions: falls are the signal).
    before_fall = np.flatnonzero(transitions.terminations)
    assert values[before_fall].mean() < values.mean()
    loaded = DatasetValueFunction.load(value_fn.save(tmp_path / "v"))
    np.testing.assert_array_equal(loaded.values(transitions.observations[:50]), values[:50])
    assert loaded(transitions.observations[0]) == pytest.approx(values[0])
    with pytest.raises(ValueError, match=r"observations must have shape \(N, 11\)"):
        value_fn.values(np.zeros((2, 5)))
    with pytest.raises(CheckpointError, match="expected a kind 'value:"):
        DatasetValueFunction.load(
            TrajectoryRefiner(**TINY).fit(random_dataset, progress_bar=False).save(tmp_path / "r")
        )


def test_value_function_verifies_any_policy(value_fn):
    env = gym.make("Hopper-v5")
    refiner_free_policy = RefinedPolicy(
        lambda obs: np.zeros(3, np.float32),
        TrajectoryRefiner(**TINY, inverse_dynamics_steps=0).fit(
            make_windows("ctflow/hopper/medium-replay-v1", 8, stride=97), progress_bar=False
        ),
        env,
        value_fn=value_fn,
    )
    obs, _ = env.reset(seed=0)
    for _ in range(8):
        obs, *_ = env.step(refiner_free_policy.predict(obs)[0])
    assert refiner_free_policy.history and refiner_free_policy.execution == "open_loop"


@pytest.fixture(scope="module")
def bootstrapped(random_dataset):
    return TrajectoryRefiner(
        **TINY, feedback="bootstrapped_advantage", inverse_dynamics_steps=300, value_steps=200
    ).fit(random_dataset, progress_bar=False)


def test_bootstrapped_feedback_fits_v_on_training_episodes_and_saves_it(bootstrapped, tmp_path):
    assert bootstrapped.value_function is not None and bootstrapped.inverse_dynamics is not None
    loaded = TrajectoryRefiner.load(bootstrapped.save(tmp_path / "boot"))
    obs = np.random.default_rng(0).normal(size=(4, 11)).astype(np.float32)
    np.testing.assert_array_equal(loaded.value_function.values(obs), bootstrapped.value_function.values(obs))
    np.testing.assert_array_equal(
        loaded.inverse_dynamics.predict(obs, obs + 0.1), bootstrapped.inverse_dynamics.predict(obs, obs + 0.1)
    )


def test_windows_give_back_their_episodes_transitions(random_dataset):
    windows = make_windows(random_dataset, 8)
    from_windows = windows_as_transitions(windows)
    long_enough = [e.id for e in random_dataset.iterate_episodes() if len(e.actions) >= 8]
    direct = load_transitions(random_dataset, episodes=long_enough)
    with pytest.raises(ValueError, match=r"episodes: ids \[100000\] are not episodes of dataset"):
        load_transitions(random_dataset, episodes=[100000])
    for field in ("observations", "actions", "rewards", "next_observations", "terminations", "episode_ends"):
        np.testing.assert_array_equal(getattr(from_windows, field), getattr(direct, field), err_msg=field)
    # Fitting on such Windows (not the dataset) works with the bootstrapped feedback too.
    refiner = TrajectoryRefiner(**TINY, feedback="bootstrapped_advantage", value_steps=50).fit(
        windows, progress_bar=False
    )
    assert refiner.value_function is not None


def test_tracked_execution_replays_an_unrefined_window_exactly(bootstrapped, random_dataset):
    windows = held_out_windows(bootstrapped, random_dataset, 40)
    for execution in ("open_loop", "tracked"):
        report = evaluate_refinement(bootstrapped, windows, 0.0, validity=False, execution=execution)
        assert report["realized_gain"] == {"mean": 0.0, "se": 0.0} and report["execution"] == execution
    refined = evaluate_refinement(bootstrapped, windows, 1.0, validity=False, value_fn=bootstrapped.value_function)
    assert refined["execution"] == "tracked" and np.isfinite(refined["realized_score_gain"]["mean"])


def test_inverse_dynamics_recovers_recorded_actions(bootstrapped, random_dataset):
    transitions = load_transitions(random_dataset)
    predicted = bootstrapped.inverse_dynamics.predict(transitions.observations, transitions.next_observations)
    error = np.mean((predicted - transitions.actions) ** 2)
    assert error < 0.5 * np.mean((transitions.actions - transitions.actions.mean(0)) ** 2)


def test_strength_is_chosen_on_validation_episodes_disjoint_from_test(bootstrapped, random_dataset):
    validation = held_out_windows(bootstrapped, random_dataset, 1000, part="validation")
    test = held_out_windows(bootstrapped, random_dataset, 1000, part="test")
    assert not set(validation.episode_ids) & set(test.episode_ids)
    assert set(validation.episode_ids) | set(test.episode_ids) <= set(bootstrapped.held_out_episodes.tolist())
    best, reports = choose_strength(bootstrapped, random_dataset, strengths=(0.0, 1.0), windows=30)
    assert set(reports) == {"0.0", "1.0"} and reports["0.0"]["realized_gain"]["mean"] == 0.0
    assert best == max((0.0, 1.0), key=lambda a: reports[str(a)]["realized_gain"]["mean"])
    with pytest.raises(ValueError, match="part must be one of"):
        held_out_windows(bootstrapped, random_dataset, 10, part="train")


def test_latent_noise_samples_around_the_refinement(bootstrapped, random_dataset):
    windows = held_out_windows(bootstrapped, random_dataset, 5)
    obs, act = windows.observations, windows.actions
    np.testing.assert_array_equal(bootstrapped.refine(obs, act, strength=0.0, noise=1.0, seed=3).actions, act)
    plain = bootstrapped.refine(obs, act, strength=1.0).actions
    first, again, other = (bootstrapped.refine(obs, act, strength=1.0, noise=0.5, seed=s).actions for s in (1, 1, 2))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and not np.array_equal(first, plain)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        bootstrapped.refine(obs, act, noise=-0.1)


def test_value_function_weights_that_do_not_fit_name_the_file(value_fn, tmp_path):
    import json

    folder = value_fn.save(tmp_path / "v")
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["config"]["hidden"] = 32  # the saved network is 64 wide
    (folder / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"weights.safetensors: the tensors of 'network' do not fit"):
        DatasetValueFunction.load(folder)
