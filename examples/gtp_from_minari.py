"""Train a GTPAgent from a Minari dataset and evaluate it with SB3's evaluate_policy.

Uses the shipped Hopper dataset (pass another Minari id or path as the first
argument, e.g. a D4RL port such as ``mujoco/hopper/medium-v0`` where a network lets
Minari download it). A few thousand steps take a few minutes on a CPU and give a weak
policy; the paper trains for a million steps.

    python examples/gtp_from_minari.py [DATASET] [STEPS]
"""

import sys

from stable_baselines3.common.evaluation import evaluate_policy

from agents import GTPAgent
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

dataset = load_dataset(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DATASET_ID)
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3000

agent = GTPAgent(dataset.env_spec.id, dataset, eta=5.0, seed=0, verbose=1)
agent.learn(
    steps,
    progress_bar=True,
    eval_freq=steps // 2,
    n_eval_episodes=3,
    checkpoint_path="gtp_example",
    checkpoint_freq=1000,
)
for k in (1, 2, 5):
    agent.sampling_steps = k
    mean, std = evaluate_policy(agent, agent.get_env(), n_eval_episodes=5)
    print(f"K={k}: return {mean:.1f} +- {std:.1f}")
print("saved to gtp_example/; reload with GTPAgent.load('gtp_example')")
