"""Does refinement help the shipped SB3 policy in closed loop? Episode returns and cost.

Usage::

    python benchmarks/closed_loop_policy.py [--episodes 20] [--strength 0.5] [--refiner PATH]

Runs, on Hopper-v5 with the same episode seeds (1000 + i): the base policy; the
refiner attached after it without verification; and with replay verification (keep
the better of base and refined window). Reports mean and standard error of episode
return over the episodes, D4RL-normalised scores, and wall time per env step.
Writes ``closed_loop_policy.md`` and ``.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, default_policy_path, load_sb3_policy, normalized_score
from ctflow_gym.wrappers import RefinedPolicy, sb3_value_function

from common import machine_info  # noqa: E402  (benchmarks/ is the script's folder)


def run_episodes(make_policy, episodes: int) -> dict:
    returns, lengths, seconds = [], [], 0.0
    for i in range(episodes):
        env = gym.make("Hopper-v5")
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
    returns = np.array(returns)
    return {
        "returns": returns.tolist(),
        "mean": float(returns.mean()),
        "se": float(returns.std(ddof=1) / np.sqrt(len(returns))),
        "normalized_score": float(normalized_score("Hopper-v5", returns.mean())),
        "mean_length": float(np.mean(lengths)),
        "ms_per_step": 1000 * seconds / max(sum(lengths), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--refiner", default=None, help="a saved TrajectoryRefiner (default: fit one on the shipped dataset)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    refiner = TrajectoryRefiner.load(args.refiner) if args.refiner else TrajectoryRefiner(window=16, seed=args.seed).fit(DEFAULT_DATASET_ID, progress_bar=False)
    sac = load_sb3_policy(default_policy_path())
    rows = {
        "base policy": run_episodes(lambda env: sac, args.episodes),
        "refined, no verification": run_episodes(lambda env: RefinedPolicy(sac, refiner, env, args.strength, verify=False), args.episodes),
        "refined, replay verification": run_episodes(lambda env: RefinedPolicy(sac, refiner, env, args.strength, verify=True), args.episodes),
        "refined, verification with SAC critic tail": run_episodes(
            lambda env: RefinedPolicy(sac, refiner, env, args.strength, verify=True, value_fn=sb3_value_function(sac)), args.episodes
        ),
    }
    base = rows["base policy"]["mean"]
    result = {"strength": args.strength, "episodes": args.episodes, "seed": args.seed, "rows": rows, "machine": machine_info(), "wall_seconds": time.perf_counter() - started}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "closed_loop_policy.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# Refiner after the shipped SB3 policy, closed loop on Hopper-v5",
        "",
        f"Strength {args.strength}, {args.episodes} episodes (seeds 1000..{1000 + args.episodes - 1}), refiner window 16 fitted on `{DEFAULT_DATASET_ID}`. Machine: {result['machine']}.",
        "",
        "| policy | return (mean ± se) | vs base | D4RL score | mean length | ms / env step |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['mean']:.1f} ± {row['se']:.1f} | {100 * (row['mean'] / base - 1):+.1f}% | {row['normalized_score']:.1f} | {row['mean_length']:.0f} | {row['ms_per_step']:.2f} |")
    (out / "closed_loop_policy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
