"""Offline-to-online fine-tuning (``OfflineAgent.learn_online``, agents/online.py), for every registered agent.

FQL's online phase: the replay buffer is the dataset with each new transition appended, one gradient step per env
step on a minibatch drawn uniformly from both, ``terminations`` 1 only for true terminations. The env here is Hopper
with short scripted episodes (:class:`Scripted`), which records what the agent saw.
"""

from __future__ import annotations

import json
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from test_agent_contract import TINY, assert_same_state

from agents import AGENTS, agent_class
from agents.online import ONLINE_FIELDS, reset_seed
from ctflow_gym.checkpoint import CheckpointError, read_checkpoint_meta
from ctflow_gym.data.scores import normalized_score

NAMES = [name for name in sorted(AGENTS) if name in TINY]
"""Every registered agent with tiny settings (the contract test requires them of each)."""

LENGTH = 4
"""Steps of a scripted episode."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


class Scripted(gym.Wrapper):
    """Hopper whose episodes end after ``LENGTH`` steps, recording every step as the agent saw it.

    An episode reset with an odd seed ends terminated, one reset with an even seed truncated (so the rule needs no
    state beyond the reset: a fresh env continues a resumed run as the first did).
    """

    def __init__(self):
        super().__init__(gym.make("Hopper-v5"))
        self.steps: list[tuple] = []
        self.resets: list[tuple[int, np.ndarray]] = []

    def reset(self, *, seed=None, options=None):
        observation, info = self.env.reset(seed=seed, options=options)
        self.terminate, self.t, self.observation = seed % 2 == 1, 0, observation
        self.resets.append((seed, observation))
        return observation, info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        if self.t == LENGTH:
            terminated, truncated = terminated or self.terminate, truncated or not self.terminate
        self.steps.append((self.observation, np.array(action), reward, observation, terminated, truncated))
        self.observation = observation
        return observation, reward, terminated, truncated, info


class Recording:
    """A run logger that keeps every ``(step, metrics)``."""

    def __init__(self):
        self.records: list[tuple[int, dict]] = []

    def log(self, metrics, step=None):
        self.records.append((step, dict(metrics)))

    def finish(self):
        pass


def make(name: str, dataset, seed: int = 0, **overrides):
    """The agent ``name`` on the CPU with its tiny settings."""
    return agent_class(name)("Hopper-v5", dataset, device="cpu", seed=seed, **{**TINY[name], **overrides})


def seen(env: Scripted) -> dict[str, np.ndarray]:
    """What ``env`` gave the agent, as the buffer keeps it (env units, float32)."""
    obs, actions, rewards, next_obs, terminated, truncated = (np.array(column) for column in zip(*env.steps))
    return {
        "observations": obs.astype(np.float32),
        "actions": actions.astype(np.float32),
        "rewards": rewards.astype(np.float32),
        "next_observations": next_obs.astype(np.float32),
        "terminations": terminated.astype(np.float32),
        "episode_ends": terminated | truncated,
    }


def online_rows(agent) -> dict[str, np.ndarray]:
    buffer = agent._online
    return {name: values[: buffer.size].copy() for name, values in buffer.raw.items()}


def training_data(agent) -> dict[str, torch.Tensor]:
    return {name: values.clone() for name, values in agent._data.items()}


# ------------------------------------------------------------------ the buffer
@pytest.mark.parametrize("name", NAMES)
def test_the_buffer_grows_by_the_steps_taken_and_holds_the_transitions_seen(name, random_dataset_path):
    agent = make(name, random_dataset_path, seed=3).learn(3)
    dataset_rows, before = agent._rows, training_data(agent)
    assert dataset_rows == len(agent.transitions) == len(before["actions"])
    env = Scripted()
    agent.learn_online(env, total_timesteps=16)
    assert agent.num_timesteps == 3 + 16 and agent._rows == dataset_rows + 16
    assert all(len(values) == dataset_rows + 16 for values in agent._data.values())
    for key, values in before.items():  # the dataset's rows are untouched
        assert torch.equal(agent._data[key][:dataset_rows], values), key

    gathered, expected = online_rows(agent), seen(env)
    assert len(env.steps) == 16 and gathered.keys() == set(ONLINE_FIELDS)
    for key in ONLINE_FIELDS:
        np.testing.assert_array_equal(gathered[key], expected[key], err_msg=key)
    # The training rows: normalised with the dataset's fixed statistics, actions in [-1, 1].
    online = {key: values[dataset_rows:].numpy() for key, values in agent._data.items()}
    np.testing.assert_array_equal(online["observations"], agent.stats.normalize_observations(expected["observations"]))
    np.testing.assert_array_equal(online["actions"], agent.to_unit_actions(expected["actions"]))
    np.testing.assert_array_equal(online["rewards"], expected["rewards"])
    np.testing.assert_array_equal(
        online["next_observations"], agent.stats.normalize_observations(expected["next_observations"])
    )
    # Masks: a termination stops the TD target, a truncation (time limit) bootstraps.
    terminated = np.array([step[4] for step in env.steps])
    truncated = np.array([step[5] for step in env.steps]) & ~terminated
    assert terminated.any() and truncated.any(), "the scripted episodes should end both ways"
    np.testing.assert_array_equal(online["terminations"], terminated.astype(np.float32))
    assert np.all(online["terminations"][truncated] == 0) and np.all(gathered["episode_ends"][truncated])
    # Each episode began from a reset seeded with the step count; next_obs follows obs within an episode.
    assert [seed for seed, _ in env.resets] == [reset_seed(3, 3 + LENGTH * k) for k in range(4)]
    within = ~expected["episode_ends"][:-1]
    np.testing.assert_array_equal(expected["observations"][1:][within], expected["next_observations"][:-1][within])

    # A second call appends after the first call's rows and starts a new episode.
    again = Scripted()
    agent.learn_online(again, total_timesteps=2)
    assert agent._rows == dataset_rows + 18 and agent._online.start_step == 19 and agent.num_timesteps == 21
    np.testing.assert_array_equal(online_rows(agent)["observations"][16:], seen(again)["observations"])


def test_minibatches_are_drawn_uniformly_from_the_dataset_and_the_online_rows(random_dataset_path):
    agent = make("bc", random_dataset_path, seed=5)
    dataset_rows, batch = agent._rows, agent.config.batch_size
    drawn = []
    original = agent._batch_at
    agent._batch_at = lambda index: drawn.append((index.clone(), agent._rows)) or original(index)
    agent.learn_online(Scripted(), total_timesteps=30)
    # One minibatch per env step, uniform over the rows filled so far (the step's own transition included).
    reference = np.random.default_rng(5)
    assert len(drawn) == 30
    for step, (index, rows) in enumerate(drawn):
        assert rows == dataset_rows + step + 1
        np.testing.assert_array_equal(index.numpy(), reference.integers(0, rows, batch))
    every = torch.cat([index for index, _ in drawn])
    assert (every >= dataset_rows).any() and (every < dataset_rows).any()
    # A batch at online rows holds those rows' values.
    online = torch.arange(dataset_rows, dataset_rows + 30)
    sampled = agent._batch_at(online)
    expected = agent.stats.normalize_observations(online_rows(agent)["observations"])
    np.testing.assert_array_equal(sampled["observations"].numpy(), expected)


@pytest.mark.parametrize("name", NAMES)
def test_offline_learn_draws_its_minibatches_as_before(name, random_dataset_path):
    """Offline runs stay bit-identical: batches uniform over the dataset, from the numpy generator seeded with the
    seed (the stream the code drew before online rows existed), and no online rows anywhere."""
    agent = make(name, random_dataset_path, seed=7)
    drawn = []
    original = agent._batch_at
    agent._batch_at = lambda index: drawn.append(index.clone()) or original(index)
    agent.learn(6)
    reference = np.random.default_rng(7)
    rows, batch = len(agent.transitions), agent.config.batch_size
    for index in drawn:
        np.testing.assert_array_equal(index.numpy(), reference.integers(0, rows, batch))
    assert len(drawn) == 6 and agent._online is None and agent._rows == rows


def test_learning_starts_delays_the_gradient_steps(random_dataset_path):
    agent = make("bc", random_dataset_path)
    trained_at = []
    original = agent._train_step
    agent._train_step = lambda batch: trained_at.append(agent._online.size) or original(batch)
    logger = Recording()
    agent.learn_online(Scripted(), total_timesteps=8, learning_starts=5, log_interval=2, run_logger=logger)
    assert trained_at == [5, 6, 7, 8] and agent.num_timesteps == 8 and agent._online.size == 8
    train_steps = [step for step, metrics in logger.records if "train/bc_loss" in metrics]
    assert train_steps == [6, 8]  # no training metrics before the first gradient step


# ------------------------------------------------------------------ logging, callbacks, evaluation
def test_episodes_training_metrics_evaluations_and_callbacks(random_dataset_path, capsys):
    agent = agent_class("bc")(
        gym.make("Hopper-v5", max_episode_steps=5), random_dataset_path, device="cpu", verbose=1, **TINY["bc"]
    )
    env, logger = Scripted(), Recording()

    class Seen(BaseCallback):
        def __init__(self):
            super().__init__()
            self.dones, self.started, self.ended = [], False, False

        def _on_training_start(self):
            self.started = True

        def _on_step(self):
            self.dones.append(bool(self.locals["dones"][0]))
            return self.num_timesteps < 10

        def _on_training_end(self):
            self.ended = True

    callback = Seen()
    agent.learn_online(
        env, 12, callback=callback, log_interval=4, eval_freq=6, n_eval_episodes=1, run_logger=logger, progress_bar=True
    )
    assert agent.num_timesteps == 10 and callback.started and callback.ended  # the callback stopped the run
    assert callback.dones == [bool(step[4] or step[5]) for step in env.steps]
    returns = {}
    for step, metrics in logger.records:
        if "online/episode_return" in metrics:
            returns[step] = metrics
    ends = [i + 1 for i, step in enumerate(env.steps) if step[4] or step[5]]
    assert sorted(returns) == ends == [4, 8]
    rewards = np.array([step[2] for step in env.steps])
    for end, metrics in returns.items():
        episode = rewards[end - LENGTH : end].sum()
        assert metrics["online/episode_return"] == pytest.approx(episode)
        assert metrics["online/episode_length"] == LENGTH
        assert metrics["online/normalized_score"] == pytest.approx(normalized_score("Hopper-v5", episode))
    assert [step for step, metrics in logger.records if "train/bc_loss" in metrics] == [4, 8]
    assert [step for step, metrics in logger.records if "eval/mean_return" in metrics] == [6]
    assert [entry["step"] for entry in agent.eval_history] == [6]
    assert "[BCAgent] step 6" in capsys.readouterr().out  # verbose: each evaluation printed


# ------------------------------------------------------------------ checkpoints and resume
@pytest.mark.parametrize("name", NAMES)
def test_a_run_resumed_at_an_episode_end_continues_exactly(name, random_dataset_path, tmp_path):
    straight = make(name, random_dataset_path, seed=3).learn(2)
    straight.learn_online(Scripted(), total_timesteps=14)

    checkpoint = tmp_path / "online"
    stop_at_an_end = lambda local_vars, _: not (local_vars["self"].num_timesteps > 6 and local_vars["dones"][0])  # noqa: E731
    interrupted = make(name, random_dataset_path, seed=3).learn(2)
    interrupted.learn_online(Scripted(), 14, callback=stop_at_an_end, checkpoint_path=checkpoint)
    assert interrupted.num_timesteps == 2 + 2 * LENGTH  # stopped at the end of the second episode
    meta = read_checkpoint_meta(checkpoint)
    assert meta["online"] == {"rows": 2 * LENGTH, "start_step": 2} and meta["num_timesteps"] == 10
    assert (checkpoint / "online.safetensors").is_file()

    resumed = make(name, random_dataset_path, seed=3)  # fresh: everything comes from the checkpoint
    steps_seen = []
    record = lambda *_: steps_seen.append(resumed.num_timesteps) or True  # noqa: E731
    resumed.learn_online(Scripted(), 14, checkpoint_path=checkpoint, resume=True, callback=record)
    assert steps_seen[0] == 11 and resumed.num_timesteps == straight.num_timesteps == 16
    for key, values in online_rows(straight).items():
        np.testing.assert_array_equal(online_rows(resumed)[key], values, err_msg=key)
    for key, values in training_data(straight).items():
        assert torch.equal(resumed._data[key], values), key
    assert_same_state(straight, resumed)
    assert read_checkpoint_meta(checkpoint)["online"] == {"rows": 14, "start_step": 2}


def test_a_run_resumed_mid_episode_starts_a_new_one(random_dataset_path, tmp_path):
    """The env's state mid-episode is not in a checkpoint: what is exact is the buffer and counts up to the
    checkpoint; the resumed run then starts a new episode (seeded from the step count) and still stops at the total."""
    straight = make("bc", random_dataset_path, seed=3)
    straight.learn_online(Scripted(), total_timesteps=12)

    class Interrupt(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == 7:
                raise KeyboardInterrupt
            return True

    checkpoint = tmp_path / "online"
    with pytest.raises(KeyboardInterrupt):
        make("bc", random_dataset_path, seed=3).learn_online(
            Scripted(), 12, callback=Interrupt(), checkpoint_path=checkpoint, checkpoint_freq=3
        )
    assert read_checkpoint_meta(checkpoint)["online"]["rows"] == 6  # mid-way through the second episode

    resumed, env = make("bc", random_dataset_path, seed=3), Scripted()
    resumed.learn_online(env, 12, checkpoint_path=checkpoint, resume=True)
    assert resumed.num_timesteps == 12 and resumed._online.size == 12
    before, after = online_rows(straight), online_rows(resumed)
    for key in ONLINE_FIELDS:
        if key != "episode_ends":
            np.testing.assert_array_equal(after[key][:6], before[key][:6], err_msg=key)
    assert not before["episode_ends"][5] and after["episode_ends"][5]  # the cut episode is marked as ended there
    assert env.resets[0][0] == reset_seed(3, 6)
    np.testing.assert_array_equal(after["observations"][6], env.resets[0][1].astype(np.float32))


def test_saved_online_transitions_load_with_the_dataset(random_dataset_path, tmp_path):
    agent = make("bc", random_dataset_path, seed=1)
    agent.learn_online(Scripted(), total_timesteps=6, checkpoint_path=tmp_path / "ckpt")
    path = tmp_path / "ckpt"
    assert {p.name for p in path.iterdir()} == {
        "checkpoint.json",
        "weights.safetensors",
        "training_state.pt",
        "online.safetensors",
    }
    loaded = type(agent).load(path, dataset=random_dataset_path, device="cpu")
    assert loaded._rows == agent._rows and loaded._online.start_step == 0
    for key, values in training_data(agent).items():
        assert torch.equal(loaded._data[key], values), key
    bare = type(agent).load(path, device="cpu")  # without the dataset: acting only
    assert bare._online is None and bare.predict(np.zeros(11, np.float32))[0].shape == (3,)
    # Offline training resumed from it keeps the online rows as training data; a fresh dataset drops them.
    resumed = make("bc", random_dataset_path, seed=1).learn(8, checkpoint_path=path, resume=True)
    assert resumed.num_timesteps == 8 and resumed._rows == agent._rows
    assert make("bc", random_dataset_path)._online is None

    damaged = tmp_path / "damaged"
    shutil.copytree(path, damaged)
    meta = json.loads((damaged / "checkpoint.json").read_text())
    meta["online"]["rows"] = 7
    (damaged / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"damaged/online\.safetensors: 'observations' has shape \(6, 11\)"):
        type(agent).load(damaged, dataset=random_dataset_path, device="cpu")


# ------------------------------------------------------------------ bad input
def test_bad_inputs_are_clear_errors(random_dataset_path, tmp_path):
    agent = make("bc", random_dataset_path)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="total_timesteps must be an integer >= 1"):
            agent.learn_online(total_timesteps=bad)
    with pytest.raises(ValueError, match="learning_starts must be an integer >= 0"):
        agent.learn_online(total_timesteps=1, learning_starts=-1)
    with pytest.raises(ValueError, match="n_eval_envs must be an integer >= 1"):
        agent.learn_online(total_timesteps=1, n_eval_envs=0)
    with pytest.raises(ValueError, match=r"env: observations \(17,\).*expected those of the dataset.*\(11,\)"):
        agent.learn_online("HalfCheetah-v5", total_timesteps=1)
    boxed = gym.wrappers.RescaleAction(gym.make("Hopper-v5"), -0.5, 0.5)
    with pytest.raises(ValueError, match=r"env: .*expected .*actions \(3,\) in \[\[-1.0, -1.0, -1.0\]"):
        agent.learn_online(boxed, total_timesteps=1)
    with pytest.raises(TypeError, match="continuous 1-D Box action space"):
        agent.learn_online("CartPole-v1", total_timesteps=1)
    with pytest.raises(ValueError, match="env: the agent's own env serves its evaluations"):
        agent.learn_online(agent.env, total_timesteps=1, eval_freq=1)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        agent.learn_online(total_timesteps=1, checkpoint_path=tmp_path / "a_file")
    assert agent.num_timesteps == 0 and agent._online is None  # nothing ran
    path = agent.save(tmp_path / "saved")
    with pytest.raises(ValueError, match="has none; pass dataset= to the constructor or load"):
        type(agent).load(path, device="cpu").learn_online(total_timesteps=1)
