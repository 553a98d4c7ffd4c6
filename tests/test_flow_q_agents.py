"""FQLAgent and DeFlowAgent: the gradient semantics of the official code, the trust region, IAV, bad input.

The shared life cycle (save/load, resume, callbacks, NaN guard, predict, evaluate) is
checked for both in ``tests/test_agent_contract.py``; here is what is special to them.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from agents import DeFlowAgent, FQLAgent, intrinsic_action_variance, load_agent
from agents.fql.agent import require_rewards
from agents.fql.losses import distillation_loss, flow_matching_loss
from ctflow_gym.cli import main
from ctflow_gym.data.transitions import load_transitions

TINY = dict(actor_hidden=32, actor_layers=2, critic_hidden=32, critic_layers=2, batch_size=64, flow_steps=3)


def gradients(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.clone() for p in module.parameters()]


def actor_inputs(agent, rows: int = 32):
    batch = agent.sample_batch(rows)
    generator = torch.Generator().manual_seed(5)
    x0, z = (torch.randn(rows, agent.act_dim, generator=generator) for _ in range(2))
    t = torch.rand(rows, 1, generator=generator)
    return batch["observations"], batch["actions"], x0, t, z


def backward_actor_loss(agent, inputs) -> dict[str, torch.Tensor]:
    agent.optimizer.zero_grad(set_to_none=True)
    loss, parts = agent._actor_loss(*inputs)
    loss.backward()
    return parts


def trained(cls, dataset, **overrides):
    """A tiny agent after 20 steps (seed 2): its networks and critic are no longer at their initialisation."""
    return cls("Hopper-v5", dataset, device="cpu", seed=2, **{**TINY, **overrides}).learn(20)


@pytest.fixture(scope="module")
def fql(random_dataset_path):
    return trained(FQLAgent, random_dataset_path)


@pytest.fixture(scope="module")
def deflow(random_dataset_path):
    return trained(DeFlowAgent, random_dataset_path)


def test_fql_flow_is_trained_by_flow_matching_alone(fql):
    """The distillation target ODE(v, z) carries no gradient: the flow's gradient is L_Flow's, nothing more."""
    inputs = actor_inputs(fql)
    backward_actor_loss(fql, inputs)
    from_actor_loss = gradients(fql.flow)
    fql.optimizer.zero_grad(set_to_none=True)
    flow_matching_loss(fql.flow, *inputs[:4]).backward()
    for got, expected in zip(from_actor_loss, gradients(fql.flow)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_fql_actor_loss_leaves_the_critic_alone_but_its_q_term_reaches_the_policy(fql):
    """The critic gets no gradient from the actor's loss; the one-step policy gets -Q's through the action."""
    inputs = actor_inputs(fql)
    observations, _, _, _, z = inputs
    backward_actor_loss(fql, inputs)
    assert all(g is None for g in gradients(fql.critic)), "the actor's loss must not train the critic"
    from_actor_loss = gradients(fql.policy)

    frozen_critic = copy.deepcopy(fql.critic).requires_grad_(False)
    target = fql.flow_actions(observations, z)
    fql.optimizer.zero_grad(set_to_none=True)
    mu = fql.policy(observations, z)
    expected = fql.config.alpha * distillation_loss(mu, target) - frozen_critic(observations, mu.clamp(-1, 1)).mean()
    expected.backward()
    for got, want in zip(from_actor_loss, gradients(fql.policy)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)

    fql.optimizer.zero_grad(set_to_none=True)
    (fql.config.alpha * distillation_loss(fql.policy(observations, z), target)).backward()
    without_q = gradients(fql.policy)
    assert any(not torch.allclose(a, b) for a, b in zip(from_actor_loss, without_q)), "the Q term must reach mu"


def test_fql_normalised_q_loss_is_scale_free(random_dataset_path):
    """normalize_q_loss divides -Q by mean |Q| without gradient: a critic scaled by c gives the same gradient."""
    agent = trained(FQLAgent, random_dataset_path, normalize_q_loss=True)
    inputs = actor_inputs(agent)
    backward_actor_loss(agent, inputs)
    before = gradients(agent.policy)
    with torch.no_grad():
        for head in agent.critic.heads:
            head[-1].weight.mul_(7.0)
            head[-1].bias.mul_(7.0)
    backward_actor_loss(agent, inputs)
    for a, b in zip(before, gradients(agent.policy)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_deflow_refinement_reaches_only_the_refiner_and_lambda(deflow):
    """L_Refine trains f_phi; the flow gets L_Flow's gradient only, the critic none; the base action is a constant."""
    inputs = actor_inputs(deflow)
    backward_actor_loss(deflow, inputs)
    assert all(g is None for g in gradients(deflow.critic))
    assert all(g is not None and g.abs().sum() > 0 for g in gradients(deflow.refiner))
    from_actor_loss = gradients(deflow.flow)
    deflow.optimizer.zero_grad(set_to_none=True)
    flow_matching_loss(deflow.flow, *inputs[:4]).backward()
    for got, expected in zip(from_actor_loss, gradients(deflow.flow)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("trust_region, direction", [(1e-12, "grows"), (1e6, "shrinks")])
def test_deflow_multiplier_moves_toward_the_trust_region(random_dataset_path, trust_region, direction):
    """The dual step raises lambda while mean(delta_a^2) > delta and lowers it below."""
    agent = trained(DeFlowAgent, random_dataset_path, target_divergence=trust_region)
    parts = backward_actor_loss(agent, actor_inputs(agent))
    gradient = float(agent.multiplier.log_value.grad)
    assert float(parts["residual_square"].detach()) > 0
    assert (gradient < 0) if direction == "grows" else (gradient > 0)  # descent on log lambda


def test_deflow_acts_with_the_refined_flow_and_bootstraps_from_it(random_dataset_path):
    """a = clip(ODE(v, z) + f(s, ODE(v, z))), and the TD target's next action is that one."""
    agent = trained(DeFlowAgent, random_dataset_path)
    with torch.no_grad():
        last = agent.refiner.net[-1]
        last.weight.zero_()
        last.bias.fill_(0.25)
    observations = agent._data["observations"][:16]
    z = torch.zeros(16, agent.act_dim)
    expected = (agent.flow_actions(observations, z) + 0.25).clamp(-1, 1)
    torch.testing.assert_close(agent.policy_actions(observations, z), expected)
    unit, _ = agent.predict(agent.transitions.observations[:16])
    torch.testing.assert_close(torch.as_tensor(agent.to_unit_actions(unit)), expected, rtol=0, atol=1e-5)

    batch = agent.sample_batch(16)
    noise = {name: torch.randn(16, agent.act_dim) for name in ("x0", "z", "next")}
    noise["t"] = torch.rand(16, 1)
    loss_critic, *_ = agent._compute_losses(batch, noise)
    with torch.no_grad():
        next_actions = agent.policy_actions(batch["next_observations"], noise["next"])
        next_q = agent.critic_target(batch["next_observations"], next_actions).mean(0)
        target = batch["rewards"] + agent.config.gamma * (1 - batch["terminations"]) * next_q
        expected_loss = ((agent.critic(batch["observations"], batch["actions"]) - target) ** 2).mean()
    torch.testing.assert_close(loss_critic, expected_loss)


def test_intrinsic_action_variance_by_hand():
    """Six 1-D states in two clusters of three, k = 3: each state's neighbours are its cluster."""
    observations = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.5]])
    actions = np.array([[0.0, 0.0], [0.2, 0.0], [0.4, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    first = np.var([0.0, 0.2, 0.4])  # 0.02667
    second = np.var([1.0, -1.0, 1.0])  # 0.88889
    expected = (3 * first + 3 * second) / 6 / 2  # mean over states, then over the two action dimensions
    assert intrinsic_action_variance(observations, actions, neighbours=3) == pytest.approx(expected, rel=1e-9)
    sampled = intrinsic_action_variance(observations, actions, neighbours=3, max_states=2, seed=0)
    assert any(sampled == pytest.approx(v / 2, rel=1e-9) for v in (first, second, (first + second) / 2))
    with pytest.raises(ValueError, match="neighbours: the trust region delta cannot be derived from 6 states"):
        intrinsic_action_variance(observations, actions, neighbours=7)
    with pytest.raises(ValueError, match="neighbours must be an integer >= 2"):
        intrinsic_action_variance(observations, actions, neighbours=1)


def test_deflow_trust_region_is_derived_saved_and_overridable(deflow, random_dataset_path, tmp_path):
    """delta = iav_scale x IAV of the attached data; saved with the agent; target_divergence overrides it."""
    assert deflow.trust_region == pytest.approx(deflow.intrinsic_action_variance()) and deflow.trust_region > 0
    deflow.save(tmp_path / "deflow")
    loaded = load_agent(tmp_path / "deflow", device="cpu")
    assert loaded.trust_region == deflow.trust_region
    explicit = DeFlowAgent("Hopper-v5", random_dataset_path, device="cpu", target_divergence=0.003, **TINY)
    assert explicit.trust_region == 0.003
    halved = DeFlowAgent("Hopper-v5", random_dataset_path, device="cpu", seed=2, iav_scale=0.5, **TINY)
    assert halved.trust_region == pytest.approx(0.5 * deflow.trust_region)


def test_predict_is_reproducible_when_deterministic(fql, deflow):
    observation = fql.transitions.observations[:4]
    for agent in (fql, deflow):
        first, _ = agent.predict(observation)
        second, _ = agent.predict(observation)
        np.testing.assert_array_equal(first, second)
        noisy = [agent.predict(observation, deterministic=False)[0] for _ in range(2)]
        assert not np.array_equal(noisy[0], noisy[1])


@pytest.mark.parametrize(
    "cls, setting, message",
    [
        (FQLAgent, dict(alpha=0.0), "alpha must be > 0"),
        (FQLAgent, dict(alpha=-1.0), "alpha must be > 0"),
        (FQLAgent, dict(flow_steps=0), "flow_steps must be an integer >= 1"),
        (DeFlowAgent, dict(flow_steps=0), "flow_steps must be an integer >= 1"),
        (DeFlowAgent, dict(target_divergence=0.0), "target_divergence .* must be > 0"),
        (DeFlowAgent, dict(target_divergence=-0.1), "target_divergence .* must be > 0"),
        (DeFlowAgent, dict(iav_neighbours=1), "iav_neighbours must be >= 2"),
        (FQLAgent, dict(q_agg="max"), "q_agg must be one of"),
        # A numpy integer would pass here and break the checkpoint's JSON at save time.
        (FQLAgent, dict(batch_size=np.int64(64)), "batch_size must be an integer >= 1"),
    ],
)
def test_bad_settings_are_named(random_dataset_path, cls, setting, message):
    with pytest.raises(ValueError, match=message):
        cls("Hopper-v5", random_dataset_path, device="cpu", **setting)


def test_deflow_does_not_know_alpha(random_dataset_path):
    with pytest.raises(TypeError, match="unknown DeFlowAgent arguments: \\['alpha'\\]"):
        DeFlowAgent("Hopper-v5", random_dataset_path, device="cpu", alpha=1.0)


def test_discrete_actions_and_reward_free_data_are_refused(random_dataset_path):
    with pytest.raises(TypeError, match="env: a continuous 1-D Box action space is required"):
        FQLAgent("CartPole-v1", None)
    transitions = load_transitions(random_dataset_path)
    require_rewards(transitions)
    flat = replace(transitions, rewards=np.zeros_like(transitions.rewards))
    with pytest.raises(ValueError, match="dataset: every reward is 0.0; this agent learns a critic from rewards"):
        require_rewards(flat)


def test_cli_trains_both(random_dataset_path, tmp_path, capsys):
    """``ctflow agent train --agent fql|deflow`` with their flags; a flag of the other agent is refused."""
    common = ["--dataset", str(random_dataset_path), "--steps", "4", "--batch-size", "16", "--eval-episodes", "1"]
    common += ["--device", "cpu", "--no-progress", "--flow-steps", "2"]
    assert main(["agent", "train", "--agent", "fql", "--alpha", "3", *common, "--out", str(tmp_path / "f")]) == 0
    assert "FQLAgent (4 steps) saved to" in capsys.readouterr().out
    flags = ["--target-divergence", "0.01", *common, "--out", str(tmp_path / "d")]
    assert main(["agent", "train", "--agent", "deflow", *flags]) == 0
    assert "DeFlowAgent (4 steps) saved to" in capsys.readouterr().out
    assert load_agent(tmp_path / "d" / "model", device="cpu").trust_region == 0.01
    assert main(["agent", "train", "--agent", "deflow", "--alpha", "3", *common, "--out", str(tmp_path / "x")]) == 2
    assert "--alpha: agent 'deflow' has no alpha setting" in capsys.readouterr().err
