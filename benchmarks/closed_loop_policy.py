"""Does refinement help the shipped SB3 policy in closed loop? Episode returns and cost.

Usage::

    python benchmarks/closed_loop_policy.py [--episodes 20] [--strengths 0.25 0.5 1.0] [--refiner PATH]

Runs, on Hopper-v5 with the same episode seeds (1000 + i): the base policy; then, at
each strength, the refiner attached after it without verification, with replay
verification (keep the better of base and refined window by its own return), and
with verification that adds gamma^H x the SAC critic's value of the window's end
state; and, at ``--wrapper-strength``, the policy acting in ``RefinementWrapper``
commit mode (the policy's own window runs first; a refined window that scores higher
on replay from the window's start is committed and the episode goes on from its
end). Reports mean and standard error of episode return over the episodes,
D4RL-normalised scores, and wall time per env step.
Writes ``closed_loop_policy.md`` and ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from common import machine_info, write_atomic  # noqa: E402  (benchmarks/ is the script's folder)

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, default_policy_path, load_sb3_policy, normalized_score
from ctflow_gym.statistics import mean_se
from ctflow_gym.wrappers import RefinedPolicy, RefinementWrapper, sb3_value_function

OPEN = "open_loop"
"""The committed results replay decoded actions open loop (tracked execution: refined_policy_table.py)."""


def run_episodes(make_policy, episodes: int, wrap=None) -> dict:
    """Episodes with seeds 1000 + i of ``make_policy(env)`` on Hopper-v5, optionally ``wrap(env)``-ped."""
    returns, lengths, seconds, falls, planned, refined = [], [], 0.0, 0, 0, 0
    for i in range(episodes):
        env = gym.make("Hopper-v5")
        if wrap is not None:
            env = wrap(env)
        obs, _ = env.reset(seed=1000 + i)
        policy = make_policy(env)
        total, steps, done = 0.0, 0, False
        started = time.perf_counter()
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
        seconds += time.perf_counter() - started
        returns.append(total)
        lengths.append(steps)
        falls += int(terminated)
        if isinstance(env, RefinementWrapper):
            planned += env.totals.windows_replayed
            refined += env.totals.windows_committed
        history = getattr(policy, "history", [])
        planned += len(history)
        refined += sum(bool(w["refined"]) for w in history)
    returns = np.array(returns)
    return {
        "returns": returns.tolist(),
        **mean_se(returns),
        "normalized_score": float(normalized_score("Hopper-v5", returns.mean())),
        "lengths": lengths,
        "mean_length": float(np.mean(lengths)),
        "terminated_episodes": falls,
        "ms_per_step": 1000 * seconds / max(sum(lengths), 1),
        "windows_planned": planned,
        "windows_refined": refined,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument(
        "--wrapper-strength",
        type=float,
        default=0.5,
        help="strength at which RefinementWrapper's commit mode is also run",
    )
    parser.add_argument(
        "--refiner", default=None, help="a saved TrajectoryRefiner (default: fit one on the shipped dataset)"
    )
    parser.add_argument(
        "--save-refiner", default=None, help="also save the fitted refiner here, for reuse with --refiner"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the markdown from the JSON in --out; run nothing"
    )
    args = parser.parse_args()
    if args.report_only:
        out = Path(args.out)
        write_markdown(json.loads((out / "closed_loop_policy.json").read_text()), out / "closed_loop_policy.md")
        print((out / "closed_loop_policy.md").read_text())
        return

    started = time.perf_counter()
    refiner = (
        TrajectoryRefiner.load(args.refiner)
        if args.refiner
        else TrajectoryRefiner(window=16, seed=args.seed).fit(DEFAULT_DATASET_ID, progress_bar=False)
    )
    sac = load_sb3_policy(default_policy_path())
    fit_seconds = time.perf_counter() - started
    if args.save_refiner and not args.refiner:
        refiner.save(args.save_refiner)
    rows = {"base policy": run_episodes(lambda env: sac, args.episodes)}
    for strength in args.strengths:
        rows[f"strength {strength}, no verification"] = run_episodes(
            lambda env: RefinedPolicy(sac, refiner, env, strength, verify=False, execution=OPEN), args.episodes
        )
        rows[f"strength {strength}, replay verification"] = run_episodes(
            lambda env: RefinedPolicy(sac, refiner, env, strength, verify=True, execution=OPEN), args.episodes
        )
        rows[f"strength {strength}, verification + SAC critic tail"] = run_episodes(
            lambda env: RefinedPolicy(
                sac, refiner, env, strength, verify=True, value_fn=sb3_value_function(sac), execution=OPEN
            ),
            args.episodes,
        )
        if strength == args.wrapper_strength:
            for label, value_fn in (("return", None), ("return + SAC critic tail", sb3_value_function(sac))):
                rows[f"strength {strength}, RefinementWrapper commit by {label}"] = run_episodes(
                    lambda env: sac,
                    args.episodes,
                    wrap=lambda env, v=value_fn: RefinementWrapper(
                        env, refiner, strength, replay=True, mode="commit", value_fn=v, execution=OPEN
                    ),
                )
        print(f"strength {strength} done", flush=True)
    result = {
        "strengths": args.strengths,
        "episodes": args.episodes,
        "seed": args.seed,
        "dataset": DEFAULT_DATASET_ID,
        "refiner": args.refiner,
        "refiner_fit_seconds": None if args.refiner else fit_seconds,
        "rows": rows,
        "machine": machine_info(),
        "wall_seconds": time.perf_counter() - started,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "closed_loop_policy.json", json.dumps(result, indent=2))
    write_markdown(result, out / "closed_loop_policy.md")
    print((out / "closed_loop_policy.md").read_text())


def write_markdown(result: dict, path: Path) -> None:
    """The table of ``result``; refined rows also get the paired difference to the base.

    Every row runs the same episode seeds, so per-episode differences to the base
    policy (mean +- standard error, and the share of episodes that did better) are
    the fair comparison; the unpaired standard errors include the spread between
    seeds that both rows share. "windows refined" is the share of planned windows
    whose refined actions were executed (verification keeps the base window otherwise;
    for RefinementWrapper rows: windows committed / windows replayed).
    """
    rows = result["rows"]
    base = np.asarray(rows["base policy"]["returns"])
    episodes = result["episodes"]
    lines = [
        "# Refiner after the shipped SB3 policy, closed loop on Hopper-v5",
        "",
        (
            f"Strengths {result['strengths']}, {episodes} episodes (seeds 1000..{1000 + episodes - 1}), "
            f"refiner window 16 fitted on `{result['dataset']}` "
            f"(default budget, seed {result['seed']}). Wall time {result['wall_seconds'] / 60:.1f} min. "
            f"Machine: {result['machine']}."
        ),
        "",
        (
            "| policy | return (mean ± se) | paired diff vs base (mean ± se) | episodes better | "
            "windows refined | D4RL score | mean length | fell (terminated) | ms / env step |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        diff = np.asarray(row["returns"]) - base
        paired = "" if name == "base policy" else f"{diff.mean():+.1f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.1f}"
        better = "" if name == "base policy" else f"{np.mean(diff > 0):.2f}"
        refined = f"{row['windows_refined'] / row['windows_planned']:.2f}" if row.get("windows_planned") else ""
        lines.append(
            (
                f"| {name} | {row['mean']:.1f} ± {row['se']:.1f} | {paired} | {better} | {refined} | "
                f"{row['normalized_score']:.1f} | {row['mean_length']:.0f} | "
                f"{row.get('terminated_episodes', '')} | {row['ms_per_step']:.2f} |"
            )
        )
    write_atomic(path, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
