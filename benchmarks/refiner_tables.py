"""The CTF paper's Tables 1-3 on our data, plus the closed-loop truth and costs.

Usage::

    python benchmarks/refiner_tables.py [--dataset ID_OR_PATH] [--out benchmarks/results]
        [--seed 0] [--eval-windows 1000] [--quick]

Setup: windows of H steps (stride 1) are split by episode into 80% for fitting and
20% for evaluation; every method is fitted on the first part only (the refiner keeps
a further 20% of those episodes to fit its return predictor), and evaluated on
``--eval-windows`` windows drawn from the second part. Closed-loop gain replays each
refined window from its recorded start state in MuJoCo (see
``ctflow_gym.refine.evaluation``). Writes ``refiner_tables.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import (
    fit_and_evaluation_windows,
    machine_info,
    markdown_table,
    mean_se_cell,
    write_atomic,
)  # benchmarks/ is the script's folder

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset
from ctflow_gym.refine import local_pairs
from ctflow_gym.refine.evaluation import evaluate_refinement

COLUMNS = [
    ("proxy_gain", "proxy gain"),
    ("action_deviation", "action dev"),
    ("latent_deviation", "latent dev"),
    ("realized_gain", "closed-loop gain"),
    ("dynamics_error", "dynamics error"),
]


def _cell(report: dict, key: str) -> str:
    value = report.get(key)
    if value is None:
        return "n/a"
    return mean_se_cell(value) if key in ("proxy_gain", "realized_gain") else f"{value['mean']:.3f}"


def _table(rows: list[tuple[str, dict]], first: str) -> str:
    header = [first] + [name for _, name in COLUMNS] + ["gain > 0", "terminated"]
    body = [
        [label]
        + [_cell(report, key) for key, _ in COLUMNS]
        + [
            f"{report.get(k, float('nan')):.2f}"
            for k in ("realized_gain_positive_fraction", "refined_terminated_fraction")
        ]
        for label, report in rows
    ]
    return markdown_table(header, body)


def _pair_cost(n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(n, 16)).astype(np.float32)
    episode_ids = np.arange(n) // 500
    start_steps = np.arange(n) % 500
    feedback = rng.normal(size=n)
    started = time.perf_counter()
    local_pairs(latents, feedback, episode_ids, start_steps, window=16, k=3, margin=0.1)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=DEFAULT_DATASET_ID)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--eval-windows", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="tiny budgets, for checking the script")
    args = parser.parse_args()
    budget = dict(ae_steps=300, flow_steps=300, predictor_steps=200) if args.quick else {}
    started_all = time.perf_counter()

    dataset = load_dataset(args.dataset)
    windows, fit_windows, eval_windows = fit_and_evaluation_windows(dataset, args.window, args.seed, args.eval_windows)
    print(
        f"{len(windows)} windows; fit on {len(fit_windows)}, evaluate {len(eval_windows)} held-out windows", flush=True
    )

    def fit(**overrides) -> tuple[TrajectoryRefiner, float]:
        started = time.perf_counter()
        refiner = TrajectoryRefiner(window=args.window, seed=args.seed, **budget, **overrides).fit(
            fit_windows, progress_bar=False
        )
        return refiner, time.perf_counter() - started

    def evaluate(refiner, **kwargs) -> dict:
        # Open loop: the committed tables measure the paper's decoded actions (tracked: refiner_levers.py).
        return evaluate_refinement(refiner, eval_windows, seed=args.seed, execution="open_loop", **kwargs)

    ours, fit_seconds = fit()
    print(f"fit {fit_seconds:.1f}s: {ours.fit_info}", flush=True)
    nonlocal_flow, _ = fit(targets="nonlocal")
    advantage, _ = fit(feedback="advantage")
    table1 = [
        ("ours (alpha = 1)", evaluate(ours)),
        ("nearest improved neighbour", evaluate(ours, method="nearest")),
        ("random improved trajectory", evaluate(ours, method="random")),
        ("non-local flow matching", evaluate(nonlocal_flow)),
        ("autoencoder reconstruction", evaluate(ours, method="reconstruction")),
        ("ours, advantage feedback (alpha = 1)", evaluate(advantage)),
    ]
    print("table 1 done", flush=True)
    table2 = []
    for k in (1, 3, 5, 10, 20, 50):
        refiner = ours if k == 3 else fit(k=k)[0]
        table2.append((f"k = {k}", {**evaluate(refiner), "pairs": refiner.fit_info["pairs"]}))
    print("table 2 done", flush=True)
    table3 = [(f"alpha = {a}", evaluate(ours, strength=a)) for a in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)]
    table3_adv = [(f"alpha = {a}", evaluate(advantage, strength=a)) for a in (0.25, 0.5, 0.75, 1.0)]
    print("table 3 done", flush=True)

    batch = eval_windows.subset(np.arange(len(eval_windows)) % len(eval_windows))
    big_obs = np.resize(batch.observations, (1024, *batch.observations.shape[1:]))
    big_act = np.resize(batch.actions, (1024, *batch.actions.shape[1:]))
    ours.refine(big_obs, big_act)
    started = time.perf_counter()
    repeats = 5
    for _ in range(repeats):
        ours.refine(big_obs, big_act)
    throughput = repeats * 1024 / (time.perf_counter() - started)
    latencies = []
    for i in range(50):
        started = time.perf_counter()
        ours.refine(big_obs[i], big_act[i])
        latencies.append(time.perf_counter() - started)
    cost = {
        "fit_seconds": fit_seconds,
        "refine_windows_per_second_batch_1024": throughput,
        "refine_latency_ms_batch_1_median": 1000 * float(np.median(latencies)),
        "pair_construction_seconds": {
            str(n): _pair_cost(n, args.seed) for n in ((1000, 2000) if args.quick else (10_000, 100_000))
        },
    }
    result = {
        "dataset": str(args.dataset),
        "dataset_steps": int(dataset.total_steps),
        "window": args.window,
        "seed": args.seed,
        "windows": len(windows),
        "fit_windows": len(fit_windows),
        "eval_windows": len(eval_windows),
        "refiner_config": ours.config.to_dict(),
        "fit_info": ours.fit_info,
        "table1": dict(table1),
        "table2": dict(table2),
        "table3": dict(table3),
        "table3_advantage": dict(table3_adv),
        "cost": cost,
        "machine": machine_info(),
        "wall_seconds": time.perf_counter() - started_all,
        "quick": args.quick,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "refiner_tables_quick" if args.quick else "refiner_tables"
    write_atomic(out / f"{stem}.json", json.dumps(result, indent=2, default=float))
    md = [
        f"# TrajectoryRefiner: the CTF paper's tables on `{args.dataset}`",
        "",
        f"Window H = {args.window}, seed {args.seed}, {len(fit_windows)} fit windows, "
        f"{len(eval_windows)} held-out evaluation windows "
        f"(episodes unseen in fitting). Machine: {result['machine']}. Wall time {result['wall_seconds'] / 60:.1f} min.",
        "Gains are in window-return units (sum of H rewards); mean ± standard error over evaluation windows.",
        (
            "Closed-loop gain: refined actions replayed open loop in MuJoCo from the source window's "
            "recorded start state, minus the source's realised return."
        ),
        "",
        "## Table 1: methods",
        _table(table1, "method"),
        "",
        "## Table 2: neighbourhood size k (ours, alpha = 1)",
        _table(table2, "k"),
        "",
        "## Table 3: refinement strength alpha (ours)",
        _table(table3, "alpha"),
        "",
        "### Table 3b: alpha with advantage feedback",
        _table(table3_adv, "alpha"),
        "",
        "## Cost",
        f"- fit (autoencoder + pairs + flow + predictor): {cost['fit_seconds']:.1f} s",
        f"- refine throughput at batch 1024: {cost['refine_windows_per_second_batch_1024']:.0f} windows/s",
        f"- refine latency at batch 1 (median of 50): {cost['refine_latency_ms_batch_1_median']:.2f} ms",
        "- pair construction (exact k-NN, d = 16, k = 3): "
        + ", ".join(f"{n} windows: {s:.2f} s" for n, s in cost["pair_construction_seconds"].items()),
        "",
    ]
    write_atomic(out / f"{stem}.md", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
