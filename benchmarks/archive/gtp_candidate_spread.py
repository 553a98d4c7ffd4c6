"""What the critic's choice among N samples has to choose from, per number of map steps K.

Usage::

    python benchmarks/gtp_candidate_spread.py --checkpoints /tmp/ctflow_s1_40_200/seed0/model ... \
        [--steps 1 2 5 12] [--states 1024] [--candidates 50] [--name gtp_candidate_spread]

``GTPAgent.predict`` acts with the best of N K-step samples by min_j Q_target_j (the
evaluation the GTP paper follows). Offline, on ``--states`` dataset states (seed 0) and
the same N start noises a_T per state for every K and checkpoint, this script reports per
K: the spread of the N candidates (per-dimension standard deviation over candidates,
averaged, in [-1, 1] action units), the critic's gain from choosing (mean over states of
max Q - mean Q of the candidates), and how far the chosen action is from the one chosen
at the largest K (RMS distance, and the share of states where the same start noise wins).
It asks whether a K that scores worse than K = 5 in closed loop gives the critic less to
choose from, or a different choice. Writes ``<--name>.md`` / ``.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import (
    checkpoint_probe_parser,
    machine_info,
    markdown_table,
    write_results,
)  # benchmarks/ is the script's folder

from agents import GTPAgent
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_transitions


@torch.no_grad()
def candidate_statistics(agent: GTPAgent, observations: torch.Tensor, steps: list[int], candidates: int) -> dict:
    """Per K in ``steps``: candidate spread, the critic's gain from choosing, and the pick against the largest K's."""
    batch = observations.shape[0]
    states = observations.repeat_interleave(candidates, dim=0)
    noise = torch.randn(states.shape[0], agent.act_dim, generator=torch.Generator().manual_seed(1))
    picks = {}
    for k in steps:
        actions = agent.actor_ema.sample(states, agent._times(k), noise).clamp(-1.0, 1.0)
        q = agent.critic_target.min_q(states, actions).view(batch, candidates)
        best = q.argmax(dim=1)
        actions = actions.view(batch, candidates, -1)
        picks[k] = {"actions": actions, "q": q, "best": best, "chosen": actions[torch.arange(batch), best]}
    reference = picks[max(steps)]
    return {
        str(k): {
            "candidate_spread": float(p["actions"].std(dim=1).mean()),
            "choice_gain": float((p["q"].max(dim=1).values - p["q"].mean(dim=1)).mean()),
            "distance_to_reference_pick": float((p["chosen"] - reference["chosen"]).pow(2).sum(-1).sqrt().mean()),
            "same_pick_as_reference": float((p["best"] == reference["best"]).float().mean()),
        }
        for k, p in picks.items()
    }


def main() -> None:
    parser = checkpoint_probe_parser(__doc__, "gtp_candidate_spread")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 5, 12])
    parser.add_argument("--states", type=int, default=1024)
    parser.add_argument("--candidates", type=int, default=50)
    args = parser.parse_args()
    dataset = load_dataset(DEFAULT_DATASET_ID)
    transitions = load_transitions(dataset)
    index = torch.randint(len(transitions.observations), (args.states,), generator=torch.Generator().manual_seed(0))
    results = {}
    for checkpoint in args.checkpoints:
        agent = GTPAgent.load(checkpoint, device="cpu")
        if agent.critic_target is None:
            raise ValueError(f"--checkpoints: {checkpoint} has no critic (GTP-BC): there is no choice to measure")
        observations = agent.stats.normalize_observations(transitions.observations[index.numpy()])
        observations = torch.as_tensor(observations, dtype=torch.float32)
        results[checkpoint] = candidate_statistics(agent, observations, sorted(args.steps), args.candidates)
        print(f"[candidate spread] {checkpoint}: {results[checkpoint]}", flush=True)
    reference = max(args.steps)
    rows = [
        [checkpoint, k]
        + [f"{r['candidate_spread']:.3f}", f"{r['choice_gain']:.2f}"]
        + [f"{r['distance_to_reference_pick']:.3f}", f"{r['same_pick_as_reference']:.2f}"]
        for checkpoint, by_k in results.items()
        for k, r in by_k.items()
    ]
    header = ["checkpoint", "K", "candidate spread", "max Q - mean Q", f"pick's distance to K={reference}'s"]
    header += [f"same pick as K={reference}"]
    meta = {"states": args.states, "candidates": args.candidates, "machine": machine_info()}
    text = "\n".join(
        [
            "# GTP: what the critic chooses from, per number of map steps",
            "",
            (
                f"Produced by `benchmarks/gtp_candidate_spread.py` at commit {meta['machine']['commit']}. "
                f"{args.states} states of `{dataset.id}` (seed 0), N = {args.candidates} candidates each from "
                "the same start noises for every K and checkpoint; Q = min_j Q_target_j, the critic `predict` "
                "chooses with. Spread: per-dimension std over the candidates, averaged; distance: RMS in "
                "[-1, 1] action units."
            ),
            "",
            markdown_table(header, rows),
            "",
        ]
    )
    write_results(Path(args.out), args.name, {"meta": meta, "results": results}, text)
    print(text)


if __name__ == "__main__":
    main()
