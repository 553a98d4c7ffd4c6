"""Where the middle noise level of GTP's two-step sampling should sit (evaluation only).

Usage::

    python benchmarks/gtp_two_step_time.py --checkpoints /tmp/ctflow_gtp_cand/seed0/model ... \
        [--mids 2.515 5 8 12] [--no-fitted] [--episodes 20] [--envs 10] [--reset-seed 321] \
        [--name gtp_two_step_time]

K = 2 flow-map jumps go T -> t_mid -> 0; ``sampling_times(2, 80, 0.002)`` puts t_mid at
2.515 (Karras spacing, rho = 7, the same rule as every other K). A consistent flow map
would not care where t_mid is; ours is not fully consistent (``gtp_diagnostics``'
``consistency/...`` distances), so K = 2 might gain from another t_mid and close its gap
to K = 5 (goal: within 3 points). For every checkpoint and t_mid, the D4RL score of
``--episodes`` episodes (reset seeds ``--reset-seed``.., ``--envs`` envs at once) of the
policy as ``predict(deterministic=True)`` acts (the best of ``action_candidates`` samples
by Q), and K = 5 with its own times for reference. Unless ``--no-fitted``, also the t_mid
that ``GTPAgent.fit_sampling_times`` picks offline for the checkpoint (the level whose
two-step actions come closest to the finest trained path, on dataset states: no episode
is used to pick it), and for every t_mid that offline distance (RMS, action units). A
t_mid picked from one scan is picked on those episodes: confirm it with another
``--reset-seed``; the fitted one is not, so its score is an honest estimate.
Writes ``<--name>.md`` / ``.json``.
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
from ctflow_gym.data import DEFAULT_DATASET_ID


def scan(
    checkpoint: str, mids: list[float], episodes: int, envs: int, seed: int = 321, fitted: bool = True
) -> dict[str, dict]:
    """One checkpoint: ``"scores"`` at K = 2 for each t_mid (and ``"fitted"``), and at K = 5 (key ``"K=5"``);
    ``"distances"`` of each t_mid's actions to the fine path; ``"fitted_t_mid"``."""
    agent = GTPAgent.load(checkpoint, dataset=DEFAULT_DATASET_ID)
    plans = {f"{mid:g}": (agent.config.max_time, float(mid), 0.0) for mid in mids}
    result = {"scores": {}, "distances": {}}
    if fitted:
        fit = agent.fit_sampling_times((2,))[2]
        plans["fitted"] = fit.times
        result["fitted_t_mid"] = fit.times[1]
    for name, times in plans.items():
        result["distances"][name] = agent.sampling_plan_distance(times)
        score = agent.evaluate(episodes, seed=seed, n_envs=envs, sampling_times=times)["normalized_score"]
        result["scores"][name] = score
        print(f"[two-step] {checkpoint} t_mid {name} ({times[1]:.3g}): {score:.1f}", flush=True)
    result["scores"]["K=5"] = agent.evaluate(episodes, seed=seed, n_envs=envs, sampling_steps=5)["normalized_score"]
    return result


def main() -> None:
    parser = checkpoint_probe_parser(__doc__, "gtp_two_step_time")
    parser.add_argument("--mids", type=float, nargs="+", default=[2.515, 5.0, 8.0, 12.0])
    parser.add_argument("--no-fitted", action="store_true", help="skip the fitted t_mid (GTPAgent.fit_sampling_times)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--reset-seed", type=int, default=321, help="first reset seed of the episodes")
    args = parser.parse_args()
    results = {
        c: scan(c, args.mids, args.episodes, args.envs, args.reset_seed, fitted=not args.no_fitted)
        for c in args.checkpoints
    }
    plans = [f"{mid:g}" for mid in args.mids] + ([] if args.no_fitted else ["fitted"])
    columns = plans + ["K=5"]
    rows = [[c] + [f"{r['scores'][name]:.1f}" for name in columns] for c, r in results.items()]
    rows.append(["mean"] + [f"{np.mean([r['scores'][name] for r in results.values()]):.1f}" for name in columns])
    distance_rows = [
        [c, f"{r['fitted_t_mid']:.3g}" if "fitted_t_mid" in r else "-"]
        + [f"{r['distances'][name]:.3f}" for name in plans]
        for c, r in results.items()
    ]
    meta = {"episodes": args.episodes, "envs": args.envs, "mids": args.mids, "reset_seed": args.reset_seed}
    meta["machine"] = machine_info()
    text = "\n".join(
        [
            "# GTP two-step sampling: the middle noise level t_mid",
            "",
            (
                f"D4RL score, {args.episodes} episodes per cell (reset seeds {args.reset_seed}..), acting as "
                "`predict(deterministic=True)` (best of N samples by Q); columns: t_mid of K = 2 "
                "(default 2.515; fitted: the checkpoint's own fitted stop, picked offline), then K = 5 "
                f"(Karras' times). Machine: {meta['machine']}."
            ),
            "",
            markdown_table(["checkpoint", *[f"K=2, t_mid {c}" for c in plans], "K=5"], rows),
            "",
            "Offline: RMS distance (action units) of each K = 2 plan's actions to the finest trained path's "
            "(1024 dataset states, seed 0), the quantity the fit minimises.",
            "",
            markdown_table(["checkpoint", "fitted t_mid", *[f"t_mid {c}" for c in plans]], distance_rows),
            "",
        ]
    )
    out = Path(args.out)
    write_results(out, args.name, {"meta": meta, "results": results}, text)
    print(text)


if __name__ == "__main__":
    main()
