"""How GTP's score depends on N, the samples its critic chooses from (evaluation only).

Usage::

    python benchmarks/gtp_candidate_count.py --checkpoints /tmp/ctflow_s1_40_200/seed1/model ... \
        [--counts 1 5 10 20 50] [--episodes 20] [--envs 10] [--reset-seed 4000] [--sampling-steps 5] \
        [--name gtp_candidate_count]

``predict(deterministic=True)`` takes the best of N = ``action_candidates`` flow-map
samples by the target critic. A larger N lets the critic's choice matter more: good for a
critic that ranks actions well, bad for one whose errors it then exploits. For every
checkpoint and N, the D4RL score of ``--episodes`` episodes (reset seeds
``--reset-seed``.., K = ``--sampling-steps``). N = 1 is one sample per action (sampled
start noise: the policy alone). Writes ``<--name>.md`` / ``.json``.
"""

from __future__ import annotations

from pathlib import Path

from common import checkpoint_probe_parser, machine_info, markdown_table, write_results

from agents import GTPAgent
from ctflow_gym.data import DEFAULT_DATASET_ID


def main() -> None:
    parser = checkpoint_probe_parser(__doc__, "gtp_candidate_count")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 5, 10, 20, 50])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--reset-seed", type=int, default=4000, help="first reset seed of the episodes")
    parser.add_argument("--sampling-steps", type=int, default=5, help="K of every evaluation")
    args = parser.parse_args()
    scores: dict[str, dict[str, float]] = {}
    for checkpoint in args.checkpoints:
        agent = GTPAgent.load(checkpoint, dataset=DEFAULT_DATASET_ID)
        scores[checkpoint] = {}
        for count in args.counts:
            score = agent.evaluate(
                args.episodes,
                deterministic=count > 1,
                seed=args.reset_seed,
                n_envs=args.envs,
                sampling_steps=args.sampling_steps,
                action_candidates=count,
            )["normalized_score"]
            scores[checkpoint][str(count)] = score
            print(f"[candidate-count] {checkpoint} N={count}: {score:.1f}", flush=True)
    meta = {
        "episodes": args.episodes,
        "envs": args.envs,
        "reset_seed": args.reset_seed,
        "sampling_steps": args.sampling_steps,
        "counts": args.counts,
        "machine": machine_info(),
    }
    rows = [[c, *[f"{scores[c][str(n)]:.1f}" for n in args.counts]] for c in args.checkpoints]
    text = "\n".join(
        [
            "# GTP: the score against N, the samples the critic chooses from",
            "",
            (
                f"D4RL score, {args.episodes} episodes per cell (reset seeds {args.reset_seed}..), K = "
                f"{args.sampling_steps}; N > 1: `predict(deterministic=True, action_candidates=N)`, the best of N "
                f"by the target critic; N = 1: one sample per action. Machine: {meta['machine']}."
            ),
            "",
            markdown_table(["checkpoint", *[f"N={n}" for n in args.counts]], rows),
            "",
        ]
    )
    write_results(Path(args.out), args.name, {"meta": meta, "results": scores}, text)
    print(text)


if __name__ == "__main__":
    main()
