"""Training speed of GTP, GTP-BC and a TD3+BC step of the same sizes, eager, compiled and graphed, in one run.

Every method takes gradient steps on minibatches (256) of the dataset in interleaved blocks
(``harness.interleaved_timings``: load from other processes hits every method alike, so the
ratios compare like with like). GTP and GTP-BC (eta 5 / 0) step exactly as ``learn`` does
(``agents.steps.training_steps``), eager and with compiled losses (inductor); TD3+BC is a plain
PyTorch step (Fujimoto & Gu 2021: target policy smoothing, policy delay 2, alpha 2.5) with GTP's
network sizes, eager and compiled. On CUDA two more modes: ``graph`` (the whole step replayed
from a CUDA graph, ``learn(cuda_graph=True)``; TD3+BC graphed the same way) and
``compiled+graph``; every timed CUDA step ends with a synchronisation. ``--learn-steps N`` also
times GTP's whole ``learn`` (N steps after a warm-up call) per mode; ``--peer-python`` (a Python
with d3rlpy 2.8, as ``gtp_vs_peers.py`` makes it) times d3rlpy's IQL and TD3+BC too. The
matrix-product work per step is counted, which bounds what any implementation reaches.

How the committed files were made (the H100 ones with the d3rlpy venv's Python as ``--peer-python``)::

    python benchmarks/gtp_speed.py --critic-ensemble 1                          # gtp_speed
    python benchmarks/gtp_speed.py --no-compile                                 # gtp_speed_ensemble5
    python benchmarks/gtp_speed.py --device cuda --rounds 20 --learn-steps 3000 --critic-ensemble 1 \\
        --name gtp_speed_cuda --peer-python PY                                  # gtp_speed_cuda
    python benchmarks/gtp_speed.py --device cuda --rounds 10 --learn-steps 1000 --no-compile \\
        --name gtp_speed_cuda_ensemble5                                         # gtp_speed_cuda_ensemble5
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gtp_vs_peers import LABELS, export_transitions, run_peer
from harness import Settings, interleaved_timings, option, parse, write_results

from agents import GTPAgent, GTPConfig
from agents.compilation import CompiledOrEager
from agents.steps import WARMUP_STEPS, training_steps
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset
from ctflow_gym.models import DoubleQ
from ctflow_gym.models.mlp import MLP


@dataclasses.dataclass
class SpeedSettings(Settings):
    dataset: str = option(DEFAULT_DATASET_ID, "Minari dataset id or path")
    rounds: int = option(30, "interleaved rounds")
    block: int = option(10, "steps per method and round")
    device: str = option("cpu", "torch device")
    compile: bool = option(True, "also time compiled losses (--no-compile: eager only, skips minutes of compiling)")
    critic_ensemble: int = option(GTPConfig.critic_ensemble, "GTP's critics")
    learn_steps: int = option(500, "also time learn() for this many steps (0: not)")
    peer_python: str | None = option(None, "a Python with d3rlpy 2.8: also time its IQL and TD3+BC")
    peer_steps: int = option(3000, "steps of each d3rlpy timing run")
    name: str | None = option(None, "result file name (default gtp_speed, gtp_speed_ensemble<M> for M > 1 critics)")


class TD3BCStep:
    """One TD3+BC gradient step (critic every step; actor and targets every ``policy_delay``).

    Draws its minibatches from its own copy of the agent's normalised transitions. With
    ``graph=True`` (CUDA) the two kinds of step are each captured in a CUDA graph after three
    eager warm-up steps and replayed, the indices drawn on the host and copied in, as
    ``learn(cuda_graph=True)`` does for GTP.
    """

    def __init__(self, agent: GTPAgent, backend: str | None, graph: bool = False, alpha: float = 2.5, delay: int = 2):
        cfg, device, t = agent.config, agent.device, agent.transitions
        torch.manual_seed(0)
        self.actor = MLP(agent.obs_dim, agent.act_dim, cfg.actor_hidden, cfg.actor_layers).to(device)
        self.critic = DoubleQ(agent.obs_dim, agent.act_dim, cfg.critic_hidden, cfg.critic_layers).to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, capturable=graph)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, capturable=graph)
        tensor = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=device)  # noqa: E731
        self.data = {
            "observations": tensor(agent.stats.normalize_observations(t.observations)),
            "actions": tensor(agent.to_unit_actions(t.actions)),
            "rewards": tensor(t.rewards),
            "next_observations": tensor(agent.stats.normalize_observations(t.next_observations)),
            "terminations": tensor(t.terminations),
        }
        self.rng, self.batch_size, self.alpha, self.delay, self.steps = (
            np.random.default_rng(0),
            cfg.batch_size,
            alpha,
            delay,
            0,
        )
        self.graph, self.graphs = graph, {}
        self.host_index = torch.empty(cfg.batch_size, dtype=torch.long).pin_memory() if graph else None
        self.index = torch.zeros(cfg.batch_size, dtype=torch.long, device=device)
        self.critic_loss = CompiledOrEager(self.critic_objective, backend)
        self.actor_loss = CompiledOrEager(self.actor_objective, backend)

    def critic_objective(self, obs, actions, rewards, next_obs, terminations):
        with torch.no_grad():
            noise = (torch.randn_like(actions) * 0.2).clamp(-0.5, 0.5)
            next_actions = (torch.tanh(self.actor_target(next_obs)) + noise).clamp(-1.0, 1.0)
            target = rewards + 0.99 * (1.0 - terminations) * self.critic_target.min_q(next_obs, next_actions)
        q1, q2 = self.critic(obs, actions)
        return ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()

    def actor_objective(self, obs, actions):
        policy_actions = torch.tanh(self.actor(obs))
        q = self.critic.q1(torch.cat([obs, policy_actions], dim=-1)).squeeze(-1)
        return -self.alpha / q.abs().mean().detach() * q.mean() + ((policy_actions - actions) ** 2).mean()

    def __call__(self) -> None:
        with_actor = (self.steps + 1) % self.delay == 0
        indices = self.rng.integers(0, len(self.data["rewards"]), self.batch_size)
        if not self.graph:
            self.update(torch.as_tensor(indices, device=self.index.device), with_actor)
        else:
            self.host_index.numpy()[:] = indices
            self.index.copy_(self.host_index, non_blocking=True)
            if self.steps < 3:  # warm-up, on a side stream as capture requires
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    self.update(self.index, with_actor)
                torch.cuda.current_stream().wait_stream(side)
            else:
                if with_actor not in self.graphs:
                    torch.cuda.synchronize()
                    self.graphs[with_actor] = graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        self.update(self.index, with_actor)
                self.graphs[with_actor].replay()
        self.steps += 1

    def update(self, index: torch.Tensor, with_actor: bool) -> None:
        b = {name: values[index] for name, values in self.data.items()}
        obs, actions = b["observations"], b["actions"]
        loss = self.critic_loss(obs, actions, b["rewards"], b["next_observations"], b["terminations"])
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        if with_actor:
            loss = self.actor_loss(obs, actions)
            self.actor_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.actor_optimizer.step()
            with torch.no_grad():
                for target, source in ((self.actor_target, self.actor), (self.critic_target, self.critic)):
                    for t, s in zip(target.parameters(), source.parameters()):
                        t.lerp_(s, 0.005)


def gtp_step(dataset, eta: float, backend: str | None, device: str = "cpu", graph: bool = False, **config):
    """``(agent, step)``: ``step()`` takes one GTPAgent gradient step (eta 0: GTP-BC) as ``learn`` takes it."""
    agent = GTPAgent(dataset.env_spec.id, dataset, eta=eta, seed=0, device=device, **config)
    agent.target_timesteps = 1_000_000  # the schedule of Eq. 76 as planned for a long run
    steps = training_steps(agent, cuda_graph=graph, compile=backend or False)

    def step() -> None:
        steps.step()
        agent.num_timesteps += 1

    return agent, step


def flops_per_step(agent: GTPAgent) -> dict[str, float]:
    """Counted matrix-product GFLOP (multiply-adds x 2) of one GTP step and one TD3+BC step of the same sizes."""
    o, a, h, b = agent.obs_dim, agent.act_dim, agent.config.actor_hidden, agent.config.batch_size
    flops = lambda rows, sizes, passes: 2.0 * rows * sum(i * j for i, j in sizes) * passes  # noqa: E731
    actor, head = [(o + a + 32, h), (h, h), (h, h), (h, a)], [(o + a, h), (h, h), (h, 1)]
    td3_actor = [(o, h), (h, h), (h, h), (h, a)]
    # GTP: K = 2 sampling at s' and s (2B rows x 2 jumps); target and V critics (2 heads each) and the critic
    # forward + backward, once per member of an ensemble; the student twice (consistency, flow) forward +
    # backward; the teacher forward. TD3+BC: target actor and critic, critic forward + backward; every second
    # step the actor and q1 forward + backward. Forward = 1 pass, backward = 2.
    m = agent.config.critic_ensemble
    gtp = flops(2 * b, actor, 2) + m * (flops(b, head, 2 * 2) + flops(b, head, 2 * 3))
    gtp += flops(b, actor, 2 * 3) + flops(b, actor, 1)
    td3 = flops(b, td3_actor, 1) + flops(b, head, 2) + flops(b, head, 2 * 3)
    td3 += 0.5 * (flops(b, td3_actor, 3) + flops(b, head, 3))
    return {"GTP": gtp / 1e9, "TD3+BC": td3 / 1e9, "ratio": td3 / gtp}


def speed_modes(device: str, compile: bool) -> dict[str, tuple[str | None, bool]]:
    """The modes timed: name -> (torch.compile backend or None, CUDA graph); graphs on CUDA only."""
    modes = {"eager": (None, False), "compiled": ("inductor", False)}
    if str(device).startswith("cuda"):
        modes.update({"graph": (None, True), "compiled+graph": ("inductor", True)})
    return {mode: value for mode, value in modes.items() if compile or value[0] is None}


def measure_speed(dataset, device: str, rounds: int, block: int, compile: bool, **config) -> dict:
    """Steps/s of GTP, GTP-BC and the TD3+BC step in every mode of :func:`speed_modes`, interleaved.

    Each result has ``us_per_step``, ``steps_per_second``, ``first_step_seconds`` (compiling or
    capturing, where it does) and, for GTP and GTP-BC, ``ratio_to_td3bc_same_mode``.
    """
    modes = speed_modes(device, compile)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    functions, first_seconds = {}, {}
    for mode, (backend, graph) in modes.items():
        first_steps = WARMUP_STEPS + 2 if graph else 1  # through warm-up and capture
        for name, eta in (("GTP", 5.0), ("GTP-BC", 0.0)):
            agent, step = gtp_step(dataset, eta, backend, device, graph, **config)
            functions[f"{name} {mode}"] = lambda step=step: (step(), sync())
        functions[f"TD3+BC {mode}"] = lambda td3=TD3BCStep(agent, backend, graph): (td3(), sync())
        for name in ("GTP", "GTP-BC", "TD3+BC"):
            started = time.perf_counter()
            for _ in range(first_steps + (name == "TD3+BC")):
                functions[f"{name} {mode}"]()
            first_seconds[f"{name} {mode}"] = time.perf_counter() - started
    started = time.perf_counter()
    micros = interleaved_timings(functions, rounds, block)
    results = {
        name: {"us_per_step": us, "steps_per_second": 1e6 / us, "first_step_seconds": first_seconds[name]}
        for name, us in micros.items()
    }
    for name, result in results.items():
        if not name.startswith("TD3+BC"):
            result["ratio_to_td3bc_same_mode"] = micros["TD3+BC " + name.split(" ", 1)[1]] / micros[name]
    return {
        "results": results,
        "matmul_gflop_per_step": flops_per_step(agent),
        "timing_minutes": (time.perf_counter() - started) / 60,
        "modes": {mode: {"compile": backend, "cuda_graph": graph} for mode, (backend, graph) in modes.items()},
    }


def learn_speed(dataset, device: str, steps: int, compile: bool, **config) -> dict[str, float]:
    """GTP's (eta 5) steps/s through ``learn`` itself, per mode of :func:`speed_modes` (after a warm-up call)."""
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    speeds = {}
    for mode, (backend, graph) in speed_modes(device, compile).items():
        agent = GTPAgent(dataset.env_spec.id, dataset, eta=5.0, seed=0, device=device, **config)
        options = dict(compile=backend or False, cuda_graph=graph, log_interval=1000)
        agent.learn(WARMUP_STEPS + 50, **options)
        sync()
        started = time.perf_counter()
        agent.learn(steps, reset_num_timesteps=False, **options)
        sync()
        speeds[f"GTP {mode}"] = steps / (time.perf_counter() - started)
    return speeds


def time_peers(dataset, device: str, python: Path, steps: int, threads: int, work: Path) -> dict[str, dict]:
    """d3rlpy's IQL and TD3+BC training steps/s from ``steps``-step runs (on CUDA also with its ``compile_graph``)."""
    data_file = export_transitions(dataset, work / f".transitions-{os.getpid()}.npz")
    peers = {}
    try:
        for compile_graph in (False, True) if str(device).startswith("cuda") else (False,):
            for method in ("iql", "td3+bc"):
                options = dict(episodes=0, device=device, threads=threads, compile_graph=compile_graph)
                result = run_peer(python, data_file, method, 0, dataset.env_spec.id, steps, **options)
                label = LABELS[method] + (" compile_graph" if compile_graph else "")
                key = method + (" compile_graph" if compile_graph else "")
                peers[key] = {"steps_per_second": result["steps_per_second"], "steps": steps, "label": label}
    finally:
        data_file.unlink()
    return peers


def main(argv: list[str] | None = None) -> Path:
    s = parse(SpeedSettings, argv)
    name = s.name or ("gtp_speed" if s.critic_ensemble == 1 else f"gtp_speed_ensemble{s.critic_ensemble}")
    dataset = load_dataset(s.dataset)
    config = {"critic_ensemble": s.critic_ensemble}
    speed = measure_speed(dataset, s.device, s.rounds, s.block, s.compile, **config)
    learn = learn_speed(dataset, s.device, s.learn_steps, s.compile, **config) if s.learn_steps else {}
    peers = {}
    if s.peer_python:
        with tempfile.TemporaryDirectory() as work:
            timed = time_peers(dataset, s.device, Path(s.peer_python), s.peer_steps, s.threads, Path(work))
            peers = {peer["label"]: peer["steps_per_second"] for peer in timed.values()}
    meta = {
        **s.recorded(),
        "batch_size": GTPConfig.batch_size,
        "matmul_gflop_per_step": speed["matmul_gflop_per_step"],
        "timing_minutes": speed["timing_minutes"],
    }
    data = {"meta": meta, "results": speed["results"], "learn_steps_per_second": learn, "peers_steps_per_second": peers}
    title = "GTP training speed next to a TD3+BC step of the same sizes (one run, interleaved)"
    return write_results(s, name, data, "speed", title)


if __name__ == "__main__":
    main()
