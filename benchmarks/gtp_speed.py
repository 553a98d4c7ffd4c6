"""Training speed of GTP, GTP-BC and a TD3+BC step of the same sizes, eager, compiled and graphed, in one run.

Usage::

    python benchmarks/gtp_speed.py [--rounds 30] [--block 10] [--threads 1] [--device cpu] [--out benchmarks/results]
        [--critic-ensemble 1] [--learn-steps 0] [--name gtp_speed] [--peer-python PY --peer-steps 3000]

Every method takes gradient steps on minibatches (256) of the shipped dataset, one torch
thread (``--threads``), in interleaved blocks (``benchmarks/common.py``'s
``interleaved_timings``: load from other processes hits every method alike, so the
ratios compare like with like). Methods:

- ``GTP`` / ``GTP-BC``: ``GTPAgent._train_step`` (eta 5 / 0; K = 2 bootstrap actions),
  eager and with ``learn(compile=True)``'s compiled losses (inductor);
- ``TD3+BC``: a plain PyTorch TD3+BC step (Fujimoto & Gu 2021: target policy smoothing,
  policy delay 2, alpha 2.5) with GTP's network sizes (actor MLP 256 x 3 with SiLU,
  critic two 256 x 2 ReLU heads, Adam 3e-4), eager and with its losses compiled.

On CUDA two more modes: ``graph`` (the whole step captured in a CUDA graph and replayed,
``learn(cuda_graph=True)``, :mod:`agents.steps`; TD3+BC graphed the same way) and
``compiled+graph`` (both). On CUDA every timed step ends with a synchronisation.
``--learn-steps N`` also times GTP's whole ``learn`` call (N steps, logging every 1000,
no evaluation) in every mode: what a user's run gets, after a first ``learn`` of
``WARMUP_STEPS + 50`` steps that compiles. ``--peer-python`` (an interpreter with d3rlpy
2.8, e.g. ``.bench-venvs/d3rlpy/bin/python`` as ``gtp_vs_peers.py`` makes it) also times
d3rlpy's IQL and TD3+BC on the same device, and on CUDA with d3rlpy's ``compile_graph`` too.

The H100 results (``gtp_speed_cuda.md``) were made with the wheels of gymnasium, mujoco,
minari and SB3 (and d3rlpy's in a second folder) carried to the GPU machine, whose torch
is 2.11 + CUDA 13: ``python benchmarks/gtp_speed.py --device cuda --rounds 20
--learn-steps 3000 --name gtp_speed_cuda --peer-python <d3rlpy python>``.

Ratios are GTP's steps/s over TD3+BC's in the same mode. The floating-point work per
step is also counted (multiply-adds of the matrix products, forward and backward), which
bounds what any implementation can reach on the same hardware. Writes ``gtp_speed.md`` /
``.json`` (``--name``).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch
from common import interleaved_timings, machine_info, markdown_table, write_atomic  # benchmarks/ is the script's folder

from agents import GTPAgent, GTPConfig
from agents.compilation import CompiledOrEager
from agents.steps import WARMUP_STEPS, EagerSteps, GraphedSteps
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset
from ctflow_gym.models import DoubleQ
from ctflow_gym.models.mlp import MLP


class TD3BCStep:
    """One TD3+BC gradient step (critic every step, actor and targets every ``policy_delay``).

    With ``graph=True`` (CUDA) the two kinds of step (critic only; critic, actor and
    targets) are each captured in a CUDA graph after three eager warm-up steps and
    replayed, the minibatch indices drawn on the host and copied in, as
    :class:`agents.steps.GraphedSteps` does for GTP.
    """

    def __init__(
        self, agent: GTPAgent, backend: str | None, alpha: float = 2.5, policy_delay: int = 2, graph: bool = False
    ):
        obs_dim, act_dim, cfg = agent.obs_dim, agent.act_dim, agent.config
        torch.manual_seed(0)
        self.actor = MLP(obs_dim, act_dim, cfg.actor_hidden, cfg.actor_layers).to(agent.device)
        self.critic = DoubleQ(obs_dim, act_dim, cfg.critic_hidden, cfg.critic_layers).to(agent.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        adam = dict(lr=cfg.lr, capturable=graph)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), **adam)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), **adam)
        self.agent, self.alpha, self.policy_delay, self.steps = agent, alpha, policy_delay, 0
        self.graph, self.graphs = graph, {}
        if graph:
            self.host_index = torch.empty(cfg.batch_size, dtype=torch.long).pin_memory()
            self.index = torch.zeros(cfg.batch_size, dtype=torch.long, device=agent.device)
        self.critic_loss = CompiledOrEager(self._critic_loss, backend)
        self.actor_loss = CompiledOrEager(self._actor_loss, backend)

    def _critic_loss(self, obs, actions, rewards, next_obs, terminations):
        with torch.no_grad():
            noise = (torch.randn_like(actions) * 0.2).clamp(-0.5, 0.5)
            next_actions = (torch.tanh(self.actor_target(next_obs)) + noise).clamp(-1.0, 1.0)
            target = rewards + 0.99 * (1.0 - terminations) * self.critic_target.min_q(next_obs, next_actions)
        q1, q2 = self.critic(obs, actions)
        return ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()

    def _actor_loss(self, obs, actions):
        policy_actions = torch.tanh(self.actor(obs))
        q = self.critic.q1(torch.cat([obs, policy_actions], dim=-1)).squeeze(-1)
        lam = self.alpha / q.abs().mean().detach()
        return -lam * q.mean() + ((policy_actions - actions) ** 2).mean()

    def __call__(self) -> None:
        with_actor = (self.steps + 1) % self.policy_delay == 0
        if not self.graph:
            self._update(self.agent.sample_batch(self.agent.config.batch_size), with_actor)
        else:
            self.host_index.numpy()[:] = self.agent._batch_indices(self.agent.config.batch_size)
            self.index.copy_(self.host_index, non_blocking=True)
            if self.steps < 3:  # warm-up, on a side stream as capture requires
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    self._update(self.agent._batch_at(self.index), with_actor)
                torch.cuda.current_stream().wait_stream(side)
            else:
                if with_actor not in self.graphs:
                    torch.cuda.synchronize()
                    self.graphs[with_actor] = graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        self._update(self.agent._batch_at(self.index), with_actor)
                self.graphs[with_actor].replay()
        self.steps += 1

    def _update(self, batch: dict, with_actor: bool) -> None:
        obs, actions = batch["observations"], batch["actions"]
        loss = self.critic_loss(obs, actions, batch["rewards"], batch["next_observations"], batch["terminations"])
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
    """A callable taking one GTPAgent gradient step (eta 0: GTP-BC) on ``device``, as ``learn`` takes it.

    ``graph``: through :class:`agents.steps.GraphedSteps` (``learn(cuda_graph=True)``).
    ``config``: GTPConfig overrides (e.g. ``critic_ensemble=5``).
    """
    agent = GTPAgent(dataset.env_spec.id, dataset, eta=eta, seed=0, device=device, **config)
    agent.target_timesteps = 1_000_000  # the schedule of Eq. 76 as planned for a long run
    agent._use_compile(backend)
    steps = (GraphedSteps if graph else EagerSteps)(agent)

    def step() -> None:
        steps.step()
        agent.num_timesteps += 1

    return agent, step


def matmul_flops(batch: int, sizes: list[tuple[int, int]], passes: float) -> float:
    """Multiply-adds x 2 of ``passes`` passes (forward = 1, backward = 2) of linear layers ``sizes``."""
    return 2.0 * batch * sum(i * o for i, o in sizes) * passes


def flops_per_step(agent: GTPAgent) -> dict[str, float]:
    """Counted matrix-product GFLOP of one GTP step and one TD3+BC step of the same sizes."""
    o, a, h, b = agent.obs_dim, agent.act_dim, agent.config.actor_hidden, agent.config.batch_size
    actor = [(o + a + 32, h), (h, h), (h, h), (h, a)]
    head = [(o + a, h), (h, h), (h, 1)]
    td3_actor = [(o, h), (h, h), (h, h), (h, a)]
    # GTP: K=2 sampling for s' and s (2B rows x 2 jumps), target and V critics (2 heads each), critic
    # forward+backward (the critic terms once per member of an ensemble), student x2 (consistency, flow)
    # forward+backward, teacher forward.
    m = agent.config.critic_ensemble
    gtp = matmul_flops(2 * b, actor, 2) + m * (matmul_flops(b, head, 2 * 2) + matmul_flops(b, head, 2 * 3))
    gtp += matmul_flops(b, actor, 2 * 3) + matmul_flops(b, actor, 1)
    # TD3+BC: target actor + target critic, critic forward+backward; every 2nd step actor and q1 forward+backward.
    td3 = matmul_flops(b, td3_actor, 1) + matmul_flops(b, head, 2) + matmul_flops(b, head, 2 * 3)
    td3 += 0.5 * (matmul_flops(b, td3_actor, 3) + matmul_flops(b, head, 3))
    return {"GTP": gtp / 1e9, "TD3+BC": td3 / 1e9, "ratio": td3 / gtp}


def speed_modes(device: str, compile: bool) -> dict[str, tuple[str | None, bool]]:
    """The modes timed: name -> (torch.compile backend or None, CUDA graph), graphs on CUDA only."""
    modes = {"eager": (None, False)}
    if compile:
        modes["compiled"] = ("inductor", False)
    if str(device).startswith("cuda"):
        modes["graph"] = (None, True)
        if compile:
            modes["compiled+graph"] = ("inductor", True)
    return modes


def measure_speed(dataset, device: str, rounds: int, block: int, compile: bool, **config) -> dict:
    """Steps/s of GTP, GTP-BC and the TD3+BC reference step in every mode of :func:`speed_modes`, interleaved.

    Returns ``{"results": {"GTP eager": {...}, ...}, "matmul_gflop_per_step": ..., "timing_minutes": ...}``;
    each result has ``us_per_step``, ``steps_per_second``, ``first_step_seconds`` (compiling,
    when compiled) and, for GTP and GTP-BC, ``ratio_to_td3bc_same_mode``. On CUDA every
    step ends with a synchronisation, so a step's time is its whole time on the device.
    """
    modes = speed_modes(device, compile)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    functions, compile_seconds = {}, {}
    for mode, (backend, graph) in modes.items():
        first_steps = WARMUP_STEPS + 2 if graph else 1  # through warm-up and capture
        for name, eta in (("GTP", 5.0), ("GTP-BC", 0.0)):
            agent, step = gtp_step(dataset, eta, backend, device, graph, **config)
            started = time.perf_counter()
            for _ in range(first_steps):
                step(), sync()  # compiles, when compiling; captures, with a graph
            compile_seconds[f"{name} {mode}"] = time.perf_counter() - started
            functions[f"{name} {mode}"] = lambda step=step: (step(), sync())
        td3 = TD3BCStep(agent, backend, graph=graph)
        started = time.perf_counter()
        for _ in range(first_steps + 1):
            td3(), sync()
        compile_seconds[f"TD3+BC {mode}"] = time.perf_counter() - started
        functions[f"TD3+BC {mode}"] = lambda td3=td3: (td3(), sync())
    started = time.perf_counter()
    micros = interleaved_timings(functions, rounds, block)
    results = {
        name: {"us_per_step": us, "steps_per_second": 1e6 / us, "first_step_seconds": compile_seconds[name]}
        for name, us in micros.items()
    }
    for mode in modes:
        for name in ("GTP", "GTP-BC"):
            results[f"{name} {mode}"]["ratio_to_td3bc_same_mode"] = micros[f"TD3+BC {mode}"] / micros[f"{name} {mode}"]
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


def peer_speeds(dataset, device: str, python: str, steps: int, threads: int, work: Path) -> dict[str, float]:
    """d3rlpy's IQL and TD3+BC training steps/s on ``device``, by label (``gtp_vs_peers.time_peers``).

    Short runs of ``peer_d3rlpy.py`` under ``python``; on CUDA also with d3rlpy's ``compile_graph``.
    """
    from gtp_vs_peers import export_transitions, time_peers  # here: gtp_vs_peers imports this module

    work.mkdir(parents=True, exist_ok=True)
    data_file = work / "transitions.npz"
    export_transitions(dataset, data_file)
    args = argparse.Namespace(
        steps=steps, batch_size=GTPConfig.batch_size, episodes=0, eval_every=0, device=device, threads=threads
    )
    args.progress = False
    peers = time_peers(args, dataset.env_spec.id, Path(python), data_file, work)
    return {peer["label"]: peer["steps_per_second"] for peer in peers.values()}


def speed_rows(results: dict) -> list[list[str]]:
    """Table rows (method, steps/s, ms/step, ratio to TD3+BC, first step s) of :func:`measure_speed`'s results."""
    return [
        [
            name,
            f"{r['steps_per_second']:.1f}",
            f"{r['us_per_step'] / 1000:.2f}",
            f"{r['ratio_to_td3bc_same_mode']:.2f}" if "ratio_to_td3bc_same_mode" in r else "-",
            f"{r['first_step_seconds']:.1f}",
        ]
        for name, r in results.items()
    ]


SPEED_HEADER = ["method", "steps/s", "ms/step", "ratio to TD3+BC reference (same mode)", "first step s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-compile", action="store_true", help="eager only (skips ~3 min of compiling)")
    parser.add_argument("--critic-ensemble", type=int, default=GTPConfig.critic_ensemble, help="GTP's critics")
    parser.add_argument("--learn-steps", type=int, default=0, help="also time learn() for this many steps")
    parser.add_argument(
        "--name",
        default=None,
        help="results' file names (default: gtp_speed, gtp_speed_ensemble<M> for M != 1 critics)",
    )
    parser.add_argument("--peer-python", default=None, help="a Python with d3rlpy 2.8: also time its IQL and TD3+BC")
    parser.add_argument("--peer-steps", type=int, default=3000, help="steps of each d3rlpy timing run")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    args.name = args.name or ("gtp_speed" if args.critic_ensemble == 1 else f"gtp_speed_ensemble{args.critic_ensemble}")
    torch.set_num_threads(args.threads)
    dataset = load_dataset(DEFAULT_DATASET_ID)
    config = {"critic_ensemble": args.critic_ensemble}
    speed = measure_speed(dataset, args.device, args.rounds, args.block, compile=not args.no_compile, **config)
    results = speed["results"]
    learn = (
        learn_speed(dataset, args.device, args.learn_steps, not args.no_compile, **config) if args.learn_steps else {}
    )
    peers = {}
    if args.peer_python:
        with tempfile.TemporaryDirectory() as work:
            peers = peer_speeds(dataset, args.device, args.peer_python, args.peer_steps, args.threads, Path(work))
    meta = {
        "critic_ensemble": args.critic_ensemble,
        "learn_steps": args.learn_steps,
        "threads": args.threads,
        "device": args.device,
        "rounds": args.rounds,
        "block": args.block,
        "batch_size": GTPConfig.batch_size,
        "matmul_gflop_per_step": speed["matmul_gflop_per_step"],
        "machine": machine_info(),
        "timing_minutes": speed["timing_minutes"],
    }
    flops = meta["matmul_gflop_per_step"]
    text = "\n".join(
        [
            "# GTP training speed next to a TD3+BC step of the same sizes (one run, interleaved)",
            "",
            (
                f"Device {args.device}, {args.threads} torch thread(s), batch {meta['batch_size']}, {args.rounds} "
                f"rounds of {args.block} steps per method, median per round. Machine: {meta['machine']}."
            ),
            f"GTP with {args.critic_ensemble} critic(s) (GTPConfig.critic_ensemble).",
            "",
            markdown_table(SPEED_HEADER, speed_rows(results)),
            "",
            *(
                [
                    f"Through `learn` ({args.learn_steps} steps after a warm-up call, logging every 1000): "
                    + ", ".join(f"{name} {value:.0f} steps/s" for name, value in learn.items())
                    + ".",
                    "",
                ]
                if learn
                else []
            ),
            *(
                [
                    f"d3rlpy 2.8.1 on the same device ({args.peer_steps} steps each, `fit` time): "
                    + ", ".join(f"{name} {value:.0f} steps/s" for name, value in peers.items())
                    + ". GTP's table steps/s over IQL's: "
                    + ", ".join(
                        f"{name} {r['steps_per_second'] / peers['d3rlpy IQL']:.2f}x"
                        for name, r in results.items()
                        if name.startswith("GTP ")
                    )
                    + ".",
                    "",
                ]
                if peers
                else []
            ),
            (
                f"Matrix-product work per step (forward + backward, counted): GTP {flops['GTP']:.3f} GFLOP, "
                f"TD3+BC {flops['TD3+BC']:.3f} GFLOP: a TD3+BC step does {flops['ratio']:.2f}x GTP's work, "
                "so at equal efficiency GTP reaches about that ratio of TD3+BC's steps/s."
            ),
            "",
        ]
    )
    everything = {"meta": meta, "results": results, "learn_steps_per_second": learn, "peers_steps_per_second": peers}
    write_atomic(Path(args.out) / f"{args.name}.json", json.dumps(everything, indent=2))
    write_atomic(Path(args.out) / f"{args.name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
