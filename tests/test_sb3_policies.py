"""load_sb3_policy rebuilds SB3 zips from their readable fields, with unpickling switched off."""

import pickle
import zipfile

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.policies import ActorCriticPolicy

from ctflow_gym.data import default_policy_path, load_sb3_policy


class Unpickled(Exception):
    """Raised by the patched pickle functions."""


class Square(torch.nn.Module):
    """A custom activation: only unpickling can bring it back."""

    def forward(self, x):
        return x * x


class CustomPolicy(ActorCriticPolicy):
    """A policy class from outside stable_baselines3."""


def _forbid_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise Unpickled("unpickling was attempted")

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "loads", refuse)
        monkeypatch.setattr(module, "load", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


def _hopper_observations(n=20):
    env = gym.make("Hopper-v5")
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    observations = []
    for _ in range(n):
        observations.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.array(observations)


def _assert_same_networks(ours, theirs):
    assert type(ours) is type(theirs) and type(ours.policy) is type(theirs.policy)
    mine, saved = ours.policy.state_dict(), theirs.policy.state_dict()
    assert mine.keys() == saved.keys()
    assert all(torch.equal(mine[key], saved[key]) for key in saved)


def test_shipped_policy_loads_without_unpickling(monkeypatch):
    path = default_policy_path()
    reference = SAC.load(path, device="cpu")
    observations = _hopper_observations()
    _forbid_unpickling(monkeypatch)
    with pytest.raises(Unpickled):
        SAC.load(path, device="cpu")  # the patch bites SB3's own load

    model = load_sb3_policy(path)
    _assert_same_networks(model, reference)
    actions, _ = model.predict(observations, deterministic=True)
    expected, _ = reference.predict(observations, deterministic=True)
    assert np.array_equal(actions, expected)
    assert torch.equal(model.log_ent_coef, reference.log_ent_coef)
    with torch.no_grad():
        obs = torch.as_tensor(observations, dtype=torch.float32)
        act = torch.as_tensor(expected)
        for ours, theirs in zip(model.critic(obs, act), reference.critic(obs, act)):
            assert torch.equal(ours, theirs)
        ours = model.policy._predict(obs, deterministic=True)
        assert torch.equal(ours, reference.policy._predict(obs, deterministic=True))
    assert model.observation_space == reference.observation_space and model.action_space == reference.action_space

    env = gym.make("Hopper-v5")
    attached = load_sb3_policy(path, algo="sac", env=env)  # an Env object is attached, as SB3's load does
    assert attached.env is not None
    assert np.array_equal(attached.predict(observations, deterministic=True)[0], expected)
    assert load_sb3_policy(path, env="Hopper-v5").env is None
    env.close()


ROLLOUT = {"n_steps": 16, "batch_size": 16}
MODELS = {
    "sac-sde": (
        SAC,
        "Pendulum-v1",
        {"buffer_size": 100, "use_sde": True, "ent_coef": 0.1, "policy_kwargs": {"net_arch": [8]}},
    ),
    "td3": (TD3, "Pendulum-v1", {"policy_kwargs": {"net_arch": [8, 8]}}),
    "ddpg": (DDPG, "Pendulum-v1", {"policy_kwargs": {"net_arch": [8, 8]}}),
    "ppo": (PPO, "Pendulum-v1", {**ROLLOUT, "policy_kwargs": {"net_arch": [8, 8], "log_std_init": -0.5}}),
    "ppo-relu": (PPO, "Pendulum-v1", {**ROLLOUT, "policy_kwargs": {"activation_fn": torch.nn.ReLU}}),
    "a2c-discrete": (A2C, "CartPole-v1", {"n_steps": 4, "policy_kwargs": {"net_arch": [8]}}),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_other_algorithms_load_without_unpickling(name, tmp_path, monkeypatch):
    cls, env_id, kwargs = MODELS[name]
    path = tmp_path / f"{name}.zip"
    cls("MlpPolicy", env_id, seed=0, device="cpu", **kwargs).save(path)
    reference = cls.load(path, device="cpu")
    space = gym.make(env_id).observation_space
    space.seed(0)
    observations = np.array([space.sample() for _ in range(20)])
    _forbid_unpickling(monkeypatch)

    # CartPole's bounds print with 8 decimals (0.41887903), so its spaces are not exact in the file
    env = env_id if name == "a2c-discrete" else None
    model = load_sb3_policy(path, device="cpu", env=env)
    _assert_same_networks(model, reference)
    expected, _ = reference.predict(observations, deterministic=True)
    assert np.array_equal(model.predict(observations, deterministic=True)[0], expected)
    assert model.observation_space == reference.observation_space and model.action_space == reference.action_space
    if name == "a2c-discrete":
        assert isinstance(model.policy.optimizer, torch.optim.RMSprop)  # A2C's default, read by name
        with pytest.raises(ValueError, match="env="):
            load_sb3_policy(path)
    if name == "ddpg":
        assert load_sb3_policy(path, algo="TD3").policy_kwargs["n_critics"] == 1  # TD3 and DDPG share the policy


@pytest.mark.parametrize("field", ["activation_fn", "policy_class"])
def test_custom_classes_need_trust_pickle(field, tmp_path, monkeypatch):
    path = tmp_path / "custom.zip"
    if field == "activation_fn":
        model = PPO("MlpPolicy", "Pendulum-v1", n_steps=16, batch_size=16, policy_kwargs={"activation_fn": Square})
    else:
        model = PPO(CustomPolicy, "Pendulum-v1", n_steps=16, batch_size=16)
    model.save(path)
    with monkeypatch.context() as patched:
        _forbid_unpickling(patched)
        with pytest.raises(ValueError, match=rf"{field}.*trust_pickle=True"):
            load_sb3_policy(path)
    trusted = load_sb3_policy(path, trust_pickle=True)
    observations = np.zeros((3, 3), dtype=np.float32)
    expected, _ = model.predict(observations, deterministic=True)
    assert np.array_equal(trusted.predict(observations, deterministic=True)[0], expected)
    if field == "activation_fn":
        assert trusted.policy.activation_fn is Square
    else:
        assert type(trusted.policy) is CustomPolicy


def test_errors_name_the_argument(tmp_path, monkeypatch):
    _forbid_unpickling(monkeypatch)
    missing = tmp_path / "missing.zip"
    with pytest.raises(FileNotFoundError, match="missing.zip"):
        load_sb3_policy(missing)
    text = tmp_path / "policy.zip"
    text.write_text("not a zip")
    with pytest.raises(ValueError, match="not a zip"):
        load_sb3_policy(text)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("data", "{}")
    with pytest.raises(ValueError, match="not an SB3 model zip"):
        load_sb3_policy(other)

    path = default_policy_path()
    with pytest.raises(ValueError, match="algo='TD3'"):
        load_sb3_policy(path, algo="TD3")
    with pytest.raises(ValueError, match="algo must be one of"):
        load_sb3_policy(path, algo="DQN")
    with pytest.raises(ValueError, match="env: its observation_space"):
        load_sb3_policy(path, env="Pendulum-v1")
    with pytest.raises(ValueError, match="env: its action_space"):
        load_sb3_policy(path, env=_HopperWithOtherBounds())


class _HopperWithOtherBounds(gym.Env):
    """Hopper's observation space with actions in [-2, 2]."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (11,), np.float64)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
