"""Fit several refiners, keep those that help one policy on validation episodes, report on others.

python examples/select_refiners_for_a_policy.py      # about 15 minutes on one CPU core

What a refiner does to a policy's episodes depends mostly on its fit seed (one
bootstrapped-advantage fit in six helped the shipped medium policy, the others hurt it;
``benchmarks/results/closed_loop_refinement_analysis.md``, section 4), and that is a
stable property of the fit. So: fit a few seeds, attach each to the policy on validation
episodes (reset seeds 2000..), keep the ones that raise its return, and measure what
was kept on episodes the selection never saw (reset seeds 1000..).
"""

import gymnasium as gym
import numpy as np

from ctflow_gym import RefinedPolicy, RefinerEnsemble, TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_sb3_policy, shipped_policy_path
from ctflow_gym.wrappers import run_episodes, select_refiners

EPISODES = 20  # per validation and test set; more make a kept fit less likely to be luck

if __name__ == "__main__":
    policy = load_sb3_policy(shipped_policy_path("medium"), env="Hopper-v5")
    refiners = [
        TrajectoryRefiner(seed=seed, feedback="bootstrapped_advantage").fit(DEFAULT_DATASET_ID) for seed in (0, 1, 2)
    ]
    selection = select_refiners(policy, refiners, "Hopper-v5", episodes=EPISODES, seed=2000, strength=1.0, verify=False)
    for v in selection.validations:
        print(
            f"fit seed {v.index}: {100 * v.relative_change:+.1f}% on validation ({v.episodes_better}/{EPISODES} better)"
        )
    if not selection.kept:
        print("no fit helped this policy on the validation episodes: attach none")
    else:
        kept = [refiners[i] for i in selection.kept]
        refiner = kept[0] if len(kept) == 1 else RefinerEnsemble(kept)
        base = run_episodes(gym.make("Hopper-v5"), policy, EPISODES, seed=1000)
        env = gym.make("Hopper-v5")
        refined = run_episodes(
            env, RefinedPolicy(policy, refiner, env, strength=1.0, verify=False), EPISODES, seed=1000
        )
        print(f"test episodes: policy {np.mean(base):.1f}, with the kept refiner(s) {np.mean(refined):.1f}")
