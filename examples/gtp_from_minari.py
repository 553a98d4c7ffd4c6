"""Train a GTPAgent from a Minari dataset and evaluate it with SB3's evaluate_policy.

Uses the shipped Hopper dataset (pass another Minari id or path as the first
argument, e.g. a D4RL port such as ``mujoco/hopper/medium-v0`` where a network lets
Minari download it). A few thousand steps take a few minutes on a CPU and give a weak
policy; the paper trains for a million steps.

    python examples/gtp_from_minari.py [DATASET] [STEPS] [--out FOLDER]
    python examples/gtp_from_minari.py --help
"""

import argparse

from stable_baselines3.common.evaluation import evaluate_policy

from agents import GTPAgent
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset


def main(argv=None) -> None:
    """Parse the arguments, train, evaluate with K = 1, 2, 5 sampling steps, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default=DEFAULT_DATASET_ID, help="Minari id or path (default: shipped)")
    parser.add_argument("steps", nargs="?", type=int, default=3000, help="gradient steps (default: 3000)")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes per K (default: 5)")
    parser.add_argument("--out", default="gtp_example", help="checkpoint folder (default: gtp_example)")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.dataset)
    agent = GTPAgent(dataset.env_spec.id, dataset, eta=5.0, seed=0, verbose=1)
    agent.learn(
        args.steps,
        progress_bar=True,
        eval_freq=max(args.steps // 2, 1),
        n_eval_episodes=3,
        checkpoint_path=args.out,
        checkpoint_freq=1000,
    )
    for k in (1, 2, 5):
        agent.sampling_steps = k
        mean, std = evaluate_policy(agent, agent.get_env(), n_eval_episodes=args.episodes)
        print(f"K={k}: return {mean:.1f} +- {std:.1f}")
    print(f"saved to {args.out}/; reload with GTPAgent.load({args.out!r})")


if __name__ == "__main__":
    main()
