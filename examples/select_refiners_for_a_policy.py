"""Fit several refiners, keep those that help one policy on validation episodes, report on others.

    python examples/select_refiners_for_a_policy.py      # about 15 minutes on one CPU core
    python examples/select_refiners_for_a_policy.py --episodes 3 --seeds 0 --fit-steps 200   # a quick look

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

EPISODES = 20
"""Per validation and test set; more make a kept fit less likely to be luck."""


def main(argv=None) -> None:
    """Parse the arguments, fit one refiner per seed, select on validation episodes, test what was kept."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=EPISODES, help=f"per validation and test set ({EPISODES})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="refiner fit seeds (default: 0 1 2)")
    parser.add_argument("--fit-steps", type=int, default=None, help="refiner steps per stage (default: its own)")
    args = parser.parse_args(argv)

    episodes = args.episodes
    n = args.fit_steps
    steps = {} if n is None else {"ae_steps": n, "flow_steps": n, "predictor_steps": max(n // 2, 1)}
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
