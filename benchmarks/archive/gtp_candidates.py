"""How GTPAgent should act: one sample of Eq. 15, or the best of N samples by Q (and which "best").

Usage::

    python benchmarks/gtp_candidates.py --checkpoints /tmp/ctflow_gtp/seed0/model ... \
        [--episodes 10] [--envs 10] [--out benchmarks/results]

For every saved GTP checkpoint and K in 1, 2, 5 flow-map jumps, the D4RL score of
``--episodes`` episodes (reset seeds 123.., in ``--envs`` envs at once) when the agent acts

- ``sample``: one draw a_T ~ N(0, T^2 I) (the paper's Eq. 15 as printed; N = 1);
- ``max N=10`` / ``max N=50``: N draws, the one with the highest min_j Q_target_j
  (what ``GTPAgent.predict`` does, N = ``action_candidates``);
- ``softmax N=50``: N draws, one chosen with probability softmax(Q) (Diffusion-QL's
  code, which the paper's evaluation setting, Ding & Jin 2024, builds on).

Stochastic draws (``deterministic=False``), so "max" and "softmax" differ only in the
choice. Writes ``gtp_candidates.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import machine_info, markdown_table, write_results  # benchmarks/ is the script's folder

from agents import GTPAgent

MODES = (("sample", 1), ("max", 10), ("max", 50), ("softmax", 50))
K_VALUES = (1, 2, 5)


def softmax_choice(agent: GTPAgent):
    """An ``_act`` that draws 50 candidates and picks one with probability softmax(Q) (Diffusion-QL)."""

    def act(observations: torch.Tensor, deterministic: bool, sampling_steps=None, action_candidates=None):
        n, steps = action_candidates, sampling_steps
        states = observations.repeat_interleave(n, dim=0)
        actions = agent.sample_actions(states, steps, deterministic)
        q = agent.critic_target.min_q(states, actions).view(len(observations), n)
        choice = torch.multinomial(torch.softmax(q, dim=1), 1, generator=agent.generator).squeeze(1)
        return actions.view(len(observations), n, -1)[torch.arange(len(observations)), choice]

    return act


def evaluate(checkpoint: str, episodes: int, envs: int) -> dict:
    agent = GTPAgent.load(checkpoint)
    plain = agent._act
    scores = {}
    for mode, n in MODES:
        agent._act = softmax_choice(agent) if mode == "softmax" else plain
        for k in K_VALUES:
            result = agent.evaluate(
                episodes, seed=123, n_envs=envs, deterministic=False, sampling_steps=k, action_candidates=n
            )
            scores[f"{mode} N={n} K={k}"] = result["normalized_score"]
    return {"checkpoint": checkpoint, "steps": agent.num_timesteps, "scores": scores}


def markdown(runs: list[dict], meta: dict) -> str:
    columns = [f"{mode} N={n} K={k}" for mode, n in MODES for k in K_VALUES]
    rows = [[run["checkpoint"], str(run["steps"])] + [f"{run['scores'][c]:.1f}" for c in columns] for run in runs]
    medians = [f"{np.median([run['scores'][c] for run in runs]):.1f}" for c in columns]
    rows.append(["median", ""] + medians)
    return "\n".join(
        [
            "# GTP acting: one sample, or the best of N by Q",
            "",
            f"D4RL score, {meta['episodes']} episodes (reset seeds 123..) per cell, stochastic draws. "
            f"Machine: {meta['machine']}.",
            "",
            markdown_table(["checkpoint", "steps", *columns], rows),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, help="saved GTPAgent folders")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    runs = [evaluate(path, args.episodes, args.envs) for path in args.checkpoints]
    meta = {"episodes": args.episodes, "envs": args.envs, "machine": machine_info()}
    out = Path(args.out)
    write_results(out, "gtp_candidates", {"meta": meta, "runs": runs}, markdown(runs, meta), indent=1)
    print((out / "gtp_candidates.md").read_text())


if __name__ == "__main__":
    main()
