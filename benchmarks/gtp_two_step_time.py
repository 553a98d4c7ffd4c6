"""Where the middle noise level of GTP's two-step sampling should sit (evaluation only).

Usage::

    python benchmarks/gtp_two_step_time.py --checkpoints /tmp/ctflow_gtp_cand/seed0/model ... \
        [--mids 2.515 5 8 12] [--episodes 20] [--envs 10] [--reset-seed 321] [--name gtp_two_step_time]

K = 2 flow-map jumps go T -> t_mid -> 0; ``sampling_times(2, 80, 0.002)`` puts t_mid at
2.515 (Karras spacing, rho = 7, the same rule as every other K). A consistent flow map
would not care where t_mid is; ours is not fully consistent (``gtp_diagnostics``'
``consistency/...`` distances), so K = 2 might gain from another t_mid and close its gap
to K = 5 (goal: within 3 points). For every checkpoint and t_mid, the D4RL score of
``--episodes`` episodes (reset seeds ``--reset-seed``.., ``--envs`` envs at once) of the
policy as ``predict(deterministic=True)`` acts (the best of ``action_candidates`` samples
by Q), and K = 5 with its own times for reference. A t_mid picked from one scan is picked
on those episodes: confirm it with another ``--reset-seed``. Writes ``<--name>.md`` /
``.json``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common import (
    checkpoint_probe_parser,
    machine_info,
    markdown_table,
    write_results,
)  # benchmarks/ is the script's folder

from agents import GTPAgent


def scan(checkpoint: str, mids: list[float], episodes: int, envs: int, seed: int = 321) -> dict[str, float]:
    """Scores of one checkpoint at K = 2 for each t_mid, and at K = 5 (key ``"K=5"``)."""
    agent = GTPAgent.load(checkpoint)
    scores = {}
    for mid in mids:
        times = (agent.config.max_time, float(mid), 0.0)
        scores[f"{mid:g}"] = agent.evaluate(episodes, seed=seed, n_envs=envs, sampling_times=times)["normalized_score"]
        print(f"[two-step] {checkpoint} t_mid {mid:g}: {scores[f'{mid:g}']:.1f}", flush=True)
    scores["K=5"] = agent.evaluate(episodes, seed=seed, n_envs=envs, sampling_steps=5)["normalized_score"]
    return scores


def main() -> None:
    parser = checkpoint_probe_parser(__doc__, "gtp_two_step_time")
    parser.add_argument("--mids", type=float, nargs="+", default=[2.515, 5.0, 8.0, 12.0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--reset-seed", type=int, default=321, help="first reset seed of the episodes")
    args = parser.parse_args()
    results = {c: scan(c, args.mids, args.episodes, args.envs, args.reset_seed) for c in args.checkpoints}
    columns = [f"{mid:g}" for mid in args.mids] + ["K=5"]
    rows = [[checkpoint] + [f"{scores[c]:.1f}" for c in columns] for checkpoint, scores in results.items()]
    rows.append(["mean"] + [f"{np.mean([s[c] for s in results.values()]):.1f}" for c in columns])
    meta = {"episodes": args.episodes, "envs": args.envs, "mids": args.mids, "reset_seed": args.reset_seed}
    meta["machine"] = machine_info()
    text = "\n".join(
        [
            "# GTP two-step sampling: the middle noise level t_mid",
            "",
            (
                f"D4RL score, {args.episodes} episodes per cell (reset seeds {args.reset_seed}..), acting as "
                "`predict(deterministic=True)` (best of N samples by Q); columns: t_mid of K = 2 "
                f"(default 2.515), then K = 5. Machine: {meta['machine']}."
            ),
            "",
            markdown_table(["checkpoint", *[f"K=2, t_mid {c}" for c in columns[:-1]], "K=5"], rows),
            "",
        ]
    )
    out = Path(args.out)
    write_results(out, args.name, {"meta": meta, "results": results}, text)
    print(text)


if __name__ == "__main__":
    main()
