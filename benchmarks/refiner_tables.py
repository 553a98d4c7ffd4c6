"""The CTF paper's Tables 1-3 on our data, plus the closed-loop truth and the costs.

Windows of H steps (stride 1) are split by episode, 80% for fitting and 20% for evaluation
(``split_episodes`` with ``--seed``); every method is fitted on the first part only (the refiner
keeps a further 20% of those episodes for its return predictor) and evaluated on
``--eval-windows`` windows drawn from the second. Table 1: the method against the paper's
baselines; Table 2: the neighbourhood size k; Table 3: the strength alpha (3b: with advantage
feedback). Beside the proxy gain the paper reports, the realised gain replays each refined
window open loop in MuJoCo from its recorded start state (``evaluate_refinement``; tracked
execution, the package default, is in ``refiner_levers.py``). Costs: fit time, refining
throughput and latency, exact pair search on random latents.

    python benchmarks/refiner_tables.py [--dataset ID_OR_PATH] [--seed 0] [--eval-windows 1000]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from harness import Settings, option, parse, write_results

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, make_windows, split_episodes
from ctflow_gym.refine import (
    NearestImprovedRefiner,
    NonLocalRefiner,
    RandomImprovedRefiner,
    ReconstructionRefiner,
    local_pairs,
)
from ctflow_gym.refine.evaluation import evaluate_refinement

STAGES = ("ae_steps", "flow_steps", "predictor_steps", "value_steps", "inverse_dynamics_steps")


@dataclasses.dataclass
class TablesSettings(Settings):
    dataset: str = option(DEFAULT_DATASET_ID, "Minari dataset id or path")
    seed: int = option(0, "the split's, the evaluation windows' and the fits' seed")
    window: int = option(16, "window length H")
    eval_windows: int = option(1000, "held-out evaluation windows")
    ks: tuple[int, ...] = option((1, 3, 5, 10, 20, 50), "Table 2's neighbourhood sizes")
    strengths: tuple[float, ...] = option((0.0, 0.25, 0.5, 0.75, 1.0, 1.25), "Table 3's strengths")
    advantage_strengths: tuple[float, ...] = option((0.25, 0.5, 0.75, 1.0), "Table 3b's strengths")
    fit_steps: int | None = option(None, "training steps of every fit stage (default: the package's)")
    cost_batch: int = option(1024, "windows per refine call of the throughput measurement")
    pair_cost_windows: tuple[int, ...] = option((10_000, 100_000), "window counts of the pair-search timing")
    name: str = option("refiner_tables", "result file name")


def pair_seconds(n: int, seed: int) -> float:
    """Seconds of exact pair construction (k = 3) on ``n`` random 16-d latents in episodes of 500."""
    rng = np.random.default_rng(seed)
    latents, feedback = rng.normal(size=(n, 16)).astype(np.float32), rng.normal(size=n)
    started = time.perf_counter()
    local_pairs(latents, feedback, np.arange(n) // 500, np.arange(n) % 500, window=16, k=3, margin=0.1)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> Path:
    s = parse(TablesSettings, argv)
    budget = {} if s.fit_steps is None else dict.fromkeys(STAGES, s.fit_steps)
    dataset = load_dataset(s.dataset)
    windows = make_windows(dataset, window=s.window)
    fit_windows, pool = split_episodes(windows, 0.2, seed=s.seed)  # no method sees an evaluation episode
    chosen = np.random.default_rng(s.seed).choice(len(pool), min(s.eval_windows, len(pool)), replace=False)
    eval_windows = pool.subset(np.sort(chosen))
    print(f"{len(windows)} windows; fit on {len(fit_windows)}, evaluate {len(eval_windows)}", flush=True)

    def fit(**overrides) -> TrajectoryRefiner:
        config = dict(window=s.window, seed=s.seed, **budget, **overrides)
        return TrajectoryRefiner(**config).fit(fit_windows, progress_bar=False)

    def evaluate(refiner, **options) -> dict:
        return evaluate_refinement(refiner, eval_windows, seed=s.seed, execution="open_loop", **options)

    started = time.perf_counter()
    ours = fit()
    fit_seconds = time.perf_counter() - started
    nonlocal_flow = NonLocalRefiner(window=s.window, seed=s.seed, **budget).fit(fit_windows, progress_bar=False)
    advantage = fit(feedback="advantage")
    table1 = {
        "ours (alpha = 1)": evaluate(ours),
        "nearest improved neighbour": evaluate(NearestImprovedRefiner(ours)),
        "random improved trajectory": evaluate(RandomImprovedRefiner(ours)),
        "non-local flow matching": evaluate(nonlocal_flow),
        "autoencoder reconstruction": evaluate(ReconstructionRefiner(ours)),
        "ours, advantage feedback (alpha = 1)": evaluate(advantage),
    }
    table2 = {}
    for k in s.ks:
        refiner = ours if k == ours.config.k else fit(k=k)
        table2[f"k = {k}"] = {**evaluate(refiner), "pairs": refiner.fit_info["pairs"]}
    table3 = {f"alpha = {a}": evaluate(ours, strength=a) for a in s.strengths}
    table3_advantage = {f"alpha = {a}": evaluate(advantage, strength=a) for a in s.advantage_strengths}

    batch = (np.resize(eval_windows.observations, (s.cost_batch, *eval_windows.observations.shape[1:])),)
    batch += (np.resize(eval_windows.actions, (s.cost_batch, *eval_windows.actions.shape[1:])),)
    ours.refine(*batch)
    started = time.perf_counter()
    for _ in range(5):
        ours.refine(*batch)
    throughput = 5 * s.cost_batch / (time.perf_counter() - started)
    latencies = []
    for i in range(min(50, s.cost_batch)):
        started = time.perf_counter()
        ours.refine(batch[0][i], batch[1][i])
        latencies.append(time.perf_counter() - started)
    cost = {
        "fit_seconds": fit_seconds,
        "refine_windows_per_second_batch_1024": throughput,
        "refine_latency_ms_batch_1_median": 1000 * float(np.median(latencies)),
        "pair_construction_seconds": {str(n): pair_seconds(n, s.seed) for n in s.pair_cost_windows},
    }
    data = {**s.recorded(), "dataset_steps": int(dataset.total_steps), "windows": len(windows)}
    data.update(fit_windows=len(fit_windows), eval_windows=len(eval_windows))
    data.update(refiner_config=ours.config.to_dict(), fit_info=ours.fit_info, cost=cost)
    data.update(table1=table1, table2=table2, table3=table3, table3_advantage=table3_advantage)
    title = f"TrajectoryRefiner: the CTF paper's tables on `{s.dataset}`"
    return write_results(s, s.name, data, "refiner-tables", title)


if __name__ == "__main__":
    main()
