"""Attach a refiner after the shipped SB3 policy and compare them with evaluate_policy.

python examples/refiner_after_sb3_policy.py
"""

import gymnasium as gym
from stable_baselines3.common.evaluation import evaluate_policy

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, default_policy_path, load_sb3_policy
from ctflow_gym.wrappers import RefinedPolicy, sb3_value_function

refiner = TrajectoryRefiner(window=16, ae_steps=1500, flow_steps=1500, predictor_steps=500).fit(DEFAULT_DATASET_ID)
sac = load_sb3_policy(default_policy_path())

env = gym.make("Hopper-v5")
env.reset(seed=0)
base_mean, base_std = evaluate_policy(sac, env, n_eval_episodes=5, warn=False)

env = gym.make("Hopper-v5")
env.reset(seed=0)
# Verification judges a window by its return plus gamma^H x the SAC critic's value of
# where it ends: by its own return alone, it accepts windows that fall later
# (benchmarks/results/closed_loop_policy.md).
refined = RefinedPolicy(sac, refiner, env, strength=0.5, verify=True, value_fn=sb3_value_function(sac))
refined_mean, refined_std = evaluate_policy(refined, env, n_eval_episodes=5, warn=False)

kept = sum(r["refined"] for r in refined.history)
print(f"base policy:              {base_mean:8.1f} +- {base_std:.1f}")
print(
    (
        f"refined, verified + tail: {refined_mean:8.1f} +- {refined_std:.1f}  "
        f"({kept}/{len(refined.history)} windows refined)"
    )
)
