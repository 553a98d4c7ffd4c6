"""What is special to GTPAgent: imitation, the noise schedule and the one time grid, the flow-map sampler,
predict-time K, GTP-BC, its config. The contract every agent shares is in test_agent_contract.py."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from agents import GTPAgent, GTPConfig, NonFiniteLossError
from agents.gtp.calibration import fit_sampling_times, rms_distance
from agents.gtp.losses import actor_losses, consistency_loss, flow_loss
from agents.gtp.networks import FlowMapActor
from agents.gtp.schedule import (
    discretization_steps,
    karras_levels,
    sample_consistency_times,
    sampling_times,
    time_grid,
)
from ctflow_gym.data import BuildConfig, build_dataset, default_policy_path

# One critic (the paper's) keeps these fast; the default's five are trained by the tests that name critic_ensemble
# and by the agent-contract and CLI tests, which use the defaults.
TINY = dict(
    actor_hidden=64, actor_layers=2, critic_hidden=64, critic_layers=2, critic_ensemble=1, batch_size=64, device="cpu"
)


@pytest.fixture(scope="module")
def policy_dataset_path(datasets_root):
    """1,000 steps of the shipped SAC policy acting deterministically: a known target."""
    config = BuildConfig(
        env_id="Hopper-v5",
        kind="medium",
        policy=str(default_policy_path()),
        deterministic=True,
        n_steps=1000,
        seed=4,
        root=str(datasets_root),
        progress_bar=False,
    )
    return build_dataset(config)


@pytest.fixture(scope="module")
def trained(random_dataset_path):
    return GTPAgent("Hopper-v5", random_dataset_path, eta=5.0, seed=1, **TINY).learn(40)


def test_gtp_bc_imitates_a_deterministic_policy(policy_dataset_path):
    # Bound: mean absolute action error below half the teacher's own action spread
    # (mean |a - mean(a)|). Predicting the mean action scores 1.0; a plain MLP regressor
    # of the same size and budget reaches ~0.2 here, GTP-BC with K = 5 ~0.35. A broken
    # loss, schedule or sampler stays near 1.
    agent = GTPAgent(
        "Hopper-v5",
        policy_dataset_path,
        eta=0.0,
        actor_hidden=128,
        actor_layers=2,
        batch_size=128,
        lr=1e-3,
        device="cpu",
        seed=0,
    )
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
    t2, u2, tau2 = sample_consistency_times(5000, grid, torch.Generator().manual_seed(0), tau_sampling="time")
    assert torch.equal(t2, t) and torch.equal(u2, u)  # the same draws, only tau differs
    assert torch.all(u2 >= tau2) and torch.all(tau2 >= 0) and not torch.all(torch.isin(tau2, grid))
    t3, u3, tau3 = sample_consistency_times(5000, grid, torch.Generator().manual_seed(0), tau_sampling="grid_zero")
    assert torch.equal(t3, t) and torch.all(u3 >= tau3) and torch.all(torch.isin(tau3, grid))
    assert (tau3 == 0).float().mean() > (tau == 0).float().mean() + 0.15  # a quarter more jump to 0
    with pytest.raises(ValueError, match="tau_sampling must be one of"):
        sample_consistency_times(5, grid, tau_sampling="index")
    with pytest.raises(ValueError, match="count must be an integer >= 2"):
        karras_levels(1, 0.002, 80.0)


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
            zeros = torch.zeros_like(noise)
            torch.testing.assert_close(actor.sample(obs, times, None), chained(times, zeros), rtol=1e-5, atol=1e-5)
        for p in actor.parameters():  # an in-place update, as Adam or an EMA makes
            p.add_(0.1)
        times = sampling_times(2, 80.0, 0.002)
        torch.testing.assert_close(actor.sample(obs, times, noise), chained(times, noise), rtol=1e-5, atol=1e-5)


def test_sampling_steps_and_stochastic_actions(trained):
    obs = trained.transitions.observations[:7]
    batch, _ = trained.predict(obs)
    for steps in (1, 2, 5):
        actions, _ = trained.predict(obs, sampling_steps=steps)
        assert np.all(actions >= -1) and np.all(actions <= 1)
    np.testing.assert_array_equal(trained.predict(obs, sampling_steps=trained.sampling_steps)[0], batch)
    assert not np.allclose(trained.predict(obs, deterministic=False)[0], batch)
    with pytest.raises(ValueError, match="sampling_steps"):
        trained.predict(obs, sampling_steps=0)
    with pytest.raises(ValueError, match="sampling_steps"):
        trained.sampling_steps = 0
    result = trained.evaluate(n_episodes=1, seed=0, sampling_steps=2)  # options reach predict
    assert result == trained.evaluate(n_episodes=1, seed=0, sampling_steps=2)


def test_explicit_sampling_times_act_like_the_k_step_times_they_spell(trained):
    obs = trained.transitions.observations[:7]
    cfg = trained.config
    karras = sampling_times(3, cfg.max_time, cfg.min_time)  # K = 3 is not fitted by default: Karras' times
    three_step, _ = trained.predict(obs, sampling_steps=3)
    np.testing.assert_array_equal(trained.predict(obs, sampling_times=list(karras))[0], three_step)
    np.testing.assert_array_equal(trained.predict(obs, sampling_steps=3, sampling_times=karras)[0], three_step)
    two_step, _ = trained.predict(obs, sampling_steps=2)  # K = 2 acts with its fitted plan
    np.testing.assert_array_equal(trained.predict(obs, sampling_times=trained.sampling_plan(2))[0], two_step)
    other, _ = trained.predict(obs, sampling_times=(cfg.max_time, 30.0, 0.0))
    assert not np.allclose(other, two_step)  # the middle time is used
    for bad in ((cfg.max_time,), (40.0, 1.0, 0.0), (cfg.max_time, 1.0, 0.1), (cfg.max_time, 1.0, 2.0, 0.0), "ab"):
        with pytest.raises(ValueError, match="sampling_times"):
            trained.predict(obs, sampling_times=bad)
    with pytest.raises(ValueError, match="disagree"):
        trained.predict(obs, sampling_steps=2, sampling_times=karras)
    result = trained.evaluate(n_episodes=1, seed=0, sampling_times=(cfg.max_time, 0.567, 0.0))
    assert result == trained.evaluate(n_episodes=1, seed=0, sampling_times=(cfg.max_time, 0.567, 0.0))


def test_fitting_one_stop_finds_the_best_level_of_an_exhaustive_search(trained):
    # For K = 2 the descent tries every level for the one stop: it must land on the
    # brute-force minimum of the distance to the fine path, and never above Karras'.
    cfg = trained.config
    generator = torch.Generator().manual_seed(3)
    obs = trained._data["observations"][torch.randint(len(trained.transitions), (128,), generator=generator)]
    noise = torch.randn(128, trained.act_dim, generator=generator)
    levels = karras_levels(12, cfg.min_time, cfg.max_time)
    fit = fit_sampling_times(trained.actor_ema, obs, noise, sampling_times(2, cfg.max_time, cfg.min_time), levels)
    with torch.no_grad():
        act = lambda times: trained.actor_ema.sample(obs, times, noise).clamp(-1, 1)  # noqa: E731
        reference = act((*levels, 0.0))
        distances = {lvl: rms_distance(act((cfg.max_time, lvl, 0.0)), reference) for lvl in levels[1:]}
    best = min(distances, key=distances.get)
    assert fit.times == (cfg.max_time, best, 0.0)
    assert fit.distance == pytest.approx(distances[best]) and fit.distance <= fit.start_distance
    five = fit_sampling_times(trained.actor_ema, obs, noise, sampling_times(5, cfg.max_time, cfg.min_time), levels)
    assert five.distance <= five.start_distance and len(five.times) == 6
    assert all(later < earlier for earlier, later in zip(five.times, five.times[1:]))
    assert set(five.times[1:-1]) <= set(levels)


def test_fitted_times_follow_training_are_saved_and_change_no_random_stream(random_dataset_path, tmp_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=2, **TINY).learn(20)
    obs = agent.transitions.observations[:6]
    state = agent.generator.get_state()
    fits = agent.fit_sampling_times((2, 3))
    assert torch.equal(agent.generator.get_state(), state)
    assert set(fits) == {2, 3} and all(f.distance <= f.start_distance for f in fits.values())
    plan = agent.sampling_plan(2)
    assert plan == fits[2].times and agent.sampling_plan(5) == sampling_times(5, 80.0, 0.002)
    acted, _ = agent.predict(obs, sampling_steps=2)
    agent.save(tmp_path / "model")
    loaded = GTPAgent.load(tmp_path / "model", device="cpu")  # no dataset: acts with the saved fit
    assert loaded.sampling_plan(2) == plan
    np.testing.assert_array_equal(loaded.predict(obs, sampling_steps=2)[0], acted)
    assert agent.sampling_plan_distance(plan) == pytest.approx(fits[2].distance)
    karras = sampling_times(2, 80.0, 0.002)
    assert agent.sampling_plan_distance(karras) == pytest.approx(fits[2].start_distance)
    for fit_needs_data in (loaded.fit_sampling_times, lambda: loaded.sampling_plan_distance(plan)):
        with pytest.raises(ValueError, match="dataset"):
            fit_needs_data()
    for bad in ((1,), (2.0,), (True,)):
        with pytest.raises(ValueError, match="steps"):
            agent.fit_sampling_times(bad)
    with pytest.raises(ValueError, match="fitted_sampling_steps"):
        GTPAgent("Hopper-v5", random_dataset_path, fitted_sampling_steps=(1,), **TINY)
    agent.learn(5, reset_num_timesteps=False)  # trained on: learn refits as it ends
    assert agent._fitted_at == agent.num_timesteps == 25
    fit = agent._fitted[2]
    agent._train_step(agent.sample_batch(agent.config.batch_size))  # weights changed outside learn: stale,
    agent.predict(obs, sampling_steps=2)  # but predict never refits (acting stays cheap)
    assert agent._fitted_at is None and agent._fitted[2] is fit
    before = agent._fitted[2]
    agent.learn(25)  # trained anew to the same step count: still a refit
    agent.predict(obs, sampling_steps=2)
    assert agent._fitted_at == 25 and agent._fitted[2] is not before
    agent.config.fitted_sampling_steps = ()
    assert agent.sampling_plan(2) == sampling_times(2, 80.0, 0.002)


def test_a_checkpoint_without_fitted_times_acts_with_karras_times_and_says_so(trained, random_dataset_path, tmp_path):
    trained.save(tmp_path / "model")
    meta_file = tmp_path / "model" / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    del meta["acting_state"]  # as checkpoints written before fitted times existed
    meta_file.write_text(json.dumps(meta))
    old = GTPAgent.load(tmp_path / "model")
    with pytest.warns(UserWarning, match="Karras"):
        assert old.sampling_plan(2) == sampling_times(2, 80.0, 0.002)
    refit = GTPAgent.load(tmp_path / "model", dataset=random_dataset_path)
    assert 2 in refit._fitted  # fitted as it loaded, not at its first predict
    assert refit.sampling_plan(2) == trained.sampling_plan(2)
    refit._fitted = {}
    with pytest.warns(UserWarning, match="Karras"):  # acting never fits, even with the dataset there
        refit.predict(refit.transitions.observations[:2], sampling_steps=2)
    assert refit._fitted == {}


def test_a_checkpoint_from_before_critic_ensemble_was_saved_loads_as_one_critic(trained, random_dataset_path, tmp_path):
    trained.save(tmp_path / "model")
    meta_file = tmp_path / "model" / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    del meta["config"]["critic_ensemble"]  # as checkpoints written when one critic was all there was
    meta_file.write_text(json.dumps(meta))
    old = GTPAgent.load(tmp_path / "model")
    assert old.config.critic_ensemble == 1 and GTPConfig().critic_ensemble == 5
    obs = trained.transitions.observations[:3]
    np.testing.assert_array_equal(old.predict(obs)[0], trained.predict(obs)[0])
    five = GTPAgent("Hopper-v5", random_dataset_path, eta=5.0, seed=1, **{**TINY, "critic_ensemble": 5})
    with pytest.raises(ValueError, match="other settings.*critic_ensemble: checkpoint 1, now 5"):
        five.learn(45, checkpoint_path=tmp_path / "model", resume=True)


def test_actions_are_the_best_of_n_candidates_by_q(trained):
    obs = trained.transitions.observations[:5]
    normalised = torch.as_tensor(trained.stats.normalize_observations(obs))
    n = 7
    with torch.no_grad():  # the same start noise, drawn by hand: 7 candidates per state, rows in order
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(5 * n, trained.act_dim, generator=generator)
        states = normalised.repeat_interleave(n, dim=0)
        candidates = trained.actor_ema.sample(states, trained._times(3), noise).clamp(-1, 1)
        q = trained.critic_target.min_q(states, candidates).view(5, n)
        one_noise = torch.randn(5, trained.act_dim, generator=torch.Generator().manual_seed(0))
        single = trained.actor_ema.sample(normalised, trained._times(3), one_noise).clamp(-1, 1)
    best = candidates.view(5, n, -1)[torch.arange(5), q.argmax(1)].numpy()
    chosen, _ = trained.predict(obs, sampling_steps=3, action_candidates=n)
    np.testing.assert_allclose(chosen, trained.from_unit_actions(best), rtol=1e-5, atol=1e-6)
    first, _ = trained.predict(obs, sampling_steps=3, action_candidates=1)
    np.testing.assert_allclose(first, trained.from_unit_actions(single.numpy()), rtol=1e-5, atol=1e-6)
    # deterministic: the same observations give the same actions, call after call
    np.testing.assert_array_equal(trained.predict(obs)[0], trained.predict(obs)[0])
    assert trained.action_candidates == 50
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="action_candidates"):
            trained.predict(obs, action_candidates=bad)
        with pytest.raises(ValueError, match="action_candidates"):
            trained.action_candidates = bad


def test_candidate_pessimism_ranks_by_the_critics_mean_less_beta_times_their_spread(random_dataset_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=3, **{**TINY, "critic_ensemble": 3}).learn(20)
    obs = agent.transitions.observations[:6]
    states = torch.as_tensor(agent.stats.normalize_observations(obs)).repeat_interleave(9, dim=0)
    with torch.no_grad():
        candidates = agent.sample_actions(states, 3, deterministic=True)  # the noise predict draws for 6 x 9 rows
        members = agent.critic_target.member_min_q(states, candidates)
        assert members.shape == (3, 6 * 9)
    picks = {}
    for beta in (0.0, 2.0, 1e6):
        value = (members.mean(0) - beta * members.std(0)).view(6, 9)
        best = candidates.view(6, 9, -1)[torch.arange(6), value.argmax(1)].numpy()
        chosen, _ = agent.predict(obs, sampling_steps=3, action_candidates=9, candidate_pessimism=beta)
        np.testing.assert_allclose(chosen, agent.from_unit_actions(best), rtol=1e-5, atol=1e-6)
        picks[beta] = value.argmax(1)
    assert torch.equal(picks[1e6], members.std(0).view(6, 9).argmin(1))  # a large beta: the least disputed
    assert not torch.equal(picks[0.0], picks[1e6])  # the spread changes which candidate is taken
    agent.config.candidate_pessimism = 2.0  # the config's beta is predict's default
    np.testing.assert_array_equal(
        agent.predict(obs, sampling_steps=3, action_candidates=9)[0],
        agent.predict(obs, sampling_steps=3, action_candidates=9, candidate_pessimism=2.0)[0],
    )
    for bad in (-1.0, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="candidate_pessimism must be a finite number >= 0"):
            agent.predict(obs, action_candidates=1, candidate_pessimism=bad)
    with pytest.raises(ValueError, match=r"candidate_pessimism \(1.0\) > 0 needs critic_ensemble > 1"):
        GTPAgent("Hopper-v5", random_dataset_path, candidate_pessimism=1.0, **TINY)


def test_gtp_bc_samples_one_action_whatever_the_candidates(random_dataset_path):
    bc = GTPAgent("Hopper-v5", random_dataset_path, eta=0.0, seed=0, **TINY).learn(2)
    obs = bc.transitions.observations[:4]
    np.testing.assert_array_equal(bc.predict(obs, action_candidates=20)[0], bc.predict(obs, action_candidates=1)[0])


def test_checkpoint_holds_the_critic_only_when_trained(trained, random_dataset_path, tmp_path):
    assert {key.split(".")[0] for key in load_file(str(trained.save(tmp_path / "gtp") / "weights.safetensors"))} == {
        "actor",
        "actor_ema",
        "critic",
        "critic_target",
    }
    bc = GTPAgent("Hopper-v5", random_dataset_path, eta=0.0, **TINY).learn(2)
    assert {key.split(".")[0] for key in load_file(str(bc.save(tmp_path / "bc") / "weights.safetensors"))} == {
        "actor",
        "actor_ema",
    }
    assert GTPAgent.load(tmp_path / "bc", device="cpu").critic is None


def test_resume_may_change_sampling_steps_but_not_training_settings(random_dataset_path, tmp_path):
    checkpoint = tmp_path / "ckpt"
    GTPAgent("Hopper-v5", random_dataset_path, seed=2, **TINY).learn(4, checkpoint_path=checkpoint)
    resumed = GTPAgent("Hopper-v5", random_dataset_path, seed=2, sampling_steps=2, **TINY)
    assert resumed.learn(6, checkpoint_path=checkpoint, resume=True).num_timesteps == 6
    with pytest.raises(ValueError, match="other settings.*eta: checkpoint 5.0, now 1.0"):
        other = GTPAgent("Hopper-v5", random_dataset_path, seed=2, eta=1.0, **TINY)
        other.learn(8, checkpoint_path=checkpoint, resume=True)


@pytest.mark.parametrize("critics", [1, 3])
def test_the_max_q_backup_is_diffusion_ql_s_max_per_head_then_min(random_dataset_path, critics):
    options = dict(max_q_backup=True, max_q_samples=4, critic_ensemble=critics)
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=0, **{**TINY, **options}).learn(2)
    batch = agent.sample_batch(8)
    next_obs = batch["next_observations"]
    with torch.no_grad():
        next_actions, _ = agent._bootstrap_values(batch["observations"], next_obs)
        assert next_actions.shape == (4 * 8, agent.act_dim)
        q1, q2 = agent.critic_target(next_obs.repeat(4, 1), next_actions)
        members = q1.shape[:-1]  # () for one critic, (3,) for three
        best1, best2 = (q.view(*members, 4, 8).max(-2).values for q in (q1, q2))
        value = agent._next_value(next_obs, next_actions)
        assert value.shape == (*members, 8)
        torch.testing.assert_close(value, torch.minimum(best1, best2), rtol=0, atol=0)


def test_overflowing_td_targets_stop_at_the_critic_loss(random_dataset_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=0, **TINY).learn(3)
    agent._data["rewards"] = agent._data["rewards"] * 0 + 1e38  # TD targets overflow float32
    with pytest.raises(NonFiniteLossError, match=r"critic_loss became inf at gradient step 4") as caught:
        agent.learn(10, reset_num_timesteps=False)
    assert caught.value.step == 4 and caught.value.loss_name == "critic_loss"


def test_an_eager_actor_loss_failure_saves_the_critic_update_of_its_step_and_says_so(random_dataset_path, tmp_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=0, **TINY).learn(3)
    before = {name: p.detach().clone() for name, p in agent.critic.named_parameters()}
    actor_before = {name: p.detach().clone() for name, p in agent.actor.named_parameters()}
    agent._actor_losses = lambda *args: (torch.tensor(float("nan")), torch.tensor(0.0))  # learn wraps it anew
    stopped = r"consistency_loss became nan at gradient step 4.*before consistency_loss's update.*step 4 made before"
    with pytest.raises(NonFiniteLossError, match=stopped):
        agent.learn(10, reset_num_timesteps=False, checkpoint_path=tmp_path / "ckpt")
    saved = GTPAgent.load(tmp_path / "ckpt", device="cpu")
    assert not all(torch.equal(p, before[name]) for name, p in saved.critic.named_parameters())
    assert all(torch.equal(p, actor_before[name]) for name, p in saved.actor.named_parameters())


def test_config_checks(random_dataset_path):
    with pytest.raises(ValueError, match="sampling_steps"):
        GTPAgent("Hopper-v5", random_dataset_path, sampling_steps=0, **TINY)
    with pytest.raises(ValueError, match="action_candidates must be an integer >= 1"):
        GTPAgent("Hopper-v5", random_dataset_path, action_candidates=0, **TINY)
    with pytest.raises(ValueError, match="tau_sampling must be one of"):
        GTPAgent("Hopper-v5", random_dataset_path, tau_sampling="index", **TINY)
    with pytest.raises(ValueError, match="batch_size must be >= 2 with eta > 0"):
        GTPAgent("Hopper-v5", random_dataset_path, **{**TINY, "batch_size": 1})
    GTPConfig(batch_size=1, eta=0.0).validate()  # GTP-BC normalises no advantages
    with pytest.raises(ValueError, match="lambda_flow must be >= 0"):
        GTPConfig(lambda_flow=-1.0).validate()
    with pytest.raises(ValueError, match="eta must be >= 0"):
        GTPConfig(eta=-1).validate()
    with pytest.raises(KeyError, match="no paper settings"):
        GTPConfig.for_dataset("pong-v0")
    assert GTPConfig.for_dataset("hopper-medium-v2").eta == 1.0
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="teacher_ema must be in"):
            GTPConfig(teacher_ema=bad).validate()


def test_an_ensemble_of_critics_learns_apart_and_ranks_by_their_mean(random_dataset_path, tmp_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=5, **{**TINY, "critic_ensemble": 3}).learn(30)
    members = agent.critic_target.members
    assert len(members) == 3 and len(agent.critic.members) == 3
    first, second = (member.q1[0].weight for member in agent.critic.members[:2])
    assert not torch.equal(first, second)  # initialised and trained apart
    batch = agent.sample_batch(16)
    with torch.no_grad():
        obs, next_obs = batch["observations"], batch["next_observations"]
        actions = agent.sample_actions(next_obs, 2, deterministic=True)
        each = torch.stack([member.min_q(obs, batch["actions"]) for member in members])
        # TD targets: member by member, each from its own target network
        np.testing.assert_allclose(
            agent._next_value(next_obs, actions).numpy(),
            torch.stack([member.min_q(next_obs, actions) for member in members]).numpy(),
        )
        # ranking and V: the mean over members of each one's min Q
        np.testing.assert_allclose(
            agent.critic_target.min_q(obs, batch["actions"]).numpy(), each.mean(0).numpy(), rtol=1e-6
        )
    # each member's gradient is its own loss alone (summed losses, clipped member by member)
    q1, q2 = agent.critic(obs, batch["actions"])
    target = q1.detach() + 1.0
    loss, member_q = agent._critic_loss(obs, batch["actions"], target)
    lone_q1, lone_q2 = agent.critic.members[1](obs, batch["actions"])
    lone = ((lone_q1 - target[1]) ** 2).mean() + ((lone_q2 - target[1]) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, agent.critic.members[1].q1[0].weight)
    (lone_grad,) = torch.autograd.grad(lone, agent.critic.members[1].q1[0].weight)
    torch.testing.assert_close(grad, lone_grad)
    assert member_q.shape == (3, 16)
    # clipped member by member: each member's gradient norm comes down to the limit on its own
    big = 1e3 * ((q1 + q2) * torch.arange(1.0, 4.0)[:, None]).sum()
    norm = agent._step(agent.critic_optimizer, agent.critic.clip_groups(), big)
    member_norms = [torch.nn.utils.get_total_norm([p.grad for p in m.parameters()]) for m in agent.critic.members]
    torch.testing.assert_close(torch.stack(member_norms), torch.full((3,), agent.config.grad_norm), rtol=1e-4, atol=0)
    assert norm > 10 * agent.config.grad_norm  # the mean of the norms before clipping
    obs_raw = agent.transitions.observations[:4]
    loaded = GTPAgent.load(agent.save(tmp_path / "ensemble"), device="cpu")
    assert loaded.config.critic_ensemble == 3
    np.testing.assert_array_equal(loaded.predict(obs_raw)[0], agent.predict(obs_raw)[0])
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="critic_ensemble must be an integer >= 1"):
            GTPConfig(critic_ensemble=bad).validate()


def test_teacher_ema_moves_only_the_actor_teacher(random_dataset_path):
    # teacher_ema = 1: after a step the teacher (and acting network) is the student itself;
    # the step itself and the critic target (the shared ``ema`` rate) are the default's.
    def tensors(agent, name):
        return [p.detach().clone() for p in agent._modules()[name].parameters()]

    default = GTPAgent("Hopper-v5", random_dataset_path, seed=3, **TINY).learn(1)
    student = GTPAgent("Hopper-v5", random_dataset_path, seed=3, teacher_ema=1.0, **TINY).learn(1)
    for name in ("actor", "critic", "critic_target"):
        for mine, theirs in zip(tensors(student, name), tensors(default, name)):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    for teacher, actor in zip(tensors(student, "actor_ema"), tensors(student, "actor")):
        torch.testing.assert_close(teacher, actor, rtol=0, atol=0)
    assert not all(torch.equal(t, a) for t, a in zip(tensors(default, "actor_ema"), tensors(default, "actor")))
    # An explicit teacher_ema equal to ema trains exactly like the default (None).
    explicit = GTPAgent("Hopper-v5", random_dataset_path, seed=3, teacher_ema=0.005, **TINY).learn(3)
    default.learn(2, reset_num_timesteps=False)
    for name in explicit._modules():
        for mine, theirs in zip(tensors(explicit, name), tensors(default, name)):
            torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def _parameters(agent) -> list:
    return [p.detach().clone() for m in (agent.actor, agent.critic) for p in m.parameters()]


def test_compiled_losses_train_like_eager_and_an_impossible_compile_falls_back(random_dataset_path):
    eager = GTPAgent("Hopper-v5", random_dataset_path, seed=4, **TINY).learn(3)
    # "aot_eager" traces the losses with dynamo and AOTAutograd (what inductor compiles) without a C++ build.
    traced = GTPAgent("Hopper-v5", random_dataset_path, seed=4, **TINY).learn(3, compile="aot_eager")
    for a, b in zip(_parameters(eager), _parameters(traced)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.warns(RuntimeWarning, match="compile='no-such-backend': torch.compile cannot compile here"):
        fallen = GTPAgent("Hopper-v5", random_dataset_path, seed=4, **TINY).learn(3, compile="no-such-backend")
    for a, b in zip(_parameters(eager), _parameters(fallen)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # eager after the fallback: the same numbers
    with pytest.raises(ValueError, match="compile must be False, True or a torch.compile backend name"):
        GTPAgent("Hopper-v5", random_dataset_path, **TINY).learn(1, compile=3)


def test_flow_map_consistency_measures_how_actions_depend_on_k(trained):
    agent = trained
    gaps = agent.flow_map_consistency(steps=(1, 12), reference_steps=12, n_states=32)
    assert set(gaps) == {"stochastic K=1", "stochastic K=12", "deterministic K=1", "deterministic K=12"}
    assert gaps["stochastic K=12"] == 0.0 and gaps["deterministic K=12"] == 0.0  # K against itself
    assert gaps["stochastic K=1"] > 0 and gaps == agent.flow_map_consistency(steps=(1, 12), n_states=32)


def test_actor_losses_in_one_call_equal_the_two_losses_of_the_paper():
    torch.manual_seed(0)
    actor, teacher = FlowMapActor(11, 3, 32, 2), FlowMapActor(11, 3, 32, 2)
    obs, actions, noise = torch.randn(64, 11), torch.rand(64, 3) * 2 - 1, torch.randn(64, 3)
    u = torch.rand(64, 1) * 5 + 0.01
    t, tau, weights = u * 1.3, u * torch.rand(64, 1), torch.rand(64) * 3
    consistency, flow = actor_losses(actor, teacher, obs, actions, noise, t, u, tau, weights)
    torch.testing.assert_close(consistency, consistency_loss(actor, teacher, obs, actions, noise, t, u, tau, weights))
    torch.testing.assert_close(flow, flow_loss(actor, obs, actions, noise, t, weights))


def test_online_fine_tuning_acts_with_the_last_fit_and_refits_when_it_ends(random_dataset_path):
    """learn_online changes the weights every env step; predict does not refit each time, learn_online's end does."""
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=3, sampling_steps=2, **TINY).learn(10)
    fit = agent._fitted[2]
    seen = []

    def record(_locals, _globals) -> bool:
        seen.append(agent._fitted[2] is fit)
        return True

    agent.learn_online(total_timesteps=6, callback=record)
    assert seen == [True] * 6 and agent._fitted_at == agent.num_timesteps == 16 and agent._fitted[2] is not fit
