"""Attach a refiner after the shipped medium SB3 policy, verified by replay, and compare with evaluate_policy.

    python examples/refiner_after_sb3_policy.py [--episodes N]
    python examples/refiner_after_sb3_policy.py --quick     # tiny fits, 2 episodes: checks it runs

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

TINY = dict(ae_steps=50, flow_steps=50, predictor_steps=20, inverse_dynamics_steps=20)
"""Refiner steps per stage of ``--quick``."""


def main(argv=None) -> None:
    """Parse the arguments, fit the refiner and V, evaluate the policy alone and refined on the same seeds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default: 5, 2 with --quick)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings: a smoke run of a minute or two whose numbers mean nothing"
    )
    args = parser.parse_args(argv)
    episodes = args.episodes or (2 if args.quick else 5)

    steps = TINY if args.quick else dict(ae_steps=1500, flow_steps=1500, predictor_steps=500)
    refiner = TrajectoryRefiner(window=16, **steps).fit(DEFAULT_DATASET_ID)
    value_fn = DatasetValueFunction(steps_per_round=20 if args.quick else 1000).fit(DEFAULT_DATASET_ID)
    medium = load_sb3_policy(shipped_policy_path("medium"))

    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    base_mean, base_std = evaluate_policy(medium, env, n_eval_episodes=episodes, warn=False)

    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    refined = RefinedPolicy(medium, refiner, env, strength=1.0, candidates=4, value_fn=value_fn)
    refined_mean, refined_std = evaluate_policy(refined, env, n_eval_episodes=episodes, warn=False)

    kept = sum(r["refined"] for r in refined.history)
    print(f"medium policy:                  {base_mean:8.1f} +- {base_std:.1f}")
    print(
        f"refined, 4 verified candidates: {refined_mean:8.1f} +- {refined_std:.1f}  "
        f"({kept}/{len(refined.history)} windows refined, {refined.simulator_steps} simulator steps replayed)"
    )


if __name__ == "__main__":
    main()
