"""Fit several refiners, keep those that help one policy on validation episodes, report on others.

    python examples/select_refiners_for_a_policy.py      # about 15 minutes on one CPU core
    python examples/select_refiners_for_a_policy.py --quick  # tiny fits, 2 episodes: checks it runs

What a refiner does to a policy's episodes depends mostly on its fit seed (one
bootstrapped-advantage fit in six helped the shipped medium policy, the others hurt it;
``benchmarks/results/closed_loop_refinement_analysis.md``, section 4), and that is a
stable property of the fit. So: fit a few seeds, attach each to the policy on validation
episodes (reset seeds 2000..), keep the ones that raise its return, and measure what
was kept on episodes the selection never saw (reset seeds 1000..).
"""

import argparse

import gymnasium as gym
import numpy as np

from ctflow_gym import RefinedPolicy, RefinerEnsemble, TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_sb3_policy, shipped_policy_path
from ctflow_gym.wrappers import run_episodes, select_refiners

TINY = dict(ae_steps=50, flow_steps=50, predictor_steps=20, inverse_dynamics_steps=20)
"""Refiner steps per stage of ``--quick`` (and 20 value steps per round)."""

EPISODES = 20
"""Per validation and test set; more make a kept fit less likely to be luck."""


def main(argv=None) -> None:
    """Parse the arguments, fit one refiner per seed, select on validation episodes, test what was kept."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=None, help=f"per validation and test set ({EPISODES})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="refiner fit seeds (default: 0 1 2)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings: a smoke run of a minute or two whose numbers mean nothing"
    )
    args = parser.parse_args(argv)

    episodes = args.episodes or (2 if args.quick else EPISODES)
    steps = dict(TINY, value_steps=20) if args.quick else {}
    policy = load_sb3_policy(shipped_policy_path("medium"), env="Hopper-v5")
    refiners = [
        TrajectoryRefiner(seed=seed, feedback="bootstrapped_advantage", **steps).fit(DEFAULT_DATASET_ID)
        for seed in args.seeds
    ]
    selection = select_refiners(policy, refiners, "Hopper-v5", episodes=episodes, seed=2000, strength=1.0, verify=False)
    for v in selection.validations:
        print(
            f"fit seed {args.seeds[v.index]}: {100 * v.relative_change:+.1f}% on validation "
            f"({v.episodes_better}/{episodes} better)"
        )
    if not selection.kept:
        print("no fit helped this policy on the validation episodes: attach none")
        return
    kept = [refiners[i] for i in selection.kept]
    refiner = kept[0] if len(kept) == 1 else RefinerEnsemble(kept)
    base = run_episodes(gym.make("Hopper-v5"), policy, episodes, seed=1000)
    env = gym.make("Hopper-v5")
    refined = run_episodes(env, RefinedPolicy(policy, refiner, env, strength=1.0, verify=False), episodes, seed=1000)
    print(f"test episodes: policy {np.mean(base):.1f}, with the kept refiner(s) {np.mean(refined):.1f}")


if __name__ == "__main__":
    main()
