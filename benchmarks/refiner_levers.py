"""Levers of closed-loop refinement on held-out windows, over fit seeds: feedback x execution x strength.

For each fit seed s, refiners are fitted on the dataset with the package defaults except the
lever (``TrajectoryRefiner(seed=s, feedback=...)``; the refiner holds out 20% of the episodes,
chosen by s), and ``--eval-windows`` windows of the held-out episodes are refined and executed in
MuJoCo from their recorded start states. Levers: feedback ``"return"`` (the paper's window return)
or ``"bootstrapped_advantage"``; execution ``"open_loop"`` (decoded actions) or ``"tracked"``
(inverse-dynamics correction toward the planned states, the package default); the strength; and
``GaussianPerturbation`` (sigma 0.1) as the blind reference. Reported per lever: the realised gain
in window return, the share of windows improved, the score gain (window return + gamma^H
V_eval(end state), 0 after a termination), the proxy gain and the action deviation. V_eval is a
``DatasetValueFunction`` fitted on the same training episodes with another seed (s + 1000): the
same kind of estimate the bootstrapped feedback trained against, so its score gain favours that
lever by construction; the window-return gain has no such bias. Each seed is a cached run.

    python benchmarks/refiner_levers.py [--seeds 0 1 2 3 4] [--strengths 0.5 1.0 1.5 2.0] [--eval-windows 500]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from harness import Runs, Settings, option, parse, write_results

from ctflow_gym import DatasetValueFunction, GaussianPerturbation, TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_transitions
from ctflow_gym.refine.evaluation import evaluate_refinement, held_out_windows

FEEDBACKS = ("return", "bootstrapped_advantage")
EXECUTIONS = ("open_loop", "tracked")
STAGES = ("ae_steps", "flow_steps", "predictor_steps", "value_steps", "inverse_dynamics_steps")
KEPT = ("realized_gain", "realized_score_gain", "realized_gain_positive_fraction", "refined_terminated_fraction")


@dataclasses.dataclass
class LeversSettings(Settings):
    dataset: str = option(DEFAULT_DATASET_ID, "Minari dataset id or path")
    seeds: tuple[int, ...] = option((0, 1, 2, 3, 4), "fit seeds")
    strengths: tuple[float, ...] = option((0.5, 1.0, 1.5, 2.0), "refinement strengths")
    eval_windows: int = option(500, "held-out windows per seed")
    fit_steps: int | None = option(None, "training steps of every fit stage, V_eval's too (default: the package's)")
    name: str = option("refiner_levers", "result file name")


def row(report: dict, fit_seconds: float | None = None) -> dict:
    """What the table keeps of an ``evaluate_refinement`` report."""
    kept = {key: report[key] for key in KEPT}
    return {
        **kept,
        "proxy_gain": report.get("proxy_gain"),
        "action_deviation": report.get("action_deviation"),
        "fit_seconds": fit_seconds,
    }


def run_seed(dataset, seed: int, s: LeversSettings) -> dict:
    """Every lever for one fit seed."""
    budget = {} if s.fit_steps is None else dict.fromkeys(STAGES, s.fit_steps)
    rows, windows, value_eval = {}, None, None
    for feedback in FEEDBACKS:
        started = time.perf_counter()
        refiner = TrajectoryRefiner(seed=seed, feedback=feedback, **budget).fit(dataset, progress_bar=False)
        fit_seconds = time.perf_counter() - started
        if windows is None:
            windows = held_out_windows(refiner, dataset, s.eval_windows, seed=seed)
            train = load_transitions(dataset, episodes=np.setdiff1d(dataset.episode_indices, refiner.held_out_episodes))
            value_budget = {} if s.fit_steps is None else dict(rounds=2, steps_per_round=s.fit_steps)
            value_eval = DatasetValueFunction(seed=seed + 1000, **value_budget).fit(train, progress_bar=False)
        for strength in s.strengths:
            for execution in EXECUTIONS:
                options = dict(validity=False, execution=execution, value_fn=value_eval)
                report = evaluate_refinement(refiner, windows, strength, **options)
                rows[f"{feedback}|{execution}|{strength}"] = row(report, fit_seconds)
                print(
                    f"seed {seed} {feedback} {execution} {strength}: {report['realized_gain']['mean']:+.3f}", flush=True
                )
    noise = GaussianPerturbation(dataset.env_spec.id, window=windows.window, sigma=0.1)
    for strength in s.strengths:
        report = evaluate_refinement(noise, windows, strength, validity=False, value_fn=value_eval, seed=seed)
        rows[f"gaussian|open_loop|{strength}"] = row(report)
    return {"seed": seed, "eval_windows": len(windows), "rows": rows}


def main(argv: list[str] | None = None) -> Path:
    s = parse(LeversSettings, argv)
    quick = s.fit_steps is not None
    runs = Runs(Path(s.out) / f"{s.name}_runs")
    dataset = load_dataset(s.dataset)
    settings = {"strengths": list(s.strengths), "requested_eval_windows": s.eval_windows, "quick": quick}
    if quick:  # only when set: the committed runs predate it
        settings["fit_steps"] = s.fit_steps
    done = [runs.run(f"seed{seed}", settings, lambda seed=seed: run_seed(dataset, seed, s)) for seed in s.seeds]
    meta = {**s.recorded(), "quick": quick, "wall_minutes": sum(run["wall_seconds"] for run in done) / 60}
    title = "Refiner levers in closed loop (held-out windows, fit seeds)"
    return write_results(s, s.name, {"meta": meta, "runs": done}, "levers", title)


if __name__ == "__main__":
    main()
