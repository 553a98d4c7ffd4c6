"""An ensemble of fits on held-out windows: single members vs their mean vs the agreement gate.

Usage::

    python benchmarks/ensemble_windows.py [--feedback return] [--seeds 0 1 2] [--strengths 1.0 1.5 2.0]
        [--gates 0.0 0.8] [--eval-windows 500] [--work /tmp/ctflow_bench] [--out benchmarks/results]

The members are ``TrajectoryRefiner(seed=s, split_seed=seeds[0], feedback=...)`` fitted
on the shipped dataset with package defaults (cached in ``--work``), so all of them hold
out the same episodes: the first member's split, which is the split of
``refiner_levers.py``'s fit seed ``seeds[0]``, and the ``--eval-windows`` windows drawn
from it with that seed are the same windows (rows comparable to that seed's lever rows).
Every row refines and replays the same windows, tracked execution: paired. The ±
is the standard error over windows. Score gain = window return + gamma^H V_eval(end)
with V_eval a ``DatasetValueFunction`` (seed ``seeds[0] + 1000``) fitted on the training
episodes, as in the lever table. Writes ``ensemble_windows_<feedback>.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from common import machine_info, markdown_table, write_atomic  # benchmarks/ is the script's folder

from ctflow_gym import DatasetValueFunction, RefinerEnsemble, TrajectoryRefiner, load_refiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_transitions
from ctflow_gym.refine.evaluation import evaluate_refinement, held_out_windows


def members(dataset, feedback: str, seeds: list[int], work: Path) -> list:
    """Fitted members (loaded from ``work`` when there)."""
    fitted = []
    for seed in seeds:
        folder = work / f"member_{feedback}_seed{seed}_split{seeds[0]}"
        if not folder.exists():
            refiner = TrajectoryRefiner(seed=seed, split_seed=seeds[0], feedback=feedback)
            refiner.fit(dataset, progress_bar=False).save(folder)
        fitted.append(load_refiner(folder))
    return fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feedback", default="return")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0, 1.5, 2.0])
    parser.add_argument("--gates", type=float, nargs="+", default=[0.0, 0.8])
    parser.add_argument("--eval-windows", type=int, default=500)
    parser.add_argument("--work", default="/tmp/ctflow_bench")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    started = time.perf_counter()
    dataset = load_dataset(DEFAULT_DATASET_ID)
    fitted = members(dataset, args.feedback, args.seeds, Path(args.work))
    windows = held_out_windows(fitted[0], dataset, args.eval_windows, seed=args.seeds[0])
    train_episodes = np.setdiff1d(dataset.episode_indices, fitted[0].held_out_episodes)
    value_eval = DatasetValueFunction(seed=args.seeds[0] + 1000).fit(
        load_transitions(dataset, episodes=train_episodes), progress_bar=False
    )
    refiners = {f"member seed {s}": m for s, m in zip(args.seeds, fitted)}
    for gate in args.gates:
        refiners[f"mean of {len(fitted)}, gate {gate}"] = RefinerEnsemble(fitted, combine="mean", agreement_gate=gate)
    results = {}
    for strength in args.strengths:
        for name, refiner in refiners.items():
            report = evaluate_refinement(refiner, windows, strength, validity=False, value_fn=value_eval)
            results[f"{name}|{strength}"] = {
                k: report.get(k)
                for k in ("realized_gain", "realized_score_gain", "realized_gain_positive_fraction", "proxy_gain")
            }
            if isinstance(refiner, RefinerEnsemble):
                gated = refiner.refine(windows.observations, windows.actions, strength=strength).gated
                results[f"{name}|{strength}"]["refined_fraction"] = float(1.0 - gated.mean())
            gain = report["realized_gain"]["mean"]
            print(f"{name} alpha {strength}: gain {gain:+.3f}", flush=True)
    meta = {
        "feedback": args.feedback,
        "seeds": args.seeds,
        "eval_windows": len(windows),
        "machine": machine_info(),
        "wall_minutes": (time.perf_counter() - started) / 60,
    }
    rows = []
    for key, r in results.items():
        name, strength = key.split("|")
        proxy = r["proxy_gain"]
        rows.append(
            [
                name,
                strength,
                f"{r['realized_gain']['mean']:+.3f} ± {r['realized_gain']['se']:.3f}",
                f"{r['realized_gain_positive_fraction']:.2f}",
                f"{r['realized_score_gain']['mean']:+.3f} ± {r['realized_score_gain']['se']:.3f}",
                "-" if proxy is None else f"{proxy['mean']:+.3f}",
                f"{r.get('refined_fraction', 1.0):.2f}",
            ]
        )
    header = ["refiner", "alpha", "realised gain / window", "improved", "score gain", "proxy", "windows refined"]
    text = "\n".join(
        [
            f"# Ensemble of fits on held-out windows (feedback `{args.feedback}`)",
            "",
            (
                f"Members `TrajectoryRefiner(seed=s, split_seed={args.seeds[0]}, feedback={args.feedback!r})`, "
                f"s in {args.seeds}, package defaults; {len(windows)} windows of the shared held-out episodes "
                f"(drawn with seed {args.seeds[0]}), tracked execution, ± = standard error over windows. "
                f"Machine: {meta['machine']}. Wall time {meta['wall_minutes']:.0f} min."
            ),
            "",
            markdown_table(header, rows),
            "",
        ]
    )
    name = f"ensemble_windows_{args.feedback}"
    write_atomic(Path(args.out) / f"{name}.json", json.dumps({"meta": meta, "results": results}, indent=2))
    write_atomic(Path(args.out) / f"{name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
