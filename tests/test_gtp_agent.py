"""GTPAgent on tiny real data: imitation, predict, save/load, evaluate_policy, resume, bad input."""

import json
import shutil

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from agents import GTPAgent, GTPConfig, NonFiniteLossError
from ctflow_gym.checkpoint import CheckpointError
from agents.gtp.networks import FlowMapActor
from agents.gtp.schedule import discretization_steps, sample_consistency_times, sampling_times, time_grid
from ctflow_gym.data import BuildConfig, build_dataset, default_policy_path, load_dataset

TINY = dict(actor_hidden=64, actor_layers=2, critic_hidden=64, critic_layers=2, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def policy_dataset_path(datasets_root):
    """1,000 steps of the shipped SAC policy acting deterministically: a known target."""
    return build_dataset(
        BuildConfig(env_id="Hopper-v5", kind="medium", policy=str(default_policy_path()), deterministic=True, n_steps=1000, seed=4, root=str(datasets_root), progress_bar=False)
    )


@pytest.fixture(scope="module")
def trained(random_dataset_path):
    return GTPAgent("Hopper-v5", random_dataset_path, eta=5.0, seed=1, **TINY).learn(40)


def test_gtp_bc_imitates_a_deterministic_policy(policy_dataset_path):
    # Bound: mean absolute action error below half the teacher's own action spread
    # (mean |a - mean(a)|). Predicting the mean action scores 1.0; a plain MLP regressor
    # of the same size and budget reaches ~0.2 here, GTP-BC with K = 5 ~0.35. A broken
    # loss, schedule or sampler stays near 1.
    agent = GTPAgent("Hopper-v5", policy_dataset_path, eta=0.0, actor_hidden=128, actor_layers=2, batch_size=128, lr=1e-3, device="cpu", seed=0)
    assert agent.critic is None  # GTP-BC trains no critic
    agent.learn(3000)
    observations, actions = agent.transitions.observations, agent.transitions.actions
    spread = np.abs(actions - actions.mean(0)).mean()
    predicted, _ = agent.predict(observations, sampling_steps=5)
    assert np.abs(predicted - actions).mean() < 0.5 * spread


def test_schedule_follows_eq_76_and_orders_times():
    total = 8000
    assert discretization_steps(0, total) == 11
    assert discretization_steps(1000, total) == 21  # doubles every K' = 1000 steps
    assert discretization_steps(7999, total) == 1281
    grid = time_grid(20, 0.002, 80.0)
    assert grid[0] == 0 and torch.isclose(grid[1], torch.tensor(0.002)) and torch.isclose(grid[-1], torch.tensor(80.0))
    t, u, tau = sample_consistency_times(5000, grid, torch.Generator().manual_seed(0))
    assert torch.all(t > u) and torch.all(u >= tau) and torch.all(u > 0)
    assert torch.any(tau == 0) and torch.any(t == 80.0)


def test_one_grid_gives_exactly_the_former_sampling_times_and_training_grid():
    # The two formulas the sampler and the training schedule used before they shared
    # karras_levels, written out here: the shared function must reproduce both bit for bit.
    def former_sampling_times(steps, max_time, min_time, rho=7.0):
        lo, hi = min_time ** (1 / rho), max_time ** (1 / rho)
        times = [(hi + i / steps * (lo - hi)) ** rho for i in range(steps + 1)]
        times[-1] = 0.0
        return times

    def former_time_grid(points, min_time, max_time, rho=7.0):
        lo, hi = min_time ** (1 / rho), max_time ** (1 / rho)
        ramp = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
        karras = (lo + ramp * (hi - lo)) ** rho
        return torch.cat([torch.zeros(1, dtype=torch.float64), karras]).float()

    schedule_points = {discretization_steps(k, 8000, s0, 1280) for s0 in (5, 10, 20) for k in range(0, 8000, 125)}
    for max_time, min_time, rho in ((80.0, 0.002, 7.0), (10.0, 0.01, 7.0), (1.0, 1e-3, 3.0)):
        for steps in range(1, 41):
            former = former_sampling_times(steps, max_time, min_time, rho)
            assert list(sampling_times(steps, max_time, min_time, rho)) == former
        for points in sorted({*range(2, 130), *schedule_points}):
            former = former_time_grid(points, min_time, max_time, rho)
            assert torch.equal(time_grid(points, min_time, max_time, rho), former)


def test_predict_shapes_clipping_and_sampling_steps(trained):
    obs = trained.transitions.observations[:7]
    batch, state = trained.predict(obs)
    single, _ = trained.predict(obs[0])
    assert batch.shape == (7, 3) and single.shape == (3,) and state is None
    np.testing.assert_allclose(single, batch[0], atol=1e-6)
    for steps in (1, 2, 5):
        actions, _ = trained.predict(obs, sampling_steps=steps)
        assert np.all(actions >= -1) and np.all(actions <= 1)
    # far out-of-distribution states still give actions inside the box
    wild, _ = trained.predict(obs * 1e4)
    assert np.all(np.abs(wild) <= 1)
    np.testing.assert_array_equal(trained.predict(obs)[0], batch)  # deterministic
    assert not np.allclose(trained.predict(obs, deterministic=False)[0], batch)
    with pytest.raises(ValueError, match="sampling_steps"):
        trained.predict(obs, sampling_steps=0)
    with pytest.raises(ValueError, match="sampling_steps"):
        trained.sampling_steps = 0
    with pytest.raises(ValueError, match="observation must have shape"):
        trained.predict(np.zeros(5))


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "gtp")
    loaded = GTPAgent.load(path, device="cpu")
    obs = trained.transitions.observations[:32]
    np.testing.assert_array_equal(loaded.predict(obs)[0], trained.predict(obs)[0])
    assert loaded.num_timesteps == 40 and loaded.config == trained.config and loaded.env_id == "Hopper-v5"
    assert {p.name for p in path.iterdir()} == {"checkpoint.json", "weights.safetensors", "training_state.pt"}
    assert not list(tmp_path.glob(".gtp-*"))  # no staging folder left


def test_evaluate_policy_and_normalised_score(trained):
    mean, std = evaluate_policy(trained, trained.env, n_eval_episodes=2, deterministic=True, warn=False)
    assert np.isfinite(mean) and std >= 0
    result = trained.evaluate(n_episodes=2, seed=0, sampling_steps=2)
    assert len(result["returns"]) == 2 and result["normalized_score"] is not None
    assert result == trained.evaluate(n_episodes=2, seed=0, sampling_steps=2)  # seeded


def test_resume_after_interruption_matches_an_uninterrupted_run(random_dataset_path, tmp_path):
    straight = GTPAgent("Hopper-v5", random_dataset_path, seed=2, **TINY).learn(30)

    class Interrupt(BaseCallback):
        def _on_step(self):
            if self.num_timesteps == 25:
                raise KeyboardInterrupt
            return True

    checkpoint = tmp_path / "ckpt"
    interrupted = GTPAgent("Hopper-v5", random_dataset_path, seed=2, **TINY)
    with pytest.raises(KeyboardInterrupt):
        interrupted.learn(30, callback=Interrupt(), checkpoint_path=checkpoint, checkpoint_freq=10)
    assert json.loads((checkpoint / "checkpoint.json").read_text())["num_timesteps"] == 20

    resumed = GTPAgent("Hopper-v5", random_dataset_path, seed=2, **TINY)
    steps_seen = []
    resumed.learn(30, checkpoint_path=checkpoint, resume=True, callback=lambda local_vars, global_vars: steps_seen.append(resumed.num_timesteps) or True)
    assert steps_seen[0] == 21 and resumed.num_timesteps == 30
    for name, module in straight._modules().items():
        for a, b in zip(module.parameters(), resumed._modules()[name].parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="other settings.*eta"):
        GTPAgent("Hopper-v5", random_dataset_path, seed=2, eta=1.0, **TINY).learn(30, checkpoint_path=checkpoint, resume=True)
    # SB3 rule: reset_num_timesteps=False adds steps
    resumed.learn(5, reset_num_timesteps=False)
    assert resumed.num_timesteps == 35


def test_sb3_callback_can_stop_training(random_dataset_path):
    class StopAt(BaseCallback):
        def _on_step(self):
            return self.num_timesteps < 7

    agent = GTPAgent("Hopper-v5", random_dataset_path, eta=0.0, **TINY).learn(50, callback=[StopAt()])
    assert agent.num_timesteps == 7


def test_nan_loss_stops_with_step_and_loss_and_saves_last_good(random_dataset_path, tmp_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=0, **TINY).learn(3)
    agent._data["rewards"] = agent._data["rewards"] * 0 + 1e38  # TD targets overflow float32
    with pytest.raises(NonFiniteLossError, match=r"critic_loss became inf at gradient step 4.*saved to") as caught:
        agent.learn(10, reset_num_timesteps=False, checkpoint_path=tmp_path / "ckpt")
    assert caught.value.step == 4 and caught.value.loss_name == "critic_loss"
    restored = GTPAgent.load(tmp_path / "ckpt", device="cpu")
    assert restored.num_timesteps == 3
    assert all(torch.isfinite(p).all() for p in restored.actor.parameters())


def test_bad_inputs(random_dataset, random_dataset_path, trained, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="dataset and env spaces differ"):
        GTPAgent("HalfCheetah-v5", random_dataset_path, **TINY)
    with pytest.raises(TypeError, match="continuous 1-D Box action space"):
        GTPAgent("CartPole-v1", random_dataset_path, **TINY)
    with pytest.raises(ValueError, match="sampling_steps"):
        GTPAgent("Hopper-v5", random_dataset_path, sampling_steps=0, **TINY)
    with pytest.raises(TypeError, match="unknown GTPAgent arguments"):
        GTPAgent("Hopper-v5", random_dataset_path, etta=1.0, **TINY)
    with pytest.raises(ValueError, match="device"):
        GTPAgent("Hopper-v5", random_dataset_path, eta=0.0, actor_hidden=8, device="cuda:7")
    with pytest.raises(ValueError, match="eta must be >= 0"):
        GTPConfig(eta=-1).validate()

    # NaN in the data
    from minari.data_collector import EpisodeBuffer

    episode = next(random_dataset.iterate_episodes([0]))
    observations = np.array(episode.observations)
    observations[2, 1] = np.nan
    buffer = EpisodeBuffer(id=0, observations=list(observations), actions=list(episode.actions), rewards=list(episode.rewards), terminations=list(episode.terminations), truncations=list(episode.truncations))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    nan_dataset = minari.create_dataset_from_buffers("test/hopper/nan-v0", buffer=[buffer], env=gym.make("Hopper-v5"), algorithm_name="test", author="t", author_email="t@example.org", code_permalink="t", description="NaN test", eval_env="Hopper-v5")
    with pytest.raises(ValueError, match="dataset observations must be finite"):
        GTPAgent("Hopper-v5", nan_dataset, **TINY)

    # incompatible checkpoints
    path = trained.save(tmp_path / "gtp")
    with pytest.raises(ValueError, match="trained on Hopper-v5"):
        GTPAgent.load(path, env="Walker2d-v5")
    meta = json.loads((path / "checkpoint.json").read_text())
    (path / "checkpoint.json").write_text(json.dumps({**meta, "format_version": 999}))
    with pytest.raises(CheckpointError, match="format version 999"):
        GTPAgent.load(path)
    (path / "checkpoint.json").write_text(json.dumps({**meta, "kind": "agent:OtherAgent"}))
    with pytest.raises(CheckpointError, match="holds a 'agent:OtherAgent', not a GTPAgent"):
        GTPAgent.load(path)
    (path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"gtp/checkpoint\.json: not valid JSON"):
        GTPAgent.load(path)
    with pytest.raises(CheckpointError, match=r"checkpoint\.json: not valid JSON"):
        GTPAgent("Hopper-v5", random_dataset_path, **TINY).learn(5, checkpoint_path=path, resume=True)
    shutil.rmtree(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        GTPAgent.load(path)
    with pytest.raises(ValueError, match="no dataset"):
        GTPAgent.load(trained.save(tmp_path / "again")).learn(5)
    assert load_dataset(random_dataset_path).total_steps == 1500


def test_fast_sampling_equals_chained_flow_maps_and_follows_weight_updates():
    torch.manual_seed(0)
    actor = FlowMapActor(11, 3, hidden=32, layers=2)
    obs, noise = torch.randn(6, 11), torch.randn(6, 3)

    def chained(times, start):
        a = start * times[0]
        for t, tau in zip(times[:-1], times[1:]):
            a = actor(obs, a, torch.full((6, 1), t), torch.full((6, 1), tau))
        return a

    with torch.no_grad():
        for steps in (1, 2, 5, 1):  # alternating K reuses cached plans
            times = sampling_times(steps, 80.0, 0.002)
            torch.testing.assert_close(actor.sample(obs, times, noise), chained(times, noise), rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(actor.sample(obs, times, None), chained(times, torch.zeros_like(noise)), rtol=1e-5, atol=1e-5)
        for p in actor.parameters():  # an in-place update, as Adam or an EMA makes
            p.add_(0.1)
        times = sampling_times(2, 80.0, 0.002)
        torch.testing.assert_close(actor.sample(obs, times, noise), chained(times, noise), rtol=1e-5, atol=1e-5)
