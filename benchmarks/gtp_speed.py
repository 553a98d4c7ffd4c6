"""Training speed of GTP, GTP-BC and a TD3+BC step of the same sizes, eager and compiled, in one run.

Usage::

    python benchmarks/gtp_speed.py [--rounds 30] [--block 10] [--threads 1] [--device cpu] [--out benchmarks/results]

Every method takes gradient steps on minibatches (256) of the shipped dataset, one torch
thread (``--threads``), in interleaved blocks (``benchmarks/common.py``'s
``interleaved_timings``: load from other processes hits every method alike, so the
ratios compare like with like). Methods:

- ``GTP`` / ``GTP-BC``: ``GTPAgent._train_step`` (eta 5 / 0; K = 2 bootstrap actions),
  eager and with ``learn(compile=True)``'s compiled losses (inductor);
- ``TD3+BC``: a plain PyTorch TD3+BC step (Fujimoto & Gu 2021: target policy smoothing,
  policy delay 2, alpha 2.5) with GTP's network sizes (actor MLP 256 x 3 with SiLU,
  critic two 256 x 2 ReLU heads, Adam 3e-4), eager and with its losses compiled.

Ratios are GTP's steps/s over TD3+BC's in the same mode. The floating-point work per
step is also counted (multiply-adds of the matrix products, forward and backward), which
bounds what any implementation can reach on the same hardware. Writes ``gtp_speed.md`` /
``.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from common import interleaved_timings, machine_info, markdown_table, write_atomic  # benchmarks/ is the script's folder

from agents import GTPAgent, GTPConfig
from agents.compilation import CompiledOrEager
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset
from ctflow_gym.models import DoubleQ
from ctflow_gym.models.mlp import MLP


class TD3BCStep:
    """One TD3+BC gradient step (critic every step, actor and targets every ``policy_delay``)."""

    def __init__(self, agent: GTPAgent, backend: str | None, alpha: float = 2.5, policy_delay: int = 2):
        obs_dim, act_dim, cfg = agent.obs_dim, agent.act_dim, agent.config
        torch.manual_seed(0)
        self.actor = MLP(obs_dim, act_dim, cfg.actor_hidden, cfg.actor_layers).to(agent.device)
        self.critic = DoubleQ(obs_dim, act_dim, cfg.critic_hidden, cfg.critic_layers).to(agent.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.agent, self.alpha, self.policy_delay, self.steps = agent, alpha, policy_delay, 0
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
        batch = self.agent.sample_batch(self.agent.config.batch_size)
        obs, actions = batch["observations"], batch["actions"]
        loss = self.critic_loss(obs, actions, batch["rewards"], batch["next_observations"], batch["terminations"])
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_optimizer.step()
        self.steps += 1
        if self.steps % self.policy_delay == 0:
            loss = self.actor_loss(obs, actions)
            self.actor_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.actor_optimizer.step()
            with torch.no_grad():
                for target, source in ((self.actor_target, self.actor), (self.critic_target, self.critic)):
                    for t, s in zip(target.parameters(), source.parameters()):
                        t.lerp_(s, 0.005)


def gtp_step(dataset, eta: float, backend: str | None, device: str = "cpu"):
    """A callable taking one GTPAgent gradient step (eta 0: GTP-BC) on ``device``."""
    agent = GTPAgent(dataset.env_spec.id, dataset, eta=eta, seed=0, device=device)
    agent.target_timesteps = 1_000_000  # the schedule of Eq. 76 as planned for a long run
    agent._use_compile(backend)

    def step() -> None:
        agent._train_step(agent.sample_batch(agent.config.batch_size))
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
    # forward+backward, student x2 (consistency, flow) forward+backward, teacher forward.
    gtp = matmul_flops(2 * b, actor, 2) + matmul_flops(b, head, 2 * 2) + matmul_flops(b, head, 2 * 3)
    gtp += matmul_flops(b, actor, 2 * 3) + matmul_flops(b, actor, 1)
    # TD3+BC: target actor + target critic, critic forward+backward; every 2nd step actor and q1 forward+backward.
    td3 = matmul_flops(b, td3_actor, 1) + matmul_flops(b, head, 2) + matmul_flops(b, head, 2 * 3)
    td3 += 0.5 * (matmul_flops(b, td3_actor, 3) + matmul_flops(b, head, 3))
    return {"GTP": gtp / 1e9, "TD3+BC": td3 / 1e9, "ratio": td3 / gtp}


def measure_speed(dataset, device: str, rounds: int, block: int, compile: bool) -> dict:
    """Steps/s of GTP, GTP-BC and the TD3+BC reference step, eager (and compiled), interleaved.

    Returns ``{"results": {"GTP eager": {...}, ...}, "matmul_gflop_per_step": ..., "timing_minutes": ...}``;
    each result has ``us_per_step``, ``steps_per_second``, ``first_step_seconds`` (compiling,
    when compiled) and, for GTP and GTP-BC, ``ratio_to_td3bc_same_mode``. On CUDA every
    step ends with a synchronisation, so a step's time is its whole time on the device.
    """
    modes = {"eager": None, "compiled": "inductor"} if compile else {"eager": None}
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    functions, compile_seconds = {}, {}
    for mode, backend in modes.items():
        for name, eta in (("GTP", 5.0), ("GTP-BC", 0.0)):
            agent, step = gtp_step(dataset, eta, backend, device)
            started = time.perf_counter()
            step(), sync()  # compiles, when compiling
            compile_seconds[f"{name} {mode}"] = time.perf_counter() - started
            functions[f"{name} {mode}"] = lambda step=step: (step(), sync())
        td3 = TD3BCStep(agent, backend)
        started = time.perf_counter()
        td3(), td3(), sync()
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
    }


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
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(DEFAULT_DATASET_ID)
    speed = measure_speed(dataset, args.device, args.rounds, args.block, compile=not args.no_compile)
    results = speed["results"]
    meta = {
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
            "",
            markdown_table(SPEED_HEADER, speed_rows(results)),
            "",
            (
                f"Matrix-product work per step (forward + backward, counted): GTP {flops['GTP']:.3f} GFLOP, "
                f"TD3+BC {flops['TD3+BC']:.3f} GFLOP: a TD3+BC step does {flops['ratio']:.2f}x GTP's work, "
                "so at equal efficiency GTP reaches about that ratio of TD3+BC's steps/s."
            ),
            "",
        ]
    )
    write_atomic(Path(args.out) / "gtp_speed.json", json.dumps({"meta": meta, "results": results}, indent=2))
    write_atomic(Path(args.out) / "gtp_speed.md", text)
    print(text)


if __name__ == "__main__":
    main()
