"""Verified improvement: realisation is exact, kept windows really improved, the dataset is real and traceable."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import minari
import numpy as np
import pytest
from minari import DataCollector

from ctflow_gym import GaussianPerturbation, TrajectoryRefiner
from ctflow_gym.data import load_dataset, make_windows
from ctflow_gym.data.minari_io import build_record, episode_buffer, minari_root_at
from ctflow_gym.improve import ImprovementConfig, improve_dataset, verify_proposals, verify_windows
from ctflow_gym.replay.continuation import policy_continuations
from ctflow_gym.replay.realisation import realise_window, realise_windows
from ctflow_gym.replay.scoring import window_score
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY, set_sim_state


@pytest.fixture(scope="module")
def tiny_refiner(random_dataset):
    """A refiner fitted in seconds on the tiny Hopper random dataset, with inverse dynamics (numbers mean nothing)."""
    sizes = dict(ae_hidden=32, flow_hidden=32, batch_size=32)
    steps = dict(ae_steps=30, flow_steps=30, predictor_steps=10, inverse_dynamics_steps=20)
    return TrajectoryRefiner(window=8, seed=0, **sizes, **steps).fit(random_dataset, progress_bar=False)


@pytest.fixture(scope="module")
def improved(random_dataset, tiny_refiner, tmp_path_factory):
    root = tmp_path_factory.mktemp("improved")
    report = improve_dataset(
        random_dataset, tiny_refiner, "test/hopper/improved-v0", root=root, progress_bar=False, batch_size=64
    )
    return report, load_dataset(report.path)


def test_realising_a_recorded_window_reproduces_it_bit_for_bit(random_dataset):
    episode = next(e for e in random_dataset.iterate_episodes() if len(e.actions) >= 10)
    states = episode.infos[SIM_STATE_INFO_KEY]
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    realised = realise_window(env, states[2], episode.actions[2:10], episode.observations[2])
    np.testing.assert_array_equal(realised.observations, episode.observations[2 : 2 + len(realised) + 1])
    np.testing.assert_array_equal(realised.rewards, episode.rewards[2 : 2 + len(realised)])
    np.testing.assert_array_equal(realised.sim_states, states[2 : 2 + len(realised) + 1])
    assert realised.window_return == float(sum(episode.rewards[2 : 2 + len(realised)].tolist()))
    first = realise_window(env, states[2], episode.actions[2:10], episode.observations[2], steps=3)
    assert len(first) == 3 and not first.terminated  # its first 3 steps, as the whole realisation's
    np.testing.assert_array_equal(first.observations, realised.observations[:4])
    np.testing.assert_array_equal(first.sim_states, realised.sim_states[:4])
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        realise_window(env, states[2], episode.actions[2:10], episode.observations[2], steps=0)


def test_kept_windows_really_improved_and_replay_as_written(improved):
    report, dataset = improved
    assert 0 < report.accepted <= report.windows and dataset.total_episodes == report.accepted
    assert report.realised_gain_accepted > 0
    record = build_record(dataset)
    episodes = record["improvement"]["episodes"]
    assert len(episodes["source_episode"]) == report.accepted
    assert report.kept_rows == episodes["row"]
    assert all(gain > 0 for gain in episodes["realised_gain"])
    assert record["improver"]["kind"] == "refiner:TrajectoryRefiner"
    _replays_as_written(dataset)  # every written transition is what MuJoCo does from the recorded state
    # the written windows are windows like any other: they cut and replay
    assert make_windows(dataset, 4).sim_states is not None


def _replays_as_written(dataset) -> None:
    """Every episode of ``dataset`` is what MuJoCo does from its first recorded state, bit for bit."""
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    for episode in dataset.iterate_episodes():
        set_sim_state(env, episode.infos[SIM_STATE_INFO_KEY][0])
        for t, action in enumerate(episode.actions):
            observation, reward, terminated, _, _ = env.unwrapped.step(action)
            np.testing.assert_array_equal(observation, episode.observations[t + 1])
            assert reward == episode.rewards[t] and terminated == episode.terminations[t]


def test_improvement_is_deterministic_and_can_include_the_source(random_dataset, tiny_refiner, improved, tmp_path):
    report, dataset = improved
    again = improve_dataset(
        random_dataset,
        tiny_refiner,
        "test/hopper/improved-v0",
        root=tmp_path,
        progress_bar=False,
        batch_size=64,
        source_steps="all",
    )
    assert again.accepted == report.accepted
    with_source = load_dataset(again.path)
    assert with_source.total_episodes == random_dataset.total_episodes + report.accepted
    last = list(with_source.iterate_episodes([with_source.total_episodes - 1]))[0]
    first_improved = list(dataset.iterate_episodes([dataset.total_episodes - 1]))[0]
    np.testing.assert_array_equal(last.actions, first_improved.actions)


def test_unimproved_source_steps_put_each_kept_window_in_place_of_its_span(random_dataset, tiny_refiner, improved,
                                                                           tmp_path):  # fmt: skip
    report, dataset = improved
    replaced = improve_dataset(
        random_dataset, tiny_refiner, "test/hopper/replaced-v0", root=tmp_path, progress_bar=False,
        batch_size=64, source_steps="unimproved",
    )  # fmt: skip
    written = load_dataset(replaced.path)
    episodes = build_record(written)["improvement"]["episodes"]
    spans = {(e, s) for e, s in zip(episodes["source_episode"], episodes["source_start"])}
    window = tiny_refiner.window
    # every source step is written once: by its kept window where one improved it, else as it was
    assert written.total_steps == random_dataset.total_steps - len(spans) * window + dataset.total_steps
    fragments = written.total_episodes - report.accepted
    improved_steps = {(e, s + k) for e, s in spans for k in range(window)}
    source_actions = {}
    for episode in random_dataset.iterate_episodes():
        for t, action in enumerate(episode.actions):
            if (int(episode.id), t) not in improved_steps:
                source_actions[episode.observations[t].tobytes()] = action
    kept = [e for e in written.iterate_episodes(list(range(fragments)))]
    assert sum(len(e.actions) for e in kept) == len(source_actions)
    for episode in kept:  # the fragments are the source's unimproved steps, with their own actions
        for t, action in enumerate(episode.actions):
            np.testing.assert_array_equal(action, source_actions[episode.observations[t].tobytes()])
    _replays_as_written(written)


def test_strength_zero_improves_nothing(random_dataset, tiny_refiner, tmp_path):
    windows = make_windows(random_dataset, 8, stride=8)
    verified = verify_windows(tiny_refiner, windows.subset(slice(0, 20)), ImprovementConfig(strength=0.0))
    assert not any(v.accepted for v in verified)
    assert all(v.realised_gain == 0 for v in verified if v.execution == "open_loop")
    with pytest.raises(ValueError, match="nothing to write"):
        improve_dataset(random_dataset, tiny_refiner, "test/none-v0", root=tmp_path, strength=0.0, progress_bar=False)
    assert not (tmp_path / "test" / "none-v0").exists()


def test_a_policy_continuation_is_the_exact_return_of_stepping_it(random_dataset):
    windows = make_windows(random_dataset, 8, stride=8).subset(slice(0, 6))

    def lean(observations):  # a deterministic policy acting on a batch
        return np.tile(np.array([[0.3, -0.2, 0.1]], np.float32), (len(observations), 1))

    after = policy_continuations("Hopper-v5", windows.sim_states, windows.observations[:, 0], lean, 30)
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    for i in range(len(windows)):
        set_sim_state(env, windows.sim_states[i])
        total, steps, terminated = 0.0, 0, False
        while steps < 30 and not terminated:
            observation, reward, terminated, _, _ = env.unwrapped.step(lean(windows.observations[:1, 0])[0])
            total, steps = total + float(reward), steps + 1
        assert (after.returns[i], after.steps[i], after.terminated[i]) == (total, steps, terminated)
        np.testing.assert_array_equal(after.end_observations[i], observation)
    assert after.terminated.any() or (after.steps == 30).all()


def test_a_continuation_judges_source_and_proposal_alike(random_dataset, tiny_refiner):
    windows = make_windows(random_dataset, 8, stride=8).subset(slice(0, 12))

    def still(observations):
        return np.zeros((len(observations), 3), np.float32)

    # strength 0 proposes the source itself: replayed and continued alike, it gains exactly nothing
    same = verify_windows(tiny_refiner, windows, ImprovementConfig(strength=0.0, continuation=20), policy=still)
    assert not any(v.accepted for v in same)
    assert all(v.realised_gain == 0 for v in same if v.execution == "open_loop")
    several = verify_windows(
        tiny_refiner, windows, ImprovementConfig(strength=(0.5, 1.0), samples=2, continuation=20), policy=still
    )
    alone = verify_windows(tiny_refiner, windows, ImprovementConfig(strength=1.0, continuation=20), policy=still)
    # the candidate is the best realisation of all proposals, so trying more never scores lower
    assert all(m.realised_score >= a.realised_score for m, a in zip(several, alone))
    with pytest.raises(ValueError, match="policy"):
        verify_windows(tiny_refiner, windows, ImprovementConfig(continuation=20))


def test_committed_steps_are_judged_over_the_same_steps_then_the_policy(random_dataset, tiny_refiner, tmp_path):
    windows = make_windows(random_dataset, 8, stride=8).subset(slice(0, 12))

    def still(observations):
        return np.zeros((len(observations), 3), np.float32)

    config = ImprovementConfig(strength=0.0, continuation=20, commit_steps=3)
    same = verify_windows(tiny_refiner, windows, config, policy=still)
    assert not any(v.accepted for v in same)  # 3 source steps then the policy, against themselves
    assert all(v.realised_gain == 0 for v in same if v.execution == "open_loop")
    moved = verify_windows(tiny_refiner, windows, dataclasses.replace(config, strength=1.0), policy=still)
    assert all(len(v.realised) == 3 or v.realised.terminated for v in moved)
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    for i, v in enumerate(moved):  # the score is exactly: the 3 realised steps, then 20 of the policy
        set_sim_state(env, windows.sim_states[i])
        total = 0.0
        for action in v.realised.actions:
            total += float(env.unwrapped.step(action)[1])
        after = policy_continuations("Hopper-v5", v.realised.sim_states[-1:], v.realised.observations[-1:], still, 20)
        if not v.realised.terminated:
            assert v.realised_score == window_score(
                total + after.returns[0], after.end_observations[0], bool(after.terminated[0]),
                tiny_refiner.value_function, 0.99, 3 + int(after.steps[0]),
            )  # fmt: skip
    # written in place of the 3 steps each kept window replaced, the rest of the source as it was
    report = improve_dataset(
        random_dataset, tiny_refiner, "test/hopper/committed-v0", root=tmp_path, progress_bar=False,
        continuation=20, commit_steps=3, policy=still, source_steps="unimproved",
    )  # fmt: skip
    written = load_dataset(report.path)
    assert written.total_steps == random_dataset.total_steps  # 3 realised steps in place of 3 source steps each
    assert all(len(e.actions) <= 3 for e in written.iterate_episodes(range(written.total_episodes - report.accepted,
                                                                          written.total_episodes)))  # fmt: skip
    _replays_as_written(written)


def test_extra_samples_of_a_refiner_that_samples_by_seed_alone(random_dataset):
    windows = make_windows(random_dataset, 8, stride=8).subset(slice(0, 12))
    blind = GaussianPerturbation("Hopper-v5", window=8)  # its refine takes a seed and no noise argument
    one = verify_windows(blind, windows, ImprovementConfig(strength=1.0))
    three = verify_windows(blind, windows, ImprovementConfig(strength=1.0, samples=3))
    assert all(m.realised_score >= o.realised_score for m, o in zip(three, one))
    assert any(m.realised_score > o.realised_score for m, o in zip(three, one))  # new seeds, new proposals


def test_bad_input_is_named(random_dataset, tiny_refiner, improved, tmp_path):
    report, _ = improved
    with pytest.raises(FileExistsError, match="dataset_id"):
        improve_dataset(
            random_dataset, tiny_refiner, report.dataset_id, root=report.path.parents[2], progress_bar=False
        )
    with pytest.raises(ValueError, match="dataset_id must be a new dataset id"):
        improve_dataset(random_dataset, tiny_refiner, random_dataset.id, root=tmp_path)
    with pytest.raises(ValueError, match="dataset_id must be a Minari id"):  # before any window is refined
        improve_dataset(random_dataset, tiny_refiner, "test/strength-1.0-v0", root=tmp_path)
    for field, value in [("strength", -1.0), ("strength", ()), ("execution", "fast"), ("min_gain", -1), ("stride", 0),
                         ("workers", 0), ("samples", 0), ("noise", -1.0), ("continuation", -1),
                         ("source_steps", "some"), ("commit_steps", 0), ("commit_steps", 9)]:  # fmt: skip
        with pytest.raises(ValueError, match=field):
            improve_dataset(random_dataset, tiny_refiner, "test/x-v0", root=tmp_path, **{field: value})
    with pytest.raises(TypeError, match="unknown argument 'sigma'"):
        improve_dataset(random_dataset, tiny_refiner, "test/x-v0", root=tmp_path, sigma=1.05)
    with pytest.raises(ValueError, match="sim_states"):
        realise_windows("Hopper-v5", None, [], np.zeros((0, 11)))
    windows = make_windows(random_dataset, 8, stride=8).subset(slice(0, 4))
    with pytest.raises(ValueError, match="one proposal per window"):  # three proposals for four windows
        verify_proposals(
            tiny_refiner, windows, windows.observations[:3], windows.actions[:3], None, ImprovementConfig()
        )
    episode = next(random_dataset.iterate_episodes())
    for start, stop in [(-1, 2), (3, 3), (0, len(episode.actions) + 1)]:
        with pytest.raises(ValueError, match="start, stop"):
            episode_buffer(0, episode, SIM_STATE_INFO_KEY, start, stop)


def test_a_dataset_without_simulator_states_can_only_be_used_unverified(tiny_refiner, tmp_path):
    env = DataCollector(gym.make("Hopper-v5"))
    env.reset(seed=0)
    for _ in range(40):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    with minari_root_at(tmp_path):
        plain = env.create_dataset("test/plain-v0", algorithm_name="random", author="t", code_permalink="t")
    with pytest.raises(ValueError, match="no simulator states.*unverified"):
        improve_dataset(plain, tiny_refiner, "test/plain-improved-v0", root=tmp_path, progress_bar=False)
    assert minari  # Minari is the real writer here


def test_ctflow_improve_writes_a_dataset_minari_loads(random_dataset_path, tiny_refiner, tmp_path, capsys):
    import copy

    from ctflow_gym.cli import main

    folder = copy.deepcopy(tiny_refiner).save(tmp_path / "refiner")
    argv = ["improve", "--dataset", str(random_dataset_path), "--refiner", str(folder)]
    argv += ["--dataset-id", "test/cli-improved-v0", "--out", str(tmp_path / "root"), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "kept" in out and "realised gain" in out
    with minari_root_at(tmp_path / "root"):
        assert minari.load_dataset("test/cli-improved-v0").total_episodes > 0
    # several strengths, judged with the shipped medium policy's continuation, written in place of their spans
    more = argv[:5] + ["--dataset-id", "test/cli-continued-v0", "--out", str(tmp_path / "root"), "--no-progress"]
    more += ["--strength", "0.5", "1", "--continuation", "5", "--policy", "shipped:hopper-medium"]
    assert main(more + ["--commit-steps", "5", "--source-steps", "unimproved"]) == 0
    record = build_record(load_dataset(tmp_path / "root" / "test" / "cli-continued-v0"))
    assert record["improvement"]["config"]["strength"] == [0.5, 1.0]
    assert record["improvement"]["config"]["continuation"] == 5
    assert record["improvement"]["config"]["commit_steps"] == 5
    assert record["improvement"]["continuation_policy"] == "function"
    assert main(more[:-2] + ["--overwrite"]) == 2 and "--continuation 5 needs --policy" in capsys.readouterr().err
    assert main(more[:-1] + ["shipped:nobody", "--overwrite"]) == 2 and "--policy" in capsys.readouterr().err
    assert main(argv) == 2
    assert "dataset_id" in capsys.readouterr().err
    assert main(argv[:4] + [str(tmp_path / "missing")] + argv[5:]) == 2
