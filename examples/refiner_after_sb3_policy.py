"""Attach a refiner after the shipped medium SB3 policy, verified by replay, and compare with evaluate_policy.

    python examples/refiner_after_sb3_policy.py [--fit-steps N] [--episodes N]

The refiner proposes 4 refined windows per window (strengths 0.25, 0.5, 0.75, 1.0),
each executed tracked toward its planned states and replayed from a snapshot; the best
is executed when its return plus gamma^16 V(end state) beats the policy's own window.
V is fitted on the shipped dataset, so this works for any policy (no critic needed).

Measured on 50 episodes (``benchmarks/results/closed_loop_refinement_analysis.md``):
this setting (window-return feedback, dataset V) *lowers* the medium policy's return
(-5% to -17% across fit seeds); feedback="bootstrapped_advantage", the policy's own
critic as value_fn with continuation=48, and a fit kept by
``examples/select_refiners_for_a_policy.py`` raised it by 16%.
"""

import argparse

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy

from ctflow_gym import DatasetValueFunction, RefinedPolicy, TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_sb3_policy, shipped_policy_path


def main(argv=None) -> None:
    """Parse the arguments, fit the refiner and V, evaluate the policy alone and refined on the same seeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-steps", type=int, default=1500, help="refiner training steps per stage (default: 1500)")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes (default: 5)")
    args = parser.parse_args(argv)

    steps = args.fit_steps
    refiner = TrajectoryRefiner(window=16, ae_steps=steps, flow_steps=steps, predictor_steps=max(steps // 3, 1))
    refiner.fit(DEFAULT_DATASET_ID)
    value_fn = DatasetValueFunction(steps_per_round=max(2 * steps // 3, 1)).fit(DEFAULT_DATASET_ID)
    medium = load_sb3_policy(shipped_policy_path("medium"))

    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    base_mean, base_std = evaluate_policy(medium, env, n_eval_episodes=args.episodes, warn=False)

    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    refined = RefinedPolicy(medium, refiner, env, strength=1.0, candidates=4, value_fn=value_fn)
    refined_mean, refined_std = evaluate_policy(refined, env, n_eval_episodes=args.episodes, warn=False)

    kept = sum(r["refined"] for r in refined.history)
    print(f"medium policy:                  {base_mean:8.1f} +- {base_std:.1f}")
    print(
        f"refined, 4 verified candidates: {refined_mean:8.1f} +- {refined_std:.1f}  "
        f"({kept}/{len(refined.history)} windows refined, {refined.simulator_steps} simulator steps replayed)"
    )


if __name__ == "__main__":
    main()
