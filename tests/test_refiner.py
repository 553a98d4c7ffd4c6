"""TrajectoryRefiner on small data: pair rules, strength 0, determinism, save/load, synthetic direction."""

import numpy as np
import pytest

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import Windows, make_windows
from ctflow_gym.refine import (
    NearestImprovedRefiner,
    ReconstructionRefiner,
    local_pairs,
    nearest_neighbours,
    nonlocal_pairs,
)
from ctflow_gym.refine.neighbours import recall

SMALL = dict(
    ae_steps=300,
    flow_steps=300,
    predictor_steps=150,
    inverse_dynamics_steps=300,
    ae_hidden=128,
    flow_hidden=128,
    batch_size=128,
)


@pytest.fixture(scope="module")
def hopper_windows(random_dataset):
    return make_windows(random_dataset, window=8)


@pytest.fixture(scope="module")
def fitted(random_dataset):
    return TrajectoryRefiner(window=8, seed=0, **SMALL).fit(random_dataset, progress_bar=False)


def test_pairs_obey_margin_and_locality():
    rng = np.random.default_rng(0)
    n, window = 400, 4
    latents = rng.normal(size=(n, 3)).astype(np.float32)
    feedback = rng.normal(size=n)
    episode_ids = np.repeat(np.arange(20), 20)
    start_steps = np.tile(np.arange(20), 20)
    pairs = local_pairs(latents, feedback, episode_ids, start_steps, window, k=5, margin=0.3)
    assert len(pairs) > 0
    neighbours, _ = nearest_neighbours(latents, episode_ids, start_steps, window, k=5)
    for i, j in zip(pairs.sources, pairs.targets):
        assert feedback[j] >= feedback[i] + 0.3
        assert j in neighbours[i]  # among the k nearest eligible
        assert not (episode_ids[i] == episode_ids[j] and abs(start_steps[i] - start_steps[j]) < window)
        # the nearest improving one among the k
        improving = [m for m in neighbours[i] if feedback[m] >= feedback[i] + 0.3]
        assert j == improving[0]
    # sources without a pair have no improving neighbour among their k
    for i in set(range(n)) - set(pairs.sources.tolist()):
        assert not any(feedback[m] >= feedback[i] + 0.3 for m in neighbours[i] if m >= 0)
    # brute-force check of the neighbour search
    d = np.linalg.norm(latents[:, None] - latents[None], axis=-1)
    excluded = (episode_ids[:, None] == episode_ids[None]) & (np.abs(start_steps[:, None] - start_steps[None]) < window)
    d[excluded] = np.inf
    np.testing.assert_array_equal(np.sort(neighbours, 1), np.sort(np.argsort(d, 1, kind="stable")[:, :5], 1))


def test_approximate_neighbour_search_finds_the_exact_neighbours_and_bad_indexes_are_named():
    rng = np.random.default_rng(3)
    episodes, length, window = 40, 100, 8
    # trajectory-like latents: a random walk per episode
    latents = np.cumsum(rng.normal(scale=0.2, size=(episodes, length, 6)), axis=1) + rng.normal(size=(episodes, 1, 6))
    latents = latents.reshape(-1, 6).astype(np.float32)
    episode_ids, start_steps = np.repeat(np.arange(episodes), length), np.tile(np.arange(length), episodes)
    exact, exact_distances = nearest_neighbours(latents, episode_ids, start_steps, window, k=3, index="exact")
    assert np.all(np.diff(exact_distances, axis=1) >= 0)
    for index in ("ivf", "HNSW32", "IVF16,Flat"):
        found, _ = nearest_neighbours(latents, episode_ids, start_steps, window, k=3, index=index, seed=1)
        assert recall(found, exact) >= 0.95, index
        np.testing.assert_array_equal(
            found, nearest_neighbours(latents, episode_ids, start_steps, window, k=3, index=index, seed=1)[0]
        )
    assert recall(exact, exact) == 1.0 and recall(np.full_like(exact, -1), exact) == 0.0
    some = np.array([5, 17, 3000])
    np.testing.assert_array_equal(
        nearest_neighbours(latents, episode_ids, start_steps, window, k=3, index="exact", queries=some)[0], exact[some]
    )
    with pytest.raises(ValueError, match="neighbour_index 'IVF-nonsense' is not an index FAISS knows"):
        nearest_neighbours(latents, episode_ids, start_steps, window, k=3, index="IVF-nonsense")
    with pytest.raises(ValueError, match="neighbour_index"):
        TrajectoryRefiner(neighbour_index="kd-tree")
    with pytest.raises(ValueError, match="neighbour_index must be one of"):
        TrajectoryRefiner(neighbour_index=3)


def test_nonlocal_pairs_obey_margin_only():
    feedback = np.random.default_rng(1).normal(size=300)
    pairs = nonlocal_pairs(feedback, margin=0.5, seed=0)
    assert np.all(feedback[pairs.targets] >= feedback[pairs.sources] + 0.5)
    assert len(pairs) == int(np.sum(feedback + 0.5 <= feedback.max()))


def test_strength_zero(fitted, hopper_windows):
    obs, act = hopper_windows.observations[:64], hopper_windows.actions[:64]
    result = fitted.refine(obs, act, strength=0.0)
    np.testing.assert_array_equal(result.actions, act)  # residual decoding: exact source
    np.testing.assert_array_equal(result.observations, obs)
    assert np.all(result.latent_deviation == 0) and np.all(result.action_deviation == 0)
    reconstruction = ReconstructionRefiner(fitted).refine(obs, act)
    fitted.config.decode = "direct"
    try:
        at_zero = fitted.refine(obs, act, strength=0.0)
    finally:
        fitted.config.decode = "residual"
    # direct decoding (the paper's D(z_alpha)): strength 0 is the autoencoder reconstruction
    np.testing.assert_allclose(at_zero.actions, reconstruction.actions, atol=1e-6)


def test_refine_is_deterministic_and_save_load_round_trip(fitted, hopper_windows, tmp_path):
    obs, act = hopper_windows.observations[:128], hopper_windows.actions[:128]
    first = fitted.refine(obs, act, strength=1.0)
    second = fitted.refine(obs, act, strength=1.0)
    np.testing.assert_array_equal(first.actions, second.actions)
    path = fitted.save(tmp_path / "refiner")
    loaded = TrajectoryRefiner.load(path)
    again = loaded.refine(obs, act, strength=1.0)
    np.testing.assert_array_equal(again.actions, first.actions)
    np.testing.assert_array_equal(again.predicted_gain, first.predicted_gain)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    np.testing.assert_array_equal(loaded.held_out_episodes, fitted.held_out_episodes)
    with pytest.raises(RuntimeError, match="NearestImprovedRefiner is not fitted"):
        NearestImprovedRefiner(loaded).refine(obs, act)
    with_bank = TrajectoryRefiner.load(fitted.save(tmp_path / "with_bank", include_bank=True))
    np.testing.assert_array_equal(
        NearestImprovedRefiner(with_bank).refine(obs, act).actions,
        NearestImprovedRefiner(fitted).refine(obs, act).actions,
    )


def test_held_out_episodes_are_the_ones_left_out_of_training(fitted, random_dataset, hopper_windows):
    held = fitted.held_out_episodes
    assert fitted.fit_info["dataset_id"] == random_dataset.id
    assert 0 < len(held) < random_dataset.total_episodes
    in_held = np.isin(hopper_windows.episode_ids, held)
    assert in_held.sum() == fitted.fit_info["held_out_windows"]
    assert (~in_held).sum() == fitted.fit_info["train_windows"]
    stages = ["windows", "autoencoder", "feedback", "pairs", "flow", "predictor", "inverse_dynamics"]
    assert list(fitted.fit_info["stage_seconds"]) == list(fitted.fit_info["peak_rss_mb"]) == stages
    assert all(v >= 0 for v in fitted.fit_info["stage_seconds"].values())
    peaks = list(fitted.fit_info["peak_rss_mb"].values())
    assert peaks == sorted(peaks) and peaks[0] > 50  # a running maximum, in MiB (python + torch alone exceed 50)


def test_fit_is_reproducible_for_a_seed(random_dataset, hopper_windows):
    a = TrajectoryRefiner(window=8, seed=5, **SMALL).fit(random_dataset, progress_bar=False)
    b = TrajectoryRefiner(window=8, seed=5, **SMALL).fit(random_dataset, progress_bar=False)
    obs, act = hopper_windows.observations[:32], hopper_windows.actions[:32]
    np.testing.assert_array_equal(a.refine(obs, act).actions, b.refine(obs, act).actions)


def test_outputs_shapes_batched_and_single(fitted, hopper_windows):
    single = fitted.refine(hopper_windows.observations[0], hopper_windows.actions[0])
    assert single.actions.shape == (1, 8, 3) and single.observations.shape == (1, 8, 11)
    batch = fitted.refine(hopper_windows.subset(slice(0, 10)), strength=0.5)
    assert batch.predicted_gain.shape == (10,) and batch.source_latents.shape == (10, 16)
    assert np.all(batch.actions <= 1.0) and np.all(batch.actions >= -1.0)
    path = fitted.path(hopper_windows.observations[:2], hopper_windows.actions[:2], strength=1.0, times=[0.0, 0.5, 1.0])
    assert path["actions"].shape == (3, 2, 8, 3)
    np.testing.assert_array_equal(path["actions"][0], hopper_windows.actions[:2])
    np.testing.assert_allclose(
        path["actions"][-1],
        fitted.refine(hopper_windows.observations[:2], hopper_windows.actions[:2]).actions,
        atol=1e-6,
    )


def _synthetic_windows(n_episodes=60, length=40, window=4, seed=0) -> Windows:
    """A problem where the better direction is known: feedback grows with mean action.

    Each episode has a constant action level c; states are small noise. Windows with a
    higher action level have higher feedback, so the flow should raise actions.
    """
    rng = np.random.default_rng(seed)
    obs, act, eps, starts = [], [], [], []
    for e in range(n_episodes):
        level = rng.uniform(-0.8, 0.8)
        for s in range(0, length - window + 1, 2):
            obs.append(0.1 * rng.normal(size=(window, 2)))
            act.append(level + 0.05 * rng.normal(size=(window, 1)))
            eps.append(e)
            starts.append(s)
    act = np.asarray(act, np.float32)
    feedback = act.sum(axis=(1, 2)).astype(np.float64)
    return Windows(
        observations=np.asarray(obs, np.float32),
        actions=act,
        rewards=act[..., 0],
        feedback=feedback,
        episode_ids=np.asarray(eps),
        start_steps=np.asarray(starts),
    )


def test_flow_moves_sources_toward_the_better_direction():
    windows = _synthetic_windows()
    refiner = TrajectoryRefiner(
        window=4,
        latent_dim=4,
        k=5,
        ae_steps=800,
        flow_steps=800,
        predictor_steps=100,
        ae_hidden=128,
        flow_hidden=128,
        seed=0,
    )
    refiner.fit(windows, progress_bar=False)
    low = windows.actions.mean(axis=(1, 2)) < 0.0
    result = refiner.refine(windows.observations[low], windows.actions[low], strength=1.0)
    change = result.actions.mean(axis=(1, 2)) - windows.actions[low].mean(axis=(1, 2))
    # Targets are only slightly better neighbours (local pairs), so each move is small
    # and the decoder's error blurs some of them; the direction must still be clear.
    assert np.mean(change > 0) > 0.75, f"only {np.mean(change > 0):.2f} of windows moved up"
    assert change.mean() > 5 * change.std() / np.sqrt(len(change))
    half = refiner.refine(windows.observations[low], windows.actions[low], strength=0.5)
    assert np.mean(half.action_deviation) < np.mean(result.action_deviation)


def test_bad_inputs(fitted, hopper_windows):
    obs, act = hopper_windows.observations[:4], hopper_windows.actions[:4]
    with pytest.raises(ValueError, match=r"observations must have shape \(N, 8, 11\)"):
        fitted.refine(obs[:, :, :5], act)
    with pytest.raises(ValueError, match=r"actions must have shape \(4, 8, 3\)"):
        fitted.refine(obs, act[:, :, :2])
    bad = obs.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="observations must be finite"):
        fitted.refine(bad, act)
    with pytest.raises(ValueError, match="strength must be a finite number >= 0"):
        fitted.refine(obs, act, strength=-0.1)
    with pytest.raises(TypeError, match="method"):
        fitted.refine(obs, act, method="nearest")
    with pytest.raises(RuntimeError, match="not fitted"):
        TrajectoryRefiner(window=8).refine(obs, act)
    with pytest.raises(TypeError, match="unknown argument 'windw'"):
        TrajectoryRefiner(windw=8)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        TrajectoryRefiner(k=0)
    with pytest.raises(ValueError, match="windows have length 8; this refiner is configured for window=4"):
        TrajectoryRefiner(window=4).fit(hopper_windows)


def test_no_improving_pair_is_a_clear_error():
    windows = _synthetic_windows(n_episodes=6)
    flat = Windows(**{**windows.__dict__, "feedback": np.zeros(len(windows))})
    with pytest.raises(ValueError, match=r"no improving pair found among \d+ training windows with k=3 and margin=0.5"):
        TrajectoryRefiner(window=4, margin=0.5, ae_steps=10, flow_steps=10, predictor_steps=10).fit(
            flat, progress_bar=False
        )


def test_load_rejects_non_refiner_folder(tmp_path, fitted):
    from ctflow_gym.checkpoint import CheckpointError, save_checkpoint
    from ctflow_gym.refine import load_refiner

    with pytest.raises(FileNotFoundError, match="holds no checkpoint.json"):
        TrajectoryRefiner.load(tmp_path)
    save_checkpoint(tmp_path / "agent", "agent:GTPAgent", {}, {})
    for load in (TrajectoryRefiner.load, load_refiner):
        with pytest.raises(CheckpointError, match="agent:GTPAgent"):
            load(tmp_path / "agent")
    save_checkpoint(tmp_path / "unknown", "refiner:NoSuchRefiner", {}, {})
    with pytest.raises(CheckpointError, match="not registered"):
        load_refiner(tmp_path / "unknown")
    path = fitted.save(tmp_path / "damaged")
    (path / "checkpoint.json").write_text('{"format_version": 2, "kind": "refiner:TrajectoryRefiner"}')
    with pytest.raises(CheckpointError, match="missing"):
        TrajectoryRefiner.load(path)


def test_a_refiner_fitted_on_windows_clips_to_the_action_bounds(hopper_windows):
    from dataclasses import replace

    budget = dict(SMALL, ae_steps=100, flow_steps=100, predictor_steps=20)
    obs, act = hopper_windows.observations[:200], hopper_windows.actions[:200]
    for windows in (hopper_windows, replace(hopper_windows, action_space=None)):  # the bounds from the env id
        refiner = TrajectoryRefiner(window=8, **budget).fit(windows, progress_bar=False)
        refined = refiner.refine(obs, act, strength=5.0).actions
        assert refined.min() >= -1.0 and refined.max() <= 1.0
        assert np.any(np.abs(refined) == 1.0)  # extrapolation pushed some actions onto the bounds
    with pytest.warns(UserWarning, match="will not be clipped"):
        TrajectoryRefiner(window=8, **budget).fit(
            replace(hopper_windows, action_space=None, env_id=None), progress_bar=False
        )


def test_inverse_dynamics_from_windows_equals_the_fit_on_copied_transitions(hopper_windows):
    import torch

    from ctflow_gym.data import NormalizationStats
    from ctflow_gym.refine.fit_inputs import window_transitions
    from ctflow_gym.refine.inverse_dynamics import InverseDynamics

    windows = hopper_windows.subset(slice(0, 300))
    stats = NormalizationStats.from_windows(windows)
    moments = (stats.obs_mean, stats.obs_std, stats.act_mean, stats.act_std)
    copied, gathered = InverseDynamics(*moments), InverseDynamics(*moments)
    gathered.network.load_state_dict(copied.network.state_dict())
    loss = copied.fit(*window_transitions(windows), 30, 64, 1e-3, torch.Generator().manual_seed(0), progress_bar=False)
    as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float32)  # noqa: E731
    gathered_loss = gathered.fit_windows(
        as_tensor(stats.normalize_observations(windows.observations)),
        as_tensor(stats.normalize_actions(windows.actions)),
        as_tensor(stats.normalize_observations(windows.end_observations)),
        30,
        64,
        1e-3,
        torch.Generator().manual_seed(0),
        progress_bar=False,
    )
    assert loss == gathered_loss
    for a, b in zip(copied.network.parameters(), gathered.network.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
