"""Distillation: DAgger with a verified refined policy as the expert writes real, replayable windows and resumes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents import BCAgent
from ctflow_gym import RefinedPolicy, TrajectoryRefiner
from ctflow_gym.data import combine_datasets, load_dataset, make_windows
from ctflow_gym.data.minari_io import build_record
from ctflow_gym.improve import DistillationConfig, distill, teacher_windows
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY, set_sim_state

STEPS = 40
"""Episode length of the tests' Hopper (its time limit): enough for a few windows of 8."""


@pytest.fixture(scope="module")
def tiny_refiner(random_dataset):
    sizes = dict(ae_hidden=32, flow_hidden=32, batch_size=32)
    steps = dict(ae_steps=30, flow_steps=30, predictor_steps=10, inverse_dynamics_steps=20)
    return TrajectoryRefiner(window=8, seed=0, **sizes, **steps).fit(random_dataset, progress_bar=False)


def _still(observation):
    return np.zeros(3, np.float32)


def _teacher(refiner, **options):
    env = gym.make("Hopper-v5", max_episode_steps=STEPS)
    return RefinedPolicy(_still, refiner, env, strength=2.0, candidates=2, continuation=8, **options)


class CountingBC:
    """``learn`` for the tests: BC for a few steps, counting its calls and the datasets it saw."""

    def __init__(self):
        self.sizes: list[int] = []

    def __call__(self, path):
        agent = BCAgent("Hopper-v5", path, seed=0, batch_size=32)
        self.sizes.append(len(agent.transitions))
        return agent.learn(20)


def test_round_zero_is_the_teacher_itself_and_every_window_replays_as_written(tiny_refiner, tmp_path):
    teacher = _teacher(tiny_refiner)
    learn = CountingBC()
    report = distill(teacher, learn, "test/hopper/distilled-v0", root=tmp_path, rounds=1, episodes=2, seed=5)
    zero, one = report.rounds
    assert (zero.rolled_out_by, one.rolled_out_by) == ("teacher", "learner")
    # the teacher rolling out is RefinedPolicy acting: the same returns, episode by episode
    alone = _teacher(tiny_refiner)
    returns = []
    for episode in range(2):
        observation, _ = alone.env.reset(seed=5 + episode)
        total, done = 0.0, False
        while not done:
            action, _ = alone.predict(observation)
            observation, reward, terminated, truncated, _ = alone.env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    assert zero.episode_returns == returns
    assert zero.refined_windows > 0  # the teacher chose refined windows somewhere
    # the learner of round 0 rolled out round 1; each round's learner saw every window so far
    dataset = load_dataset(report.path)
    assert dataset.total_episodes == zero.windows + one.windows
    assert learn.sizes == [zero.steps, zero.steps + one.steps] and dataset.total_steps == learn.sizes[-1]
    assert isinstance(report.policy, BCAgent)
    rounds = build_record(dataset)["distillation"]["rounds"]
    assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["episode_returns"] == one.episode_returns
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    for episode in dataset.iterate_episodes():  # real transitions: MuJoCo from the recorded state, bit for bit
        set_sim_state(env, episode.infos[SIM_STATE_INFO_KEY][0])
        for t, action in enumerate(episode.actions):
            observation, reward, _, _, _ = env.unwrapped.step(action)
            np.testing.assert_array_equal(observation, episode.observations[t + 1])
            assert reward == episode.rewards[t]


def test_distilled_data_joins_recorded_data_whose_spec_holds_the_state_recorder(
    tiny_refiner, random_dataset_path, tmp_path
):
    """The builder's datasets name ``SimStateRecorder`` in their env spec, distilled ones do not: they still join."""
    recorded = load_dataset(random_dataset_path)
    report = distill(
        _teacher(tiny_refiner), CountingBC(), "test/hopper/distilled-v0", root=tmp_path, rounds=0, episodes=1
    )
    distilled = load_dataset(report.path)
    assert recorded.env_spec != distilled.env_spec  # what Minari's own join refuses
    joined = load_dataset(combine_datasets([random_dataset_path, report.path], "test/hopper/joined-v0", root=tmp_path))
    assert joined.total_steps == recorded.total_steps + distilled.total_steps
    assert joined.env_spec.id == "Hopper-v5" and not joined.env_spec.additional_wrappers
    last = list(joined.iterate_episodes())[-1]
    np.testing.assert_array_equal(
        last.infos[SIM_STATE_INFO_KEY], list(distilled.iterate_episodes())[-1].infos[SIM_STATE_INFO_KEY]
    )
    assert make_windows(joined, window=4).sim_state_spec == make_windows(recorded, window=4).sim_state_spec
    other = RefinedPolicy(_still, tiny_refiner, gym.make("Hopper-v5", max_episode_steps=STEPS, healthy_reward=2.0))
    changed = distill(other, CountingBC(), "test/hopper/other-v0", root=tmp_path, rounds=0, episodes=1).path
    with pytest.raises(ValueError, match=r"sources: the datasets' env specs differ in \['kwargs'\]"):
        combine_datasets([random_dataset_path, changed], "test/hopper/refused-v0", root=tmp_path)
    assert not (tmp_path / "test/hopper/refused-v0").exists()


def test_the_learner_rolls_out_and_the_teacher_labels_where_it_went(tiny_refiner):
    teacher = _teacher(tiny_refiner)
    push = lambda observation: np.full(3, 0.5, np.float32)  # noqa: E731  (another policy than the teacher's base)
    windows, returns, _ = teacher_windows(teacher, push, episodes=1, seed=3)
    env = gym.make("Hopper-v5", max_episode_steps=STEPS)
    observation, _ = env.reset(seed=3)
    for window in windows:  # each window starts where the learner's own actions led
        np.testing.assert_array_equal(window.observations[0], observation)
        for _ in range(8):
            observation, _, terminated, truncated, _ = env.step(push(observation))
            if terminated or truncated:
                break
    assert len(returns) == 1


def test_a_markov_teacher_answers_with_the_steps_it_acts_before_planning_again(tiny_refiner):
    """``replan_every`` m: the teacher's windows are the m steps it executes, and it is asked again every m steps."""
    teacher = _teacher(tiny_refiner, replan_every=3)
    windows, returns, _ = teacher_windows(teacher, None, episodes=1, seed=4)
    alone = _teacher(tiny_refiner, replan_every=3)  # the same teacher acting with predict
    observation, _ = alone.env.reset(seed=4)
    total, done, actions = 0.0, False, []
    while not done:
        action, _ = alone.predict(observation)
        actions.append(action)
        observation, reward, terminated, truncated, _ = alone.env.step(action)
        total, done = total + float(reward), terminated or truncated
    assert returns == [total]
    assert all(len(window) <= 3 for window in windows)
    recorded = np.concatenate([w.actions for w in windows])  # the last window is realised past the time limit
    np.testing.assert_array_equal(recorded[: len(actions)], np.asarray(actions))
    assert len(recorded) - len(actions) < 3
    for before, after in zip(windows, windows[1:]):  # each asked where the last one's steps led
        np.testing.assert_array_equal(after.observations[0], before.observations[-1])
    push = lambda observation: np.full(3, 0.5, np.float32)  # noqa: E731
    labelled, _, _ = teacher_windows(teacher, push, episodes=1, seed=3)
    env = gym.make("Hopper-v5", max_episode_steps=STEPS)
    observation, _ = env.reset(seed=3)
    for window in labelled:  # the learner steps 3 actions between the teacher's answers
        np.testing.assert_array_equal(window.observations[0], observation)
        assert len(window) <= 3
        for _ in range(3):
            observation, _, terminated, truncated, _ = env.step(push(observation))
            if terminated or truncated:
                break


def test_an_interrupted_distillation_resumes_and_more_rounds_continue_it(tiny_refiner, tmp_path):
    calls = {"n": 0}

    def failing(path):
        calls["n"] += 1
        raise KeyboardInterrupt  # interrupted while the first learner trains

    with pytest.raises(KeyboardInterrupt):
        distill(_teacher(tiny_refiner), failing, "test/hopper/distilled-v0", root=tmp_path, rounds=1, episodes=1)
    assert calls["n"] == 1 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    first = load_dataset(tmp_path / "test/hopper/distilled-v0")  # round 0 was written before the learner trained
    learn = CountingBC()
    teacher = _teacher(tiny_refiner)
    report = distill(teacher, learn, "test/hopper/distilled-v0", root=tmp_path, rounds=1, episodes=1)
    assert [r.round for r in report.rounds] == [0, 1] and learn.sizes[0] == first.total_steps  # not rolled out again
    more = distill(teacher, learn, "test/hopper/distilled-v0", root=tmp_path, rounds=2, episodes=1)
    assert [r.round for r in more.rounds] == [0, 1, 2] and more.rounds[1] == report.rounds[1]


def test_bad_input_is_named(tiny_refiner, tmp_path):
    teacher = _teacher(tiny_refiner)
    learn = CountingBC()
    with pytest.raises(TypeError, match="teacher must be a RefinedPolicy"):
        distill(object(), learn, "test/hopper/distilled-v0", root=tmp_path)
    with pytest.raises(TypeError, match="learn must be a callable"):
        distill(teacher, "bc", "test/hopper/distilled-v0", root=tmp_path)
    with pytest.raises(ValueError, match="rounds"):
        distill(teacher, learn, "test/hopper/distilled-v0", root=tmp_path, rounds=-1)
    with pytest.raises(ValueError, match="episodes"):
        DistillationConfig(episodes=0).validate()
    distill(teacher, learn, "test/hopper/distilled-v0", root=tmp_path, rounds=0, episodes=1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        distill(teacher, learn, "test/hopper/distilled-v0", root=tmp_path, rounds=0, episodes=2)
    report = distill(teacher, learn, "test/hopper/distilled-v0", root=tmp_path, rounds=0, episodes=2, overwrite=True)
    assert len(report.rounds[0].episode_returns) == 2


def test_an_unverified_teacher_is_the_control_its_windows_all_refined_and_real(tiny_refiner, tmp_path):
    env = gym.make("Hopper-v5", max_episode_steps=STEPS)
    unverified = RefinedPolicy(_still, tiny_refiner, env, strength=1.0, verify=False)
    report = distill(unverified, CountingBC(), "test/hopper/unverified-v0", root=tmp_path, rounds=0, episodes=1)
    (zero,) = report.rounds
    full = [w for w in unverified.history if w.get("reason") != "episode ends inside the look-ahead"]
    assert zero.refined_windows == len(full) > 0  # every full window refined, none chosen by replay
    assert build_record(load_dataset(report.path))["distillation"]["teacher"]["verify"] is False


def test_ctflow_distill_saves_a_policy_and_runs_it_beside_the_policy(tiny_refiner, tmp_path, capsys):
    import copy

    from ctflow_gym.cli import main

    folder = copy.deepcopy(tiny_refiner).save(tmp_path / "refiner")
    argv = ["distill", "--policy", "shipped:hopper-medium", "--refiner", str(folder)]
    argv += ["--dataset-id", "test/hopper/cli-distilled-v0", "--out", str(tmp_path / "root"), "--save"]
    argv += [str(tmp_path / "bc"), "--rounds", "0", "--episodes", "1", "--continuation", "4", "--candidates", "2"]
    assert main(argv + ["--bc-steps", "20", "--eval-episodes", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "round 0: teacher rolled out 1 episodes" in out and "the policy" in out and "distilled" in out
    assert BCAgent.load(tmp_path / "bc", device="cpu").num_timesteps == 20
    assert load_dataset(tmp_path / "root" / "test/hopper/cli-distilled-v0").total_episodes > 0
    assert main(argv + ["--bc-steps", "0"]) == 2 and "--bc-steps must be >= 1" in capsys.readouterr().err
    assert main(argv[:2] + ["shipped:nobody"] + argv[3:]) == 2 and "--policy" in capsys.readouterr().err
    assert main(argv + ["--replan-every", "9"]) == 2 and "--replan-every must be in [1, 8]" in capsys.readouterr().err
    markov = ["--dataset-id", "test/hopper/cli-markov-v0", "--replan-every", "2", "--bc-steps", "20"]
    assert main(argv + markov + ["--eval-episodes", "0", "--no-progress"]) == 0
    record = build_record(load_dataset(tmp_path / "root" / "test/hopper/cli-markov-v0"))["distillation"]
    assert record["teacher"]["replan_every"] == 2


def test_ctflow_distill_unverified_with_selected_bc(tiny_refiner, tmp_path, capsys):
    """``--unverified`` distils the refined policy as it acts; ``--select-every`` keeps each BC's best checkpoint."""
    import copy

    from ctflow_gym.cli import main

    folder = copy.deepcopy(tiny_refiner).save(tmp_path / "refiner")
    argv = ["distill", "--policy", "shipped:hopper-medium", "--refiner", str(folder), "--unverified"]
    argv += ["--dataset-id", "test/hopper/cli-unverified-v0", "--out", str(tmp_path / "root"), "--save"]
    argv += [str(tmp_path / "bc"), "--rounds", "0", "--episodes", "1", "--replan-every", "4", "--no-progress"]
    assert main(argv + ["--continuation", "4"]) == 2 and "drop them with --unverified" in capsys.readouterr().err
    assert main(argv + ["--select-every", "-1"]) == 2 and "--select-every" in capsys.readouterr().err
    selected = ["--bc-steps", "30", "--select-every", "10", "--select-episodes", "1", "--eval-episodes", "0"]
    assert main(argv + selected) == 0
    record = build_record(load_dataset(tmp_path / "root" / "test/hopper/cli-unverified-v0"))["distillation"]
    assert record["teacher"]["verify"] is False and record["teacher"]["strength"] == 1.0
    saved = BCAgent.load(tmp_path / "bc", device="cpu")
    assert saved.num_timesteps in (10, 20, 30)  # the step KeepBest kept (one of its evaluations)
