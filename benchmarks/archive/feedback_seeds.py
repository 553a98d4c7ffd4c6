"""Window-return vs advantage feedback for the refiner, over several seeds, in closed loop.

Usage::

    python benchmarks/feedback_seeds.py [--seeds 0 1 2 3] [--strengths 0.5 1.0]
        [--dataset ID_OR_PATH] [--eval-windows 1000] [--out benchmarks/results]

``refiner_tables.py`` (one seed) found advantage feedback (window return minus a
learned value of the start observation) realising more than plain window return on
the v1 data, the reverse of v0. This script asks whether that holds across seeds
before anyone changes the default. For each seed: the same fit/evaluation split as
``refiner_tables.py`` (``common.fit_and_evaluation_windows`` with that seed, so the
evaluation windows differ by seed too), one refiner per feedback fitted with that
seed at the default budget, and the closed-loop (replayed) gain of both on the same
evaluation windows at each strength. Writes ``feedback_seeds.md`` and ``.json``.
Finished seeds are kept in ``<out>/feedback_seeds_runs/seed<k>.json`` and skipped on
a re-run, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import (
    RunCache,
    fit_and_evaluation_windows,
    machine_info,
    mean_se_cell,
    write_results,
)  # benchmarks/ is the script's folder

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset
from ctflow_gym.refine.evaluation import evaluate_refinement

FEEDBACKS = ("return", "advantage")


def run_seed(dataset, seed: int, args) -> dict:
    """Fit one refiner per feedback with ``seed`` and replay both on the seed's evaluation windows."""
    _, fit_windows, eval_windows = fit_and_evaluation_windows(dataset, args.window, seed, args.eval_windows)
    result = {"seed": seed, "eval_windows": len(eval_windows), "fit_windows": len(fit_windows), "by_feedback": {}}
    for feedback in FEEDBACKS:
        started = time.perf_counter()
        budget = dict(ae_steps=300, flow_steps=300, predictor_steps=200) if args.quick else {}
        refiner = TrajectoryRefiner(window=args.window, seed=seed, feedback=feedback, **budget).fit(
            fit_windows, progress_bar=False
        )
        fit_seconds = time.perf_counter() - started
        reports = {
            str(a): evaluate_refinement(
                refiner, eval_windows, strength=a, seed=seed, validity=False, execution="open_loop"
            )
            for a in args.strengths
        }
        result["by_feedback"][feedback] = {
            "fit_seconds": fit_seconds,
            "pairs": refiner.fit_info["pairs"],
            "by_strength": reports,
        }
        print(
            f"seed {seed} {feedback}: fit {fit_seconds:.0f}s, "
            + ", ".join(f"alpha {a}: {r['realized_gain']['mean']:+.3f}" for a, r in reports.items()),
            flush=True,
        )
    return result


def markdown(runs: list[dict], meta: dict) -> str:
    """Per seed and strength: realised gain (mean +- se over windows) and share improved, both feedbacks."""
    lines = [
        "# Refiner feedback: window return vs advantage, over seeds (closed loop)",
        "",
        (
            f"Dataset `{meta['dataset']}`, window {meta['window']}, "
            f"{'quick (tiny) budget' if meta['quick'] else 'default refiner budget'}, "
            f"{meta['eval_windows']} held-out evaluation windows per seed "
            "(episodes unseen in fitting; split and fit seeded with the seed). Realised gain: refined "
            "window replayed in MuJoCo from its recorded "
            "start state minus the source window's return, per 16-step window (mean ± se over "
            f"windows). Machine: {meta['machine']}. Wall time of all seeds {meta['wall_minutes']:.0f} "
            "min."
        ),
        "",
        (
            "| seed | alpha | return: realised gain | return: improved | advantage: realised gain | "
            "advantage: improved | advantage - return |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    differences: dict[str, list[float]] = {}
    for run in runs:
        for alpha in meta["strengths"]:
            cells, means = [], []
            for feedback in FEEDBACKS:
                report = run["by_feedback"][feedback]["by_strength"][str(alpha)]
                gain = report["realized_gain"]
                cells += [mean_se_cell(gain), f"{report['realized_gain_positive_fraction']:.2f}"]
                means.append(gain["mean"])
            differences.setdefault(str(alpha), []).append(means[1] - means[0])
            lines.append(f"| {run['seed']} | {alpha} | " + " | ".join(cells) + f" | {means[1] - means[0]:+.3f} |")
    lines += ["", "Advantage minus return, over seeds (mean ± sample std, seeds where advantage realised more):", ""]
    for alpha, values in differences.items():
        spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
        lines.append(
            (
                f"- alpha {alpha}: {np.mean(values):+.3f} ± {spread:.3f}, {sum(v > 0 for v in values)} of "
                f"{len(values)} seeds"
            )
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET_ID)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--eval-windows", type=int, default=1000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--quick", action="store_true", help="tiny budgets, for checking the script")
    args = parser.parse_args()
    out = Path(args.out)
    cache = RunCache(out / "feedback_seeds_runs")
    dataset = load_dataset(args.dataset)
    runs = []
    for seed in args.seeds:
        settings = {
            "strengths": args.strengths,
            "window": args.window,
            "requested_eval_windows": args.eval_windows,
            "quick": args.quick,
        }
        run = cache.get(f"seed{seed}", settings)
        if run is None:
            seed_started = time.perf_counter()
            run = {**run_seed(dataset, seed, args), **settings}
            run.update(wall_seconds=time.perf_counter() - seed_started, machine=machine_info())
            cache.put(f"seed{seed}", run)
        runs.append(run)
    meta = {
        "dataset": str(args.dataset),
        "window": args.window,
        "strengths": args.strengths,
        "eval_windows": args.eval_windows,
        "machine": machine_info(),
        "wall_minutes": sum(r["wall_seconds"] for r in runs) / 60,
        "quick": args.quick,
    }
    write_results(out, "feedback_seeds", {"meta": meta, "runs": runs}, markdown(runs, meta))
    print((out / "feedback_seeds.md").read_text())


if __name__ == "__main__":
    main()
