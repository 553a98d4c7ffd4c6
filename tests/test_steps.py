"""learn's steppers (agents.steps): eager steps, and whole steps replayed from a CUDA graph.

The CUDA tests run where a GPU is (they were run on an H100 when written); on CPU-only
machines they are skipped and the CPU tests check the fallbacks and the portable
checkpoint form.
"""

import numpy as np
import pytest
import torch

from agents import GTPAgent, NonFiniteLossError
from agents.persistence import portable_state, restore_generator
from agents.steps import EagerSteps, GraphedSteps, make_capturable, training_steps

SMALL = dict(actor_hidden=64, actor_layers=2, critic_hidden=64, critic_layers=2, critic_ensemble=1, batch_size=64)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def parameters(agent):
    return {
        f"{m}.{n}": p.detach().cpu().clone()
        for m, module in agent._modules().items()
        for n, p in module.named_parameters()
    }


def test_cuda_graph_on_cpu_warns_and_trains_eagerly(random_dataset_path):
    eager = GTPAgent("Hopper-v5", random_dataset_path, seed=1, device="cpu", **SMALL).learn(5)
    with pytest.warns(RuntimeWarning, match="cuda_graph=True: the agent is on cpu"):
        graphed = GTPAgent("Hopper-v5", random_dataset_path, seed=1, device="cpu", **SMALL).learn(5, cuda_graph=True)
    for name, value in parameters(eager).items():
        assert torch.equal(value, parameters(graphed)[name]), name
    with pytest.raises(ValueError, match="cuda_graph must be True, False or 'auto'; got 'yes'"):
        graphed.learn(1, cuda_graph="yes")
    assert type(training_steps(graphed, "auto")) is EagerSteps  # "auto": graphs on CUDA only
    with pytest.raises(ValueError, match="cuda_graph needs a CUDA device"):
        GraphedSteps(graphed)
    assert isinstance(training_steps(graphed, False), EagerSteps)


def test_training_steps_outside_learn_are_learns_steps(random_dataset_path):
    """``training_steps(agent, cuda_graph, compile=...)``: learn's steps in a loop of one's own (for timing)."""
    learned = GTPAgent("Hopper-v5", random_dataset_path, seed=1, device="cpu", **SMALL).learn(5)
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=1, device="cpu", **SMALL)
    agent.target_timesteps = 5  # what learn(5) plans Eq. 76's schedule for
    steps = training_steps(agent, False, compile=False)
    for _ in range(5):
        steps.step()
        agent.num_timesteps += 1
    for name, value in parameters(learned).items():
        assert torch.equal(value, parameters(agent)[name]), name
    with pytest.raises(ValueError, match="compile must be False, True or a torch.compile backend name"):
        training_steps(agent, False, compile=3)


class ResampledGTP(GTPAgent):
    """An agent class that draws its batches its own way, overriding ``sample_batch`` whole."""

    def sample_batch(self, batch_size):
        return super().sample_batch(batch_size)


def test_an_agent_overriding_sample_batch_is_not_graphed(random_dataset_path):
    agent = ResampledGTP("Hopper-v5", random_dataset_path, seed=1, device="cpu", **SMALL)
    with pytest.warns(RuntimeWarning, match="ResampledGTP overrides sample_batch.*override those instead"):
        assert type(training_steps(agent, True)) is EagerSteps


def test_checkpoints_hold_the_ordinary_optimizer_form(random_dataset_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=1, device="cpu", **SMALL).learn(2)
    optimizer = agent.actor_optimizer
    make_capturable(optimizer, True)
    assert optimizer.param_groups[0]["capturable"]
    state = portable_state(optimizer)
    assert not state["param_groups"][0]["capturable"] and state["param_groups"][0]["fused"] is None
    assert all(values["step"].device.type == "cpu" for values in state["state"].values())
    make_capturable(optimizer, False)
    assert not optimizer.param_groups[0]["capturable"]


@cuda
@pytest.mark.parametrize("critics", [1, 5])  # the paper's critic and the default's five
def test_graphed_steps_follow_the_eager_steps(random_dataset_path, critics):
    # 40 steps planned: the noise grid of Eq. 76 grows every 6 steps, so the graph is recaptured several times.
    options = dict(seed=4, device="cuda", **{**SMALL, "critic_ensemble": critics})
    eager = GTPAgent("Hopper-v5", random_dataset_path, **options).learn(40, cuda_graph=False)
    graphed = GTPAgent("Hopper-v5", random_dataset_path, **options)
    stepper = training_steps(graphed, "auto")
    assert type(stepper) is GraphedSteps
    stepper.close()
    graphed.learn(40)  # cuda_graph="auto": graphed on CUDA
    assert graphed.num_timesteps == 40
    for name, value in parameters(eager).items():
        torch.testing.assert_close(parameters(graphed)[name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert eager._batch_rng.bit_generator.state == graphed._batch_rng.bit_generator.state
    assert torch.equal(eager.generator.get_state(), graphed.generator.get_state())
    assert not graphed.actor_optimizer.param_groups[0]["capturable"]  # ordinary form again after learn
    observations = np.stack([graphed.env.observation_space.sample() for _ in range(4)])
    # Acting after replays uses the replayed weights (no stale sampling plan), as the eager agent's do.
    np.testing.assert_allclose(graphed.predict(observations)[0], eager.predict(observations)[0], atol=1e-3)


@cuda
def test_acting_between_replays_leaves_the_captured_step_whole(random_dataset_path):
    # Acting between steps caches the EMA actor's sampling plan of the training K. A
    # recapture must record the plan's computation, not read that cache (whose tensors a
    # replay would then read, frozen or freed, until the next recapture).
    options = dict(seed=4, device="cuda", fitted_sampling_steps=(), **SMALL)
    agents = [GTPAgent("Hopper-v5", random_dataset_path, **options) for _ in range(2)]
    observations = agents[0].transitions.observations[:8]

    def acting(agent):
        def callback(local_vars, global_vars):
            agent.predict(observations, sampling_steps=agent.config.train_sampling_steps)
            return True

        return callback

    eager, graphed = agents
    eager.learn(40, cuda_graph=False, callback=acting(eager))
    graphed.learn(40, cuda_graph=True, callback=acting(graphed))
    for name, value in parameters(eager).items():
        torch.testing.assert_close(parameters(graphed)[name], value, rtol=1e-4, atol=1e-5, msg=name)


@cuda
def test_graphed_metrics_and_checkpoints_resume_anywhere(random_dataset_path, tmp_path):
    logged = []

    class Logger:
        def log(self, metrics, step=None):
            logged.append(metrics)

        def finish(self):
            pass

    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=2, device="cuda", **{**SMALL, "critic_ensemble": 3})
    agent.learn(20, cuda_graph=True, log_interval=10, run_logger=Logger(), checkpoint_path=tmp_path / "c")
    train = [m for m in logged if "train/critic_loss" in m]
    assert len(train) == 2 and all(np.isfinite(v) for m in train for v in m.values())
    # Written mid-run while Adam was capturable, the checkpoint holds the ordinary form and resumes eagerly.
    resumed = GTPAgent("Hopper-v5", random_dataset_path, seed=2, device="cuda", **{**SMALL, "critic_ensemble": 3})
    assert resumed.learn(24, checkpoint_path=tmp_path / "c", resume=True).num_timesteps == 24
    assert not resumed.critic_optimizer.param_groups[0]["capturable"]


@cuda
def test_a_non_finite_loss_in_a_replay_restores_the_previous_step(random_dataset_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=0, device="cuda", **SMALL)
    after_step_10 = {}

    def overflow_rewards_after_step_10(local_vars, global_vars) -> bool:
        if agent.num_timesteps == 10:  # graphs are replaying by now (3 warm-up steps, then captures)
            after_step_10.update(parameters(agent))
            agent._data["rewards"].fill_(1e38)  # in place: the graph reads this tensor; TD targets overflow
        return True

    with pytest.raises(NonFiniteLossError, match=r"critic_loss became inf at gradient step 11"):
        agent.learn(30, cuda_graph=True, callback=overflow_rewards_after_step_10)
    assert agent.num_timesteps == 10
    for name, value in parameters(agent).items():
        assert torch.equal(value, after_step_10[name]), name


@cuda
def test_a_checkpoint_written_on_cpu_loads_and_trains_on_cuda(random_dataset_path, tmp_path):
    cpu = GTPAgent("Hopper-v5", random_dataset_path, seed=3, device="cpu", **SMALL).learn(3)
    cpu.save(tmp_path / "m")
    with pytest.warns(RuntimeWarning, match="another device type's"):
        loaded = GTPAgent.load(tmp_path / "m", dataset=random_dataset_path, device="cuda")
    observations = np.stack([loaded.env.observation_space.sample() for _ in range(2)])
    np.testing.assert_allclose(loaded.predict(observations)[0], cpu.predict(observations)[0], atol=1e-4)
    assert loaded.learn(5, reset_num_timesteps=False, cuda_graph=True).num_timesteps == 8


def test_weights_changed_drops_sampling_plans_that_version_counters_cannot_see(random_dataset_path):
    # A graph replay writes the weights as `.data` writes do: without bumping version counters.
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=6, device="cpu", **SMALL).learn(3)
    actor, times = agent.actor_ema, agent._times(2)
    obs, noise = agent._data["observations"][:5], torch.randn(5, agent.act_dim)

    def chained_forward():  # Eq. 15 step by step, through forward: no cached plan
        a = noise * times[0]
        with torch.no_grad():
            for t, tau in zip(times[:-1], times[1:]):
                a = actor(obs, a, torch.full((5, 1), t), torch.full((5, 1), tau))
        return a

    torch.testing.assert_close(actor.sample(obs, times, noise), chained_forward())
    for parameter in actor.parameters():
        parameter.data.mul_(0.5)  # no version bump: the cached plan still looks fresh, and is stale
    assert not torch.allclose(actor.sample(obs, times, noise), chained_forward(), atol=1e-4)
    agent._weights_changed()
    torch.testing.assert_close(actor.sample(obs, times, noise), chained_forward())


def test_a_random_state_of_another_device_kind_reseeds_the_generator_with_a_warning(random_dataset_path):
    agent = GTPAgent("Hopper-v5", random_dataset_path, seed=7, device="cpu", **SMALL)
    cuda_kind_state = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset
    with pytest.warns(RuntimeWarning, match="another device type's than this agent's"):
        restore_generator(agent, cuda_kind_state, step=40)
    expected = torch.Generator().manual_seed(7 * 1_000_003 + 40).get_state()
    assert torch.equal(agent.generator.get_state(), expected)
    own = agent.generator.get_state()
    restore_generator(agent, own, step=0)  # its own kind: restored as saved, no warning
    assert torch.equal(agent.generator.get_state(), own)
