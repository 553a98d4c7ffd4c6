"""Training speed and acting latency of GTP, FQL and DeFlow beside a plain-PyTorch TD3+BC step, in one run.

Every method takes gradient steps on minibatches of 256 in interleaved blocks
(``harness.interleaved_timings``: load from other processes hits every method alike), each
step as ``learn`` takes it (``agents.steps.training_steps``, eager). FQL and DeFlow are timed at
the network sizes of their papers (4 x 512 GELU MLPs for the flow, the policy or refinement and
both Q heads) and at GTP's (its 256 x 3 flow-map actor and 256 x 2 Q heads, the common size);
GTP at its defaults; TD3+BC (``gtp_speed.TD3BCStep``) at GTP's sizes. Each step's matrix-product
work is counted (multiply-adds x 2; a backward pass counted as two forward passes, one where
only the input's gradient is needed), so a ratio of speeds can be read as work or as waste:
GFLOP/s is the rate at which a method turns its work into time.

Latency: ``predict`` on one observation, as a user calls it per env step: GTP at its default
(K = 5 steps, best of N = 50 by its critic) and at K = 2, N = 1; FQL (one network evaluation)
and DeFlow (``flow_steps`` = 10 flow evaluations and one refinement), at both sizes; a plain
MLP forward for scale. Untrained agents: the times do not depend on the weights.

    python benchmarks/agent_speed.py            # on an idle machine: about 5 minutes on 2 CPU cores
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from gtp_speed import TD3BCStep, flops_per_step, gtp_step
from harness import Settings, interleaved_timings, option, parse, write_results

from agents import DeFlowAgent, FQLAgent
from agents.gtp.networks import plain_mlp_actor
from agents.steps import training_steps
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

GTP_SIZES = dict(actor_hidden=256, actor_layers=3, critic_hidden=256, critic_layers=2)
"""GTP's network sizes, the common size FQL and DeFlow are also timed at."""
SIZES = {"GTP's sizes": GTP_SIZES, "paper sizes": {}}


@dataclasses.dataclass
class AgentSpeedSettings(Settings):
    dataset: str = option(DEFAULT_DATASET_ID, "Minari dataset id or path")
    rounds: int = option(20, "interleaved rounds of training steps")
    block: int = option(5, "steps per method and round")
    latency_rounds: int = option(100, "interleaved rounds (10 calls each) of predict on one observation")
    device: str = option("cpu", "torch device")
    name: str = option("agent_speed", "result file name")


def layers(in_dim: int, hidden: int, depth: int, out_dim: int) -> list[tuple[int, int]]:
    """The (input, output) sizes of an MLP's linear layers."""
    return [(in_dim, hidden)] + [(hidden, hidden)] * (depth - 1) + [(hidden, out_dim)]


def gflop(rows: int, sizes: list[tuple[int, int]], passes: float) -> float:
    """Matrix-product GFLOP of ``passes`` forward-pass equivalents of an MLP over ``rows`` rows."""
    return 2.0 * rows * sum(i * j for i, j in sizes) * passes / 1e9


def flow_agent_gflop(agent: FQLAgent) -> float:
    """Counted matrix-product GFLOP of one FQL or DeFlow gradient step (see the module docstring).

    Forward = 1 pass, forward + backward = 3, forward + backward to the input only (the actor's
    Q term through the critic's detached weights) = 2. FQL: next actions by the one-step policy,
    the target critic, the critic (trained), flow matching (trained), the distillation target
    (``flow_steps`` flow evaluations), the policy (trained) and its Q term. DeFlow: next actions by
    the flow's ``flow_steps`` evaluations and the refinement, the target critic, the critic,
    flow matching, the base action's ``flow_steps`` evaluations, the refinement (trained) and its Q term.
    """
    cfg, b, o, a = agent.config, agent.config.batch_size, agent.obs_dim, agent.act_dim
    flow = layers(o + a + 1, cfg.actor_hidden, cfg.actor_layers, a)
    policy = layers(o + a, cfg.actor_hidden, cfg.actor_layers, a)  # FQL's mu(s, z) or DeFlow's f(s, a)
    heads = 2 * gflop(b, layers(o + a, cfg.critic_hidden, cfg.critic_layers, 1), 1)  # both heads, one pass
    euler = gflop(b, flow, cfg.flow_steps)
    total = heads * (1 + 3 + 2) + gflop(b, flow, 3) + euler + gflop(b, policy, 1 + 3)
    return total + (euler if isinstance(agent, DeFlowAgent) else 0.0)


def flow_agent_step(cls: type[FQLAgent], dataset, device: str, **sizes):
    """``(agent, step)``: ``step()`` takes one gradient step of ``cls`` as ``learn`` takes it (eager)."""
    agent = cls(dataset.env_spec.id, dataset, seed=0, device=device, **sizes)
    steps = training_steps(agent, cuda_graph=False)

    def step() -> None:
        steps.step()
        agent.num_timesteps += 1

    return agent, step


def main(argv: list[str] | None = None) -> Path:
    s = parse(AgentSpeedSettings, argv)
    dataset = load_dataset(s.dataset)
    sync = torch.cuda.synchronize if str(s.device).startswith("cuda") else (lambda: None)
    gtp_agent, gtp = gtp_step(dataset, 5.0, None, s.device)
    agents, steps = {"GTP": gtp_agent}, {"GTP": gtp, "TD3+BC": TD3BCStep(gtp_agent, None)}
    work = {"GTP": flops_per_step(gtp_agent)["GTP"], "TD3+BC": flops_per_step(gtp_agent)["TD3+BC"]}
    for size, config in SIZES.items():
        for cls, label in ((FQLAgent, "FQL"), (DeFlowAgent, "DeFlow")):
            name = f"{label} ({size})"
            agents[name], steps[name] = flow_agent_step(cls, dataset, s.device, **config)
            work[name] = flow_agent_gflop(agents[name])
    micros = interleaved_timings({k: (lambda f=f: (f(), sync())) for k, f in steps.items()}, s.rounds, s.block)
    results = {
        name: {
            "us_per_step": us,
            "steps_per_second": 1e6 / us,
            "gflop_per_step": work[name],
            "gflop_per_second": work[name] * 1e6 / us,
            "ratio_to_td3bc": micros["TD3+BC"] / us,
        }
        for name, us in micros.items()
    }
    observation = np.asarray(dataset.observation_space.sample(), dtype=np.float32)
    mlp = plain_mlp_actor(gtp_agent.obs_dim, gtp_agent.act_dim).to(s.device).eval()
    tensor = torch.as_tensor(observation[None], device=s.device)
    calls = {"plain MLP": lambda: mlp(tensor).clamp(-1, 1).cpu()}
    calls["GTP (K=5, N=50)"] = lambda: gtp_agent.predict(observation)
    calls["GTP (K=2, N=1)"] = lambda: gtp_agent.predict(observation, sampling_steps=2, action_candidates=1)
    calls.update({name: (lambda a=agent: a.predict(observation)) for name, agent in agents.items() if name != "GTP"})
    with torch.inference_mode():
        latency = interleaved_timings(calls, s.latency_rounds)
    default = latency["GTP (K=5, N=50)"]
    latency = {name: {"us": us, "speedup_vs_gtp_default": default / us} for name, us in latency.items()}
    meta = {**s.recorded(), "batch_size": 256, "flow_steps": agents["FQL (paper sizes)"].config.flow_steps}
    meta["critic_ensemble"] = gtp_agent.config.critic_ensemble
    data = {"meta": meta, "results": results, "latency": latency}
    title = "Training speed and acting latency of GTP, FQL and DeFlow beside a TD3+BC step (one run, interleaved)"
    return write_results(s, s.name, data, "agent_speed", title)


if __name__ == "__main__":
    main()
