"""Flow to Better: its preferences, losses, generator and iterative improvement, on tiny real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctflow_gym import FTBRefiner, load_refiner
from ctflow_gym.data import make_windows
from ctflow_gym.improve import realise_proposals
from ctflow_gym.models.step_reward import StepReward
from ctflow_gym.refine.ftb.losses import bradley_terry_loss, segment_bce_loss
from ctflow_gym.refine.ftb.preferences import BlockPairs, score_blocks, scripted_labels

TINY = dict(
    window=8,
    stride=2,
    segment=10,
    blocks=4,
    score_hidden=32,
    score_steps=60,
    generator_hidden=16,
    generator_blocks=2,
    generator_steps=60,
    sample_steps=4,
    top_n=12,
)


@pytest.fixture(scope="module")
def ftb(random_dataset):
    return FTBRefiner(**TINY).fit(random_dataset, progress_bar=False)


@pytest.fixture(scope="module")
def windows(random_dataset):
    return make_windows(random_dataset, 8, stride=8)


def test_scripted_teacher_prefers_the_higher_return():
    rng = np.random.default_rng(0)
    episodes = [(rng.normal(size=(31, 2)), rng.normal(size=(30, 1)), rng.normal(size=30)) for _ in range(5)]
    pairs = scripted_labels(episodes, 40, 10, np.random.default_rng(1))
    assert pairs.first_observations.shape == (40, 10, 2) and pairs.labels.shape == (40,)

    def segment_return(observations):  # find the segment in its episode and sum its rewards
        for obs, _, rewards in episodes:
            for start in range(21):
                if np.array_equal(obs[start : start + 10], observations):
                    return rewards[start : start + 10].sum()

    for i in range(40):
        first, second = segment_return(pairs.first_observations[i]), segment_return(pairs.second_observations[i])
        assert pairs.labels[i] == (0 if first > second else 1)
    with pytest.raises(ValueError, match="segment"):
        scripted_labels(episodes, 5, 31, rng)


def test_score_blocks_are_contiguous_ordered_and_k_is_checked():
    scores = np.concatenate([np.full(5, 0.1), np.full(5, 0.5), np.full(5, 0.9)]) + np.linspace(0, 0.01, 15)
    blocks = score_blocks(scores, 3)
    assert blocks.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    shuffled = np.random.default_rng(0).permutation(15)
    assert score_blocks(scores[shuffled], 3).tolist() == blocks[shuffled].tolist()
    with pytest.raises(ValueError, match="blocks: K = 20"):
        score_blocks(scores[:10], 20)
    worse, better = BlockPairs(blocks, 4).sample(torch.Generator().manual_seed(0))
    assert len(worse) == len(better) == 8 and np.all(blocks[better] == blocks[worse] + 1)


def test_preference_losses_match_their_equations():
    reward = StepReward(2, 1, hidden=8)
    o1, a1, o2, a2 = torch.randn(4, 5, 2), torch.randn(4, 5, 1), torch.randn(4, 5, 2), torch.randn(4, 5, 1)
    labels = torch.tensor([0, 1, 1, 0])
    s1, s2 = reward(o1, a1).sum(-1), reward(o2, a2).sum(-1)
    chosen = torch.where(labels == 0, s1, s2)
    expected_bt = -(chosen - torch.logsumexp(torch.stack([s1, s2], -1), -1)).mean()
    torch.testing.assert_close(bradley_terry_loss(reward, (o1, a1), (o2, a2), labels), expected_bt)
    p1, p2 = torch.sigmoid(reward(o1, a1).mean(-1)), torch.sigmoid(reward(o2, a2).mean(-1))
    y1 = (labels == 0).float()
    expected_bce = -(y1 * p1.log() + (1 - y1) * (1 - p1).log() + (1 - y1) * p2.log() + y1 * (1 - p2).log()).mean() / 2
    torch.testing.assert_close(segment_bce_loss(reward, (o1, a1), (o2, a2), labels), expected_bce)


def test_refine_generates_from_the_source_start_and_is_seeded(ftb, windows):
    source = windows.subset(slice(0, 6))
    one = ftb.refine(source.observations, source.actions, strength=1.0, seed=3)
    again = ftb.refine(source.observations, source.actions, strength=1.0, seed=3)
    np.testing.assert_array_equal(one.actions, again.actions)
    np.testing.assert_allclose(one.observations[:, 0], source.observations[:, 0], rtol=0, atol=1e-5)
    assert not np.allclose(one.actions, source.actions)
    torch.testing.assert_close(
        torch.as_tensor(one.predicted_gain),
        torch.as_tensor(ftb.scores(one.observations, one.actions) - ftb.scores(source.observations, source.actions)),
    )
    half = ftb.refine(source.observations, source.actions, strength=0.5, seed=3)
    # a fractional strength blends toward the next round (observations are not clipped, so they show it exactly)
    np.testing.assert_allclose(half.observations, (source.observations + one.observations) / 2, atol=1e-4)
    single = ftb.refine(source.observations[0], source.actions[0], strength=1.0, seed=3)
    assert single.actions.shape == (8, 3)
    with pytest.raises(TypeError, match="unknown options"):
        ftb.refine(source.observations, source.actions, steps=3)


def test_iterative_improvement_keeps_the_best_and_only_real_ratio_gains(ftb, windows, random_dataset, tmp_path):
    pool = ftb.improve(windows, progress_bar=False)
    assert len(pool.scores) == TINY["top_n"] and np.all(np.diff(pool.scores) <= 0)
    assert pool.rounds and all(0 <= r["accepted"] <= 1 for r in pool.rounds)
    start_scores = ftb.scores(windows.observations, windows.actions)
    assert pool.scores.min() >= np.sort(start_scores)[-TINY["top_n"]] - 1e-9  # never worse than the start set
    gains = pool.scores[pool.generated] / start_scores[pool.origins[pool.generated]]
    assert np.all(gains > ftb.config.sigma)
    assert np.all(np.isfinite(pool.dynamics_error[pool.generated]))
    # the pool is realised from the start states of the windows it descends from
    report = (
        realise_proposals(
            random_dataset,
            windows.subset(pool.origins),
            pool.observations,
            pool.actions,
            ftb,
            "test/ftb-real-v0",
            root=tmp_path,
            progress_bar=False,
        )
        if pool.generated.any()
        else None
    )
    if report is not None:
        assert report.windows == TINY["top_n"] and report.accepted <= report.windows


def test_whole_episode_improvement_keeps_each_window_in_its_final_version(ftb, random_dataset):
    """keep="each": windows tiling FTB's top episodes, one kept version per window (start states included)."""
    top = ftb.top_episodes(random_dataset, 2)
    totals = {}
    for episode in random_dataset.iterate_episodes():
        terms = ftb.step_scores(episode.observations[None, :-1], episode.actions[None])
        totals[episode.id] = float(terms.sum())
    assert top.tolist() == sorted(totals, key=totals.get, reverse=True)[:2]  # the paper's trajectory score
    tiles = make_windows(random_dataset, 8, stride=8, episodes=top)
    pool = ftb.improve(tiles, progress_bar=False, keep="each")
    assert pool.origins.tolist() == list(range(len(tiles)))  # one version per window, in order
    start_scores = ftb.scores(tiles.observations, tiles.actions)
    assert np.all(pool.scores[pool.generated] > ftb.config.sigma * start_scores[pool.generated])
    original = ~pool.generated
    np.testing.assert_array_equal(pool.observations[original], tiles.observations[original])  # as recorded
    np.testing.assert_array_equal(pool.scores[original], start_scores[original])
    first = pool.observations[tiles.start_steps == 0][:, 0]  # the generated hold the start state (inpainting)
    np.testing.assert_allclose(first, tiles.observations[tiles.start_steps == 0][:, 0], atol=1e-4)
    for k in (0, random_dataset.total_episodes + 1):
        with pytest.raises(ValueError, match="k must be"):
            ftb.top_episodes(random_dataset, k)
    with pytest.raises(ValueError, match="keep must be"):
        ftb.improve(tiles, keep="best")


def test_save_load_and_bad_settings(ftb, windows, tmp_path):
    loaded = load_refiner(ftb.save(tmp_path / "ftb"))
    assert isinstance(loaded, FTBRefiner) and loaded.block_edges == ftb.block_edges
    np.testing.assert_array_equal(
        loaded.scores(windows.observations, windows.actions), ftb.scores(windows.observations, windows.actions)
    )
    for field, value in [("sigma", 1.0), ("blocks", 1), ("condition_dropout", 1.0), ("n_labels", 0)]:
        with pytest.raises(ValueError, match=field):
            FTBRefiner(**{field: value})
    loaded.config.top_n = len(windows) + 1
    with pytest.raises(ValueError, match="top_n"):
        loaded.improve(windows)
    with pytest.raises(ValueError, match="not fitted"):
        FTBRefiner().refine(windows.observations, windows.actions)
