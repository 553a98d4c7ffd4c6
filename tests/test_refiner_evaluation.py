"""Closed-loop replay, dynamics error, the evaluation report and the path plot."""

import numpy as np
import pytest

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import Windows, make_windows, split_episodes
from ctflow_gym.refine import NearestImprovedRefiner
from ctflow_gym.refine.evaluation import evaluate_refinement
from ctflow_gym.refine.plotting import plot_refinement_path
from ctflow_gym.replay import closed_loop_returns, dynamics_error


@pytest.fixture(scope="module")
def setup(random_dataset):
    windows = make_windows(random_dataset, window=8)
    train, held = split_episodes(windows, 0.3, seed=2)
    refiner = TrajectoryRefiner(
        window=8,
        ae_steps=200,
        flow_steps=200,
        predictor_steps=100,
        inverse_dynamics_steps=300,
        ae_hidden=64,
        flow_hidden=64,
    ).fit(train, progress_bar=False)
    return refiner, held.subset(slice(0, 60))


def test_source_actions_replay_to_their_recorded_returns(setup):
    _, held = setup
    returns, terminated, _ = closed_loop_returns("Hopper-v5", held.sim_states, held.actions, held.sim_state_spec)
    np.testing.assert_array_equal(returns, held.rewards.sum(axis=1))
    assert terminated.dtype == bool


def test_dynamics_error_is_zero_for_real_data_and_not_for_noise(setup):
    _, held = setup
    real = dynamics_error("Hopper-v5", held.observations[:10], held.actions[:10])
    assert np.all(real < 1e-3)
    noisy = held.observations[:10] + np.random.default_rng(0).normal(0, 0.1, held.observations[:10].shape)
    assert np.all(dynamics_error("Hopper-v5", noisy, held.actions[:10]) > 0.05)
    with pytest.raises(ValueError, match="not a MuJoCo env"):
        dynamics_error("CartPole-v1", held.observations[:1], held.actions[:1])


def test_report_at_strength_zero_is_a_no_op(setup):
    refiner, held = setup
    report = evaluate_refinement(refiner, held, strength=0.0)
    assert report["realized_gain"]["mean"] == 0.0
    assert report["action_deviation"]["mean"] == 0.0
    assert report["proxy_gain"]["mean"] == 0.0
    report = evaluate_refinement(NearestImprovedRefiner(refiner), held, strength=1.0)
    assert report["action_deviation"]["mean"] > 0 and report["refiner"] == "NearestImprovedRefiner"
    assert set(report) >= {"proxy_gain", "realized_gain", "dynamics_error", "source_dynamics_error", "latent_deviation"}


def test_replays_in_worker_processes_give_the_same_numbers(setup):
    refiner, held = setup
    one = evaluate_refinement(refiner, held, strength=1.0, execution="tracked")
    assert evaluate_refinement(refiner, held, strength=1.0, execution="tracked", workers=3) == one
    returns = closed_loop_returns("Hopper-v5", held.sim_states, held.actions, held.sim_state_spec, workers=2)
    np.testing.assert_array_equal(returns[0], held.rewards.sum(axis=1))
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="workers must be an integer >= 1"):
            evaluate_refinement(refiner, held, workers=bad)


def test_closed_loop_needs_recorded_states(setup):
    refiner, held = setup
    stateless = Windows(**{**held.__dict__, "sim_states": None})
    with pytest.raises(ValueError, match="no recorded states"):
        evaluate_refinement(refiner, stateless, validity=False)


def test_path_plot_is_a_png(setup, tmp_path):
    refiner, held = setup
    path = refiner.path(held.observations[:2], held.actions[:2], strength=1.0, times=[0, 0.5, 1.0])
    out = plot_refinement_path(path, tmp_path / "plots" / "path.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["path.png"]
    with pytest.raises(ValueError, match="window_index"):
        plot_refinement_path(path, tmp_path / "x.png", window_index=5)
