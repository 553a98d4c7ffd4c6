"""Two ``gtp_diagnostics.py`` reports side by side, seed by seed: did a change help the same seeds?

Usage::

    python benchmarks/gtp_compare_runs.py --baseline benchmarks/results/gtp_schedule_s1_40_200k \
        --variant benchmarks/results/gtp_ensemble5_200k [--label-baseline "1 critic"] \
        [--label-variant "5 critics"] --out benchmarks/results --name gtp_ensemble5_vs_one

Reads each folder's ``gtp_diagnostics.json`` (written by ``gtp_diagnostics.py``, also with
``--report-only``), keeps the seeds both hold (a same-seed pair shares the
evaluation resets, and the data order and initial weights where the change draws no
extra random numbers before them), and writes ``<name>.md`` / ``.json``:

- per seed and arm: the score (mean of the last 5 evaluations, K = 5 and K = 2 fitted),
  the worst of those 5, the best evaluation of the run and the training wall time;
- over the common seeds: median, mean and standard deviation of each score, and the
  mean and range of the paired differences (variant - baseline);
- the K = 5 learning curves, one column per arm and seed.

Nothing is trained or evaluated here: the numbers are the reports'. Wall times are as
each report measured them (its machine line says how many runs shared the cores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import machine_info, markdown_table, seed_statistics, write_results  # benchmarks/ is the script's folder

SCORES = (("K=5", "score_k5"), ("K=2 fitted", "score_k2_fitted"))  # the reports' last-5 means


def load_report(folder: Path) -> dict:
    """``{"meta": ..., "runs": {seed: run}}`` of ``folder/gtp_diagnostics.json``."""
    path = Path(folder) / "gtp_diagnostics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no gtp_diagnostics.json there (run gtp_diagnostics.py --report-only first)")
    report = json.loads(path.read_text())
    return {"meta": report["meta"], "runs": {run["seed"]: run for run in report["runs"]}}


def arm_summary(run: dict) -> dict:
    """One run's report scores (last-5 means), the worst of its last 5 K = 5 evaluations, its best one, wall time."""
    curve = run["curve"]
    last = curve[-5:]
    summary = {key: float(run.get(key, np.nan)) for _, key in SCORES}  # nan: not recorded by that code version
    summary.update(
        worst_last5_k5=float(min(point["k5"] for point in last)),
        best_k5=float(max(point["k5"] for point in curve)),
        best_k5_step=int(max(curve, key=lambda point: point["k5"])["step"]),
        final_step=int(curve[-1]["step"]),
        wall_hours=(run.get("wall_seconds") or np.nan) / 3600,  # None: not measured by that code version
    )
    return summary


def compare(baseline: dict, variant: dict) -> dict:
    """Per-seed summaries of both arms on their common seeds, with statistics over seeds and paired differences."""
    seeds = sorted(set(baseline["runs"]) & set(variant["runs"]))
    if not seeds:
        raise ValueError(
            f"the reports share no seed: baseline has {sorted(baseline['runs'])}, variant {sorted(variant['runs'])}"
        )
    arms = {
        name: {seed: arm_summary(report["runs"][seed]) for seed in seeds}
        for name, report in (("baseline", baseline), ("variant", variant))
    }
    statistics = {}
    for _, key in SCORES:
        # Seeds whose code version did not record a score (nan) are left out of its statistics.
        kept = [seed for seed in seeds if not any(np.isnan(arms[name][seed][key]) for name in arms)]
        if not kept:
            statistics[key] = None
            continue
        values = {name: [arms[name][seed][key] for seed in kept] for name in arms}
        differences = np.subtract(values["variant"], values["baseline"])
        statistics[key] = {
            "seeds": kept,
            "baseline": seed_statistics(values["baseline"]),
            "variant": seed_statistics(values["variant"]),
            "difference_mean": float(differences.mean()),
            "difference_min": float(differences.min()),
            "difference_max": float(differences.max()),
        }
    return {"seeds": seeds, "arms": arms, "statistics": statistics}


def curves_table(baseline: dict, variant: dict, seeds: list[int], labels: dict) -> str:
    """K = 5 score at every evaluation step, a column per (arm, seed); '-' where an arm has no evaluation."""
    columns = [(name, seed) for seed in seeds for name in ("baseline", "variant")]
    points = {
        (name, seed): {point["step"]: point["k5"] for point in report["runs"][seed]["curve"]}
        for name, report in (("baseline", baseline), ("variant", variant))
        for seed in seeds
    }
    steps = sorted({step for column in points.values() for step in column})
    rows = [
        [f"{step // 1000}k"] + [f"{points[column][step]:.1f}" if step in points[column] else "-" for column in columns]
        for step in steps
    ]
    return markdown_table(["step", *[f"seed {seed} {labels[name]}" for name, seed in columns]], rows)


def markdown(result: dict, baseline: dict, variant: dict, labels: dict, folders: dict) -> str:
    """The comparison as a report."""
    seeds, arms = result["seeds"], result["arms"]
    rows = []
    for seed in seeds:
        for name in ("baseline", "variant"):
            arm = arms[name][seed]
            rows.append(
                [
                    str(seed),
                    labels[name],
                    f"{arm['score_k5']:.1f}",
                    f"{arm['score_k2_fitted']:.1f}",
                    f"{arm['worst_last5_k5']:.1f}",
                    f"{arm['best_k5']:.1f} ({arm['best_k5_step'] // 1000}k)",
                    f"{arm['final_step'] // 1000}k",
                    f"{arm['wall_hours']:.2f}",
                ]
            )
    summary = []
    for label, key in SCORES:
        stats = result["statistics"][key]
        if stats is None:
            summary.append(f"- {label}: no seed has it in both arms.")
            continue
        arm_text = "; ".join(
            f"{labels[name]}: median {stats[name]['median']:.1f}, mean {stats[name]['mean']:.1f}, "
            f"std {stats[name]['std']:.1f}"
            for name in ("baseline", "variant")
        )
        summary.append(
            f"- {label}: {arm_text}. Paired difference ({labels['variant']} - {labels['baseline']}): "
            f"mean {stats['difference_mean']:+.1f}, "
            f"from {stats['difference_min']:+.1f} to {stats['difference_max']:+.1f}"
            + ("." if stats["seeds"] == seeds else f" (seeds {stats['seeds']}: the others lack it).")
        )
    return "\n".join(
        [
            f"# {labels['variant']} against {labels['baseline']}, seed by seed",
            "",
            (
                f"Reports: `{folders['baseline']}` ({labels['baseline']}) and `{folders['variant']}` "
                f"({labels['variant']}), on their common seeds {seeds}. Score = mean of the last 5 evaluations "
                f"(10 episodes each, D4RL-normalised) of the report's own evaluation protocol; a same-seed pair "
                "shares the seed (so the evaluation resets; the data order and initial weights too where the "
                "change draws no extra random numbers before them)."
            ),
            "",
            *summary,
            "",
            markdown_table(
                [
                    "seed",
                    "arm",
                    "score K=5",
                    "score K=2 fitted",
                    "worst of last 5 (K=5)",
                    "best evaluation (K=5)",
                    "trained to",
                    "wall hours",
                ],
                rows,
            ),
            "",
            "Wall hours are as each report measured them (its own machine and how many runs shared the cores).",
            "",
            "## Learning curves (K = 5)",
            "",
            curves_table(baseline, variant, seeds, labels),
            "",
            f"Machine of this comparison: {machine_info()} (it trains nothing).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="folder with the baseline's gtp_diagnostics.json")
    parser.add_argument("--variant", required=True, help="folder with the variant's gtp_diagnostics.json")
    parser.add_argument("--label-baseline", default="baseline")
    parser.add_argument("--label-variant", default="variant")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--name", default="gtp_compare_runs")
    args = parser.parse_args()
    folders = {"baseline": args.baseline, "variant": args.variant}
    reports = {name: load_report(Path(folder)) for name, folder in folders.items()}
    labels = {"baseline": args.label_baseline, "variant": args.label_variant}
    result = compare(reports["baseline"], reports["variant"])
    result.update(labels=labels, folders=folders, meta={name: report["meta"] for name, report in reports.items()})
    text = markdown(result, reports["baseline"], reports["variant"], labels, folders)
    write_results(Path(args.out), args.name, result, text)
    print(text)


if __name__ == "__main__":
    main()
