"""The contract every registered agent keeps, checked once for all of them (as SB3's test_save_load.py and
d3rlpy's algo_test.py do): save/load, resume, SB3 callbacks, the NaN guard, predict, evaluate, bad input,
damaged checkpoints; and the registry itself.

A newly registered agent needs only a tiny configuration in ``TINY`` below to be checked here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from agents import AGENTS, GTPAgent, NonFiniteLossError, OfflineAgent, agent_class, load_agent, register_agent
from ctflow_gym.checkpoint import CheckpointError, read_checkpoint_meta

TINY: dict[str, dict] = {
    "bc": dict(hidden=64, batch_size=64),
    "deflow": dict(actor_hidden=32, actor_layers=2, critic_hidden=32, critic_layers=2, batch_size=64, flow_steps=3),
    "fql": dict(actor_hidden=32, actor_layers=2, critic_hidden=32, critic_layers=2, batch_size=64, flow_steps=3),
    "gtp": dict(actor_hidden=64, actor_layers=2, critic_hidden=64, critic_layers=2, batch_size=64),
}
"""Per registered agent: small networks and batches, so that each check takes a fraction of a second."""

NAMES = sorted(AGENTS)


def make(name: str, dataset, env="Hopper-v5", **overrides) -> OfflineAgent:
    """The agent registered as ``name``, on the CPU, with its tiny settings and ``overrides``."""
    return agent_class(name)(env, dataset, device="cpu", **{**TINY[name], **overrides})


def state_of(agent: OfflineAgent) -> dict[str, torch.Tensor]:
    """Every network's tensors, keyed as in the checkpoint."""
    return {f"{n}.{k}": v.clone() for n, m in agent._modules().items() for k, v in m.state_dict().items()}


def assert_same_state(a: OfflineAgent, b: OfflineAgent) -> None:
    left, right = state_of(a), state_of(b)
    assert left.keys() == right.keys()
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=0, atol=0, msg=key)


@pytest.fixture(scope="module")
def trained(random_dataset_path):
    """``trained(name)``: the agent ``name`` after 40 steps (seed 1), built once per module."""
    cache: dict[str, OfflineAgent] = {}

    def get(name: str) -> OfflineAgent:
        if name not in cache:
            cache[name] = make(name, random_dataset_path, seed=1).learn(40)
        return cache[name]

    return get


# ------------------------------------------------------------------ registry
def test_registry_names_the_agents():
    assert AGENTS["gtp"] is GTPAgent and agent_class("gtp") is GTPAgent
    with pytest.raises(ValueError, match="unknown agent 'nope'; registered agents: .*gtp"):
        agent_class("nope")
    assert set(TINY) >= set(AGENTS), f"add tiny settings to TINY for {sorted(set(AGENTS) - set(TINY))}"


def test_register_agent_adds_a_class_and_refuses_clashes():
    snapshot = dict(AGENTS)
    try:

        @register_agent("dummy")
        class Dummy(OfflineAgent):
            """A registered agent class for this test only."""

        assert agent_class("dummy") is Dummy
        with pytest.raises(ValueError, match="'gtp' is already registered to agents.gtp.agent.GTPAgent"):
            register_agent("gtp")(type("Other", (OfflineAgent,), {}))
        with pytest.raises(ValueError, match="class name 'Dummy' is already registered as 'dummy'"):
            register_agent("dummy2")(type("Dummy", (OfflineAgent,), {}))
        with pytest.raises(TypeError, match="decorates OfflineAgent subclasses"):
            register_agent("thing")(dict)
        with pytest.raises(ValueError, match="non-empty string"):
            register_agent("")
    finally:
        AGENTS.clear()
        AGENTS.update(snapshot)


# ------------------------------------------------------------------ save / load
@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, trained, tmp_path):
    agent = trained(name)
    path = agent.save(tmp_path / "agent")
    assert {p.name for p in path.iterdir()} == {"checkpoint.json", "weights.safetensors", "training_state.pt"}
    assert not list(tmp_path.glob(".agent-*"))  # no staging folder left
    meta = read_checkpoint_meta(path)
    assert meta["kind"] == f"agent:{type(agent).__name__}" and meta["num_timesteps"] == 40
    obs = agent.transitions.observations[:32]
    for loaded in (type(agent).load(path, device="cpu"), load_agent(path, device="cpu")):
        assert type(loaded) is type(agent)
        np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
        assert loaded.num_timesteps == 40 and loaded.config == agent.config and loaded.env_id == "Hopper-v5"
        assert_same_state(loaded, agent)
    with pytest.raises(ValueError, match="trained on Hopper-v5"):
        type(agent).load(path, env="Walker2d-v5")
    with pytest.raises(ValueError, match="no dataset"):
        type(agent).load(path).learn(5)


@pytest.mark.parametrize("name", NAMES)
def test_resume_after_interruption_matches_an_uninterrupted_run(name, random_dataset_path, tmp_path):
    straight = make(name, random_dataset_path, seed=2).learn(30)

    class Interrupt(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == 25:
                raise KeyboardInterrupt
            return True

    checkpoint = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        interrupted = make(name, random_dataset_path, seed=2)
        interrupted.learn(30, callback=Interrupt(), checkpoint_path=checkpoint, checkpoint_freq=10)
    assert read_checkpoint_meta(checkpoint)["num_timesteps"] == 20

    resumed = make(name, random_dataset_path, seed=2)
    steps_seen = []
    record = lambda *_: steps_seen.append(resumed.num_timesteps) or True  # noqa: E731
    resumed.learn(30, checkpoint_path=checkpoint, resume=True, callback=record)
    assert steps_seen[0] == 21 and resumed.num_timesteps == 30
    assert_same_state(straight, resumed)
    obs = straight.transitions.observations[:16]
    np.testing.assert_array_equal(straight.predict(obs)[0], resumed.predict(obs)[0])
    size = TINY[name]["batch_size"]
    bigger = size * 2
    with pytest.raises(ValueError, match=f"other settings.*batch_size: checkpoint {size}, now {bigger}"):
        make(name, random_dataset_path, seed=2, batch_size=bigger).learn(30, checkpoint_path=checkpoint, resume=True)


# ------------------------------------------------------------------ learn
@pytest.mark.parametrize("name", NAMES)
def test_sb3_callbacks_see_every_step_and_can_stop_training(name, random_dataset_path):
    class StopAt(BaseCallback):
        def __init__(self, last):
            super().__init__()
            self.last, self.started, self.ended = last, False, False

        def _on_training_start(self):
            self.started = True

        def _on_step(self):
            return self.num_timesteps < self.last

        def _on_training_end(self):
            self.ended = True

    agent = make(name, random_dataset_path)
    callback = StopAt(7)
    assert agent.learn(50, callback=callback).num_timesteps == 7
    assert callback.model is agent and callback.n_calls == 7 and callback.started and callback.ended
    assert agent.learn(50, callback=[StopAt(100), StopAt(3)]).num_timesteps == 3  # any False in a list stops
    below_4 = lambda local_vars, global_vars: local_vars["self"].num_timesteps < 4  # noqa: E731
    assert agent.learn(50, callback=below_4).num_timesteps == 4
    agent.learn(2, reset_num_timesteps=False)  # SB3's rule: the steps are added
    assert agent.num_timesteps == 6
    with pytest.raises(TypeError, match="callback must be"):
        agent.learn(5, callback=42)
    with pytest.raises(ValueError, match="total_timesteps"):
        agent.learn(-1)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_loss_stops_names_the_loss_and_saves_the_last_good_state(name, random_dataset_path, tmp_path):
    agent = make(name, random_dataset_path, seed=0).learn(3)
    good = state_of(agent)
    agent._data["observations"] = agent._data["observations"] * float("nan")
    stopped = r"became nan at gradient step 4; training stopped; .*saved to"
    with pytest.raises(NonFiniteLossError, match=stopped) as caught:
        agent.learn(10, reset_num_timesteps=False, checkpoint_path=tmp_path / "ckpt")
    error = caught.value
    assert error.step == 4 and error.loss_name and str(error).startswith(f"{error.loss_name} became nan")
    assert error.checkpoint == str(tmp_path / "ckpt")
    restored = type(agent).load(tmp_path / "ckpt", device="cpu")
    assert restored.num_timesteps == 3
    assert all(torch.equal(value, good[key]) for key, value in state_of(restored).items())
    with pytest.raises(NonFiniteLossError) as again:  # without a checkpoint path: a temporary folder
        agent.learn(10, reset_num_timesteps=False)
    try:
        assert type(agent).load(again.value.checkpoint, device="cpu").num_timesteps == 3
    finally:
        shutil.rmtree(Path(again.value.checkpoint).parent)


# ------------------------------------------------------------------ acting
@pytest.mark.parametrize("name", NAMES)
def test_predict_shapes_and_the_action_box(name, trained, random_dataset_path):
    agent = trained(name)
    obs = agent.transitions.observations[:7]
    batch, state = agent.predict(obs)
    single, _ = agent.predict(obs[0])
    assert batch.shape == (7, 3) and single.shape == (3,) and state is None and batch.dtype == np.float32
    np.testing.assert_allclose(single, batch[0], atol=1e-6)
    np.testing.assert_array_equal(agent.predict(obs)[0], batch)  # deterministic
    assert agent.predict(obs, state="kept")[1] == "kept"  # SB3: state passes through
    wild, _ = agent.predict(obs * 1e4)  # far out-of-distribution states stay inside the box
    assert np.all(np.abs(wild) <= 1)
    with pytest.raises(ValueError, match="observation must have shape"):
        agent.predict(np.zeros(5))
    with pytest.raises(ValueError, match="observation must have shape"):
        agent.predict(np.zeros((2, 2, 11)))

    low, high = np.array([-0.5, -0.2, 0.0], np.float32), np.array([0.8, 0.3, 0.1], np.float32)
    boxed = make(name, random_dataset_path, env=gym.wrappers.RescaleAction(gym.make("Hopper-v5"), low, high)).learn(2)
    actions, _ = boxed.predict(np.concatenate([obs, obs * 1e4]))
    assert np.all(actions >= low) and np.all(actions <= high)
    np.testing.assert_allclose(boxed.from_unit_actions(np.array([[-1.0] * 3, [1.0] * 3, [5.0] * 3])), [low, high, high])


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_with_sb3_and_d4rl_scores(name, trained):
    agent = trained(name)
    mean, std = evaluate_policy(agent, agent.env, n_eval_episodes=2, deterministic=True, warn=False)
    assert np.isfinite(mean) and std >= 0
    result = agent.evaluate(n_episodes=2, seed=0)
    assert len(result["returns"]) == 2 and result["normalized_score"] is not None
    assert result == agent.evaluate(n_episodes=2, seed=0)  # seeded
    # Several envs at once: env i starts from seed + i, one batched predict per step for all.
    vectorised = agent.evaluate(n_episodes=4, seed=0, n_envs=2)
    assert len(vectorised["returns"]) == 4 and vectorised == agent.evaluate(n_episodes=4, seed=0, n_envs=2)
    assert vectorised == agent.evaluate(n_episodes=4, seed=0, n_envs=2, vectorization="async")  # same episodes
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="n_envs must be an integer >= 1"):
            agent.evaluate(n_episodes=2, n_envs=bad)
    with pytest.raises(ValueError, match="vectorization must be one of"):
        agent.evaluate(n_episodes=2, n_envs=2, vectorization="threads")
    with pytest.raises(ValueError, match="n_eval_envs must be an integer >= 1"):
        agent.learn(1, eval_freq=1, n_eval_envs=0)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_are_clear_errors(name, random_dataset, random_dataset_path, tmp_path, monkeypatch):
    cls = agent_class(name)
    with pytest.raises(ValueError, match="dataset and env spaces differ"):
        make(name, random_dataset_path, env="HalfCheetah-v5")
    with pytest.raises(TypeError, match="continuous 1-D Box action space"):
        make(name, random_dataset_path, env="CartPole-v1")
    with pytest.raises(TypeError, match=f"unknown {cls.__name__} arguments"):
        make(name, random_dataset_path, no_such_setting=1.0)
    with pytest.raises(ValueError, match="device"):
        cls("Hopper-v5", random_dataset_path, device="cuda:7", **TINY[name])

    from minari.data_collector import EpisodeBuffer

    episode = next(random_dataset.iterate_episodes([0]))
    observations = np.array(episode.observations)
    observations[2, 1] = np.nan
    buffer = EpisodeBuffer(
        id=0,
        observations=list(observations),
        actions=list(episode.actions),
        rewards=list(episode.rewards),
        terminations=list(episode.terminations),
        truncations=list(episode.truncations),
    )
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    nan_dataset = minari.create_dataset_from_buffers(
        "test/hopper/nan-v0",
        buffer=[buffer],
        env=gym.make("Hopper-v5"),
        algorithm_name="test",
        author="t",
        author_email="t@example.org",
        code_permalink="t",
        description="NaN test",
        eval_env="Hopper-v5",
    )
    with pytest.raises(ValueError, match="dataset observations must be finite"):
        make(name, nan_dataset)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        make(name, random_dataset_path).learn(1, checkpoint_path=tmp_path / "a_file")


@pytest.mark.parametrize("name", NAMES)
def test_damaged_or_foreign_checkpoints_are_errors_naming_the_file(name, trained, random_dataset_path, tmp_path):
    agent = trained(name)
    cls, kind = type(agent), f"agent:{type(agent).__name__}"
    good = agent.save(tmp_path / "good")

    def damaged(label, change):
        path = tmp_path / label
        shutil.copytree(good, path)
        change(path)
        return path

    def edit_meta(**changes):
        def change(path):
            meta = json.loads((path / "checkpoint.json").read_text())
            meta.update(changes)
            for key in [k for k, v in changes.items() if v is None]:
                del meta[key]
            (path / "checkpoint.json").write_text(json.dumps(meta))

        return change

    not_json = damaged("not_json", lambda p: (p / "checkpoint.json").write_text("{not json"))
    for load in (cls.load, load_agent):
        with pytest.raises(CheckpointError, match=r"not_json/checkpoint\.json: not valid JSON"):
            load(not_json)
    with pytest.raises(CheckpointError, match=r"checkpoint\.json: not valid JSON"):  # resume reads it too
        make(name, random_dataset_path).learn(5, checkpoint_path=not_json, resume=True)

    other_class = damaged("other_class", edit_meta(kind="agent:SomeOtherAgent"))
    with pytest.raises(CheckpointError, match=rf"json: holds a 'agent:SomeOtherAgent', not a {cls.__name__}; load it"):
        cls.load(other_class)
    with pytest.raises(CheckpointError, match="which no registered agent is; registered: .*gtp"):
        load_agent(other_class)
    refiner = damaged("refiner", edit_meta(kind="refiner:TrajectoryRefiner"))
    for load in (cls.load, load_agent):
        with pytest.raises(CheckpointError, match=r"checkpoint\.json: holds 'refiner:\w+'; expected a kind 'agent:"):
            load(refiner)
    with pytest.raises(CheckpointError, match="format version 999"):
        cls.load(damaged("version", edit_meta(format_version=999)))
    with pytest.raises(CheckpointError, match=r"checkpoint\.json: missing \['stats'\]"):
        cls.load(damaged("no_stats", edit_meta(stats=None)))
    config = {**json.loads((good / "checkpoint.json").read_text())["config"], "no_such_field": 1}
    with pytest.raises(CheckpointError, match=rf"\['no_such_field'\] are not {cls.config_class.__name__} fields"):
        cls.load(damaged("config", edit_meta(config=config)))

    with pytest.raises(CheckpointError, match=r"weights\.safetensors: not a readable safetensors"):
        cls.load(damaged("weights", lambda p: (p / "weights.safetensors").write_bytes(b"garbage")))

    def drop_a_module(path):
        tensors = load_file(str(path / "weights.safetensors"))
        first = next(iter(agent._modules()))
        kept = {k: v for k, v in tensors.items() if not k.startswith(first + ".")}
        save_file(kept, str(path / "weights.safetensors"))

    with pytest.raises(CheckpointError, match=r"weights\.safetensors: the tensors of .* do not fit"):
        cls.load(damaged("missing_module", drop_a_module))
    with pytest.raises(CheckpointError, match=r"training_state\.pt"):
        cls.load(damaged("state", lambda p: (p / "training_state.pt").write_bytes(b"garbage")))

    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        cls.load(tmp_path / "nothing")
    old = tmp_path / "old"
    old.mkdir()
    (old / "agent.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="format version 1"):
        load_agent(old)
    with pytest.raises(FileNotFoundError, match="holds no checkpoint.json"):  # resume never overwrites such a folder
        make(name, random_dataset_path).learn(5, checkpoint_path=old, resume=True)
    assert (old / "agent.json").read_text() == "{}"
    assert read_checkpoint_meta(good)["kind"] == kind  # the damaged copies left the original alone
