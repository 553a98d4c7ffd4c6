"""Levers of closed-loop refinement on held-out windows, over fit seeds (issue: realise the gain).

Usage::

    python benchmarks/refiner_levers.py [--seeds 0 1 2 3 4] [--strengths 1.0 2.0]
        [--eval-windows 500] [--out benchmarks/results] [--quick]

For each fit seed s: refiners are fitted on the shipped dataset with package defaults
except the lever (``TrajectoryRefiner(seed=s, feedback=...).fit(dataset)``; the refiner
holds out 20% of episodes, chosen by s), and ``--eval-windows`` windows of the held-out
episodes are refined and executed in MuJoCo from their recorded start states. Levers:

- feedback: ``"return"`` (the paper's window return) vs ``"bootstrapped_advantage"``
  (sum_t gamma^t r_t + gamma^H V(s_H) - V(s_1), V fitted on the training episodes);
- execution: ``"open_loop"`` (decoded actions) vs ``"tracked"`` (inverse-dynamics
  correction toward the planned states, the package default);
- strength alpha;
- Gaussian action noise (``GaussianPerturbation``, sigma 0.1) as the blind reference.

Reported per lever: realised gain in window return (per 16-step window), the share of
windows improved, the *score* gain (window return + gamma^H V_eval(end state), 0 after a
termination: it charges a refinement for the state it leaves behind), the proxy gain
and the action deviation. V_eval is a ``DatasetValueFunction`` fitted on the same
training episodes with another seed (s + 1000): independent of the held-out windows,
but the same kind of estimate the bootstrapped feedback trained against, so its score
gain favours that lever by construction; the window-return gain has no such bias.
Writes ``refiner_levers.md`` / ``.json``; finished seeds are cached in
``<out>/refiner_levers_runs/`` so a rerun resumes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import (
    RunCache,
    machine_info,
    markdown_table,
    write_results,
)  # benchmarks/ is the script's folder

from ctflow_gym import DatasetValueFunction, GaussianPerturbation, TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_transitions
from ctflow_gym.refine.evaluation import evaluate_refinement, held_out_windows

FEEDBACKS = ("return", "bootstrapped_advantage")
EXECUTIONS = ("open_loop", "tracked")
QUICK = dict(ae_steps=300, flow_steps=300, predictor_steps=200, inverse_dynamics_steps=300)


def _row(report: dict, fit_seconds: float | None = None) -> dict:
    keep = ("realized_gain", "realized_score_gain", "realized_gain_positive_fraction", "refined_terminated_fraction")
    row = {k: report[k] for k in keep}
    row["proxy_gain"] = report.get("proxy_gain")
    row["action_deviation"] = report.get("action_deviation")
    row["fit_seconds"] = fit_seconds
    return row


def run_seed(dataset, seed: int, args) -> dict:
    """Every lever for one fit seed."""
    budget = QUICK if args.quick else {}
    rows: dict[str, dict] = {}
    value_eval = None
    windows = None
    for feedback in FEEDBACKS:
        started = time.perf_counter()
        refiner = TrajectoryRefiner(seed=seed, feedback=feedback, **budget).fit(dataset, progress_bar=False)
        fit_seconds = time.perf_counter() - started
        if windows is None:
            windows = held_out_windows(refiner, dataset, args.eval_windows, seed=seed)
            train_episodes = np.setdiff1d(dataset.episode_indices, refiner.held_out_episodes)
            value_budget = dict(rounds=2, steps_per_round=300) if args.quick else {}
            value_eval = DatasetValueFunction(seed=seed + 1000, **value_budget).fit(
                load_transitions(dataset, episodes=train_episodes), progress_bar=False
            )
        for strength in args.strengths:
            for execution in EXECUTIONS:
                report = evaluate_refinement(
                    refiner, windows, strength, validity=False, execution=execution, value_fn=value_eval
                )
                rows[f"{feedback}|{execution}|{strength}"] = _row(report, fit_seconds)
                print(
                    f"seed {seed} {feedback} {execution} alpha {strength}: "
                    f"gain {report['realized_gain']['mean']:+.3f}, score {report['realized_score_gain']['mean']:+.3f}",
                    flush=True,
                )
    noise = GaussianPerturbation(dataset.env_spec.id, window=windows.window, sigma=0.1)
    for strength in args.strengths:
        report = evaluate_refinement(noise, windows, strength, validity=False, value_fn=value_eval, seed=seed)
        rows[f"gaussian|open_loop|{strength}"] = _row(report)
    return {"seed": seed, "eval_windows": len(windows), "rows": rows}


def _across_seeds(runs: list[dict], key: str, metric: str) -> tuple[float, float, list[float]]:
    values = [run["rows"][key][metric]["mean"] for run in runs]
    se = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
    return float(np.mean(values)), se, values


def markdown(runs: list[dict], meta: dict) -> str:
    """Table (a) of the issue: each lever, over fit seeds."""
    keys = list(runs[0]["rows"])
    rows = []
    for key in keys:
        feedback, execution, strength = key.split("|")
        gain, gain_se, per_seed = _across_seeds(runs, key, "realized_gain")
        score, score_se, _ = _across_seeds(runs, key, "realized_score_gain")
        first = [run["rows"][key] for run in runs]
        proxy = [r["proxy_gain"]["mean"] for r in first if r["proxy_gain"]]
        deviation = [r["action_deviation"]["mean"] for r in first if r["action_deviation"]]
        rows.append(
            [
                feedback,
                execution,
                strength,
                f"{gain:+.3f} ± {gain_se:.3f}",
                " ".join(f"{v:+.2f}" for v in per_seed),
                f"{sum(v > 0 for v in per_seed)}/{len(per_seed)}",
                f"{np.mean([r['realized_gain_positive_fraction'] for r in first]):.2f}",
                f"{score:+.3f} ± {score_se:.3f}",
                f"{np.mean(proxy):+.3f}" if proxy else "-",
                f"{np.mean(deviation):.3f}" if deviation else "-",
                f"{np.mean([r['refined_terminated_fraction'] for r in first]):.3f}",
            ]
        )
    header = [
        "feedback",
        "execution",
        "alpha",
        "realised gain (mean ± se over seeds)",
        "per seed",
        "seeds > 0",
        "windows improved",
        "score gain (return + γ^H V_eval)",
        "proxy gain",
        "action dev",
        "terminated",
    ]
    fits = [r["fit_seconds"] for run in runs for r in run["rows"].values() if r["fit_seconds"]]
    text = [
        "# Refiner levers in closed loop (held-out windows, fit seeds)",
        "",
        (
            f"Dataset `{meta['dataset']}`, H = 16, fit seeds {meta['seeds']}, "
            f"{meta['eval_windows']} held-out windows per seed (the refiner's own held-out episodes, drawn with the "
            f"seed), {'quick (tiny) budget' if meta['quick'] else 'package default budget'}. Gains per 16-step "
            "window; the ± is the standard error of the per-seed means (over seeds, not windows). Machine: "
            f"{meta['machine']}. Wall time {meta['wall_minutes']:.0f} min; refiner fit {np.mean(fits):.0f} s on "
            "average (one CPU thread, machine shared with other jobs)."
        ),
        "",
        markdown_table(header, rows),
        "",
        "Rows `gaussian`: GaussianPerturbation (sigma 0.1 x alpha), open loop, no verification.",
    ]
    return "\n".join(text) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET_ID)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--eval-windows", type=int, default=500)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--quick", action="store_true", help="tiny budgets, for checking the script")
    args = parser.parse_args()
    out = Path(args.out)
    cache = RunCache(out / ("refiner_levers_quick_runs" if args.quick else "refiner_levers_runs"))
    dataset = load_dataset(args.dataset)
    settings = {"strengths": args.strengths, "requested_eval_windows": args.eval_windows, "quick": args.quick}
    runs = []
    for seed in args.seeds:
        run = cache.get(f"seed{seed}", settings)
        if run is None:
            started = time.perf_counter()
            run = {**run_seed(dataset, seed, args), **settings}
            run.update(wall_seconds=time.perf_counter() - started, machine=machine_info())
            cache.put(f"seed{seed}", run)
        runs.append(run)
    meta = {
        "dataset": str(args.dataset),
        "seeds": args.seeds,
        "eval_windows": args.eval_windows,
        "machine": machine_info(),
        "wall_minutes": sum(r["wall_seconds"] for r in runs) / 60,
        "quick": args.quick,
    }
    name = "refiner_levers_quick" if args.quick else "refiner_levers"
    write_results(out, name, {"meta": meta, "runs": runs}, markdown(runs, meta))
    print((out / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
