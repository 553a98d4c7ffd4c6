"""How much of GTP's actor gradient comes from the consistency loss, per grid resolution.

Usage::

    python benchmarks/gtp_loss_balance.py --checkpoints /tmp/ctflow_gtp200/seed0/model ... \
        [--points 10 40 160 640 1280] [--batches 10] [--out benchmarks/results]

The actor loss of Eq. 19 is L_consistency (Eq. 17) + lambda_flow * L_flow (Eq. 18). The
consistency loss compares the student at level t with the EMA teacher at the next level
u below it; Eq. 76 refines the grid during training, so t - u shrinks and the loss with
it. For every checkpoint and grid of N(k) = ``points`` + 1 levels, on ``--batches``
dataset batches of 256 (batch seed 0, the same for every checkpoint), this script
reports both losses and the norms of their gradients with respect to the actor's
parameters. Unweighted (w = 1): the advantage weights scale both terms alike. The ratio
|grad L_consistency| / |grad L_flow| is the share of the actor's update that ties the
long jumps of the flow map to the instantaneous flow.

Part of L_consistency is the EMA teacher's lag: even at t = u the student is pulled
toward its slower copy. To split the two, the same loss is also computed with a frozen
copy of the student itself as the teacher (iCT's choice of a teacher without EMA,
Song & Dhariwal 2023): what is left there is the consistency signal alone. Writes
``<--name>.md`` / ``.json`` (default ``gtp_loss_balance``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from common import (
    checkpoint_probe_parser,
    machine_info,
    markdown_table,
    write_results,
)  # benchmarks/ is the script's folder

from agents import GTPAgent
from agents.gtp.losses import consistency_loss, flow_loss
from agents.gtp.schedule import sample_consistency_times, time_grid
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

BATCH = 256


def gradient_norm(loss: torch.Tensor, parameters: list[torch.Tensor]) -> float:
    """The L2 norm of d loss / d parameters over all of them."""
    gradients = torch.autograd.grad(loss, parameters)
    return float(torch.sqrt(sum((g**2).sum() for g in gradients)))


def balance(agent: GTPAgent, points: int, batches: int) -> dict[str, float]:
    """Mean losses and gradient norms of both actor terms over ``batches`` batches, on a grid of ``points``."""
    cfg = agent.config
    grid = time_grid(points, cfg.min_time, cfg.max_time)
    generator = torch.Generator().manual_seed(0)
    parameters = list(agent.actor.parameters())
    frozen_student = copy.deepcopy(agent.actor).requires_grad_(False)
    rows = []
    for _ in range(batches):
        index = torch.randint(len(agent.transitions), (BATCH,), generator=generator)
        obs, actions = agent._data["observations"][index], agent._data["actions"][index]
        weights = torch.ones(BATCH)
        t, u, tau = sample_consistency_times(BATCH, grid, generator, cfg.tau_sampling)
        noise = torch.randn(actions.shape, generator=generator)
        consistency = consistency_loss(agent.actor, agent.actor_ema, obs, actions, noise, t, u, tau, weights)
        flow = flow_loss(agent.actor, obs, actions, noise, t, weights)
        lag_free = consistency_loss(agent.actor, frozen_student, obs, actions, noise, t, u, tau, weights)
        rows.append(
            [
                consistency.item(),
                flow.item(),
                gradient_norm(consistency, parameters),
                gradient_norm(cfg.lambda_flow * flow, parameters),
                lag_free.item(),
                gradient_norm(lag_free, parameters),
            ]
        )
    consistency, flow, grad_consistency, grad_flow, lag_free, grad_lag_free = np.mean(rows, axis=0).tolist()
    return {
        "consistency_loss": consistency,
        "flow_loss": flow,
        "consistency_grad_norm": grad_consistency,
        "flow_grad_norm": grad_flow,
        "ratio": grad_consistency / grad_flow,
        "lag_free_consistency_loss": lag_free,
        "lag_free_consistency_grad_norm": grad_lag_free,
    }


def main() -> None:
    parser = checkpoint_probe_parser(__doc__, "gtp_loss_balance")
    parser.add_argument("--points", type=int, nargs="+", default=[10, 40, 160, 640, 1280])
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    dataset = load_dataset(DEFAULT_DATASET_ID)
    results = {}
    for checkpoint in args.checkpoints:
        agent = GTPAgent.load(checkpoint, dataset=dataset, device="cpu")
        results[checkpoint] = {
            "steps": agent.num_timesteps,
            "schedule_max_steps": agent.config.schedule_max_steps,
            "by_points": {str(p): balance(agent, p, args.batches) for p in args.points},
        }
        print(f"[loss balance] {checkpoint}: {results[checkpoint]}", flush=True)
    rows = [
        [checkpoint, str(r["steps"]), str(r["schedule_max_steps"]), str(int(p) + 1)]
        + [f"{b['consistency_loss']:.4f}", f"{b['flow_loss']:.3f}"]
        + [f"{b['consistency_grad_norm']:.3f}", f"{b['flow_grad_norm']:.3f}", f"{b['ratio']:.3f}"]
        + [f"{b['lag_free_consistency_loss']:.4f}", f"{b['lag_free_consistency_grad_norm']:.3f}"]
        for checkpoint, r in results.items()
        for p, b in r["by_points"].items()
    ]
    header = ["checkpoint", "trained steps", "trained s1", "grid levels", "L_cons", "L_flow"]
    header += ["|grad L_cons|", "|grad L_flow|", "ratio", "L_cons, student teacher", "its |grad|"]
    meta = {"batches": args.batches, "batch": BATCH, "machine": machine_info()}
    text = "\n".join(
        [
            "# GTP: the consistency loss's share of the actor gradient, per grid resolution",
            "",
            (
                f"Produced by `benchmarks/gtp_loss_balance.py` at commit {meta['machine']['commit']}. "
                f"{args.batches} dataset batches of {BATCH} per cell (the same batches and draws of t, u, tau "
                "and z for every checkpoint), unweighted (w = 1); gradients with respect to the actor's "
                "parameters; `ratio` = |grad L_cons| / |grad lambda_flow L_flow|. `trained s1` is the "
                "checkpoint's schedule_max_steps (its finest training grid has s1 + 1 levels). The last two "
                "columns use a frozen copy of the student as the teacher instead of the EMA actor: the "
                "consistency signal without the EMA lag."
            ),
            "",
            markdown_table(header, rows),
            "",
        ]
    )
    out = Path(args.out)
    write_results(out, args.name, {"meta": meta, "results": results}, text)
    print(text)


if __name__ == "__main__":
    main()
