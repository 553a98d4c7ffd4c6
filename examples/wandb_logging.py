"""Follow a refiner fit and a GTP run in Weights & Biases, offline (no network).

Everything goes through one ``RunLogger``; the run is written under ``wandb_example/``
and can be uploaded later with the ``wandb sync`` command printed at the end. Use
``RunLogger("online", ...)`` after ``wandb login`` to stream instead.

    python examples/wandb_logging.py [--fit-steps N] [--steps N] [--dir FOLDER]
"""

import argparse

from agents import GTPAgent
from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID
from ctflow_gym.logging import RunLogger


def main(argv=None) -> None:
    """Parse the arguments, then fit a refiner and train GTP into one offline W&B run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-steps", type=int, default=500, help="refiner training steps per stage (default: 500)")
    parser.add_argument("--steps", type=int, default=1000, help="GTP gradient steps (default: 1000)")
    parser.add_argument("--dir", default="wandb_example", help="where W&B writes the run (default: wandb_example)")
    args = parser.parse_args(argv)

    with RunLogger(
        "offline", run_name="example", config={"dataset": DEFAULT_DATASET_ID}, wandb_dir=args.dir, print_every=5
    ) as logger:
        steps = args.fit_steps
        TrajectoryRefiner(window=16, ae_steps=steps, flow_steps=steps, predictor_steps=max(steps * 2 // 5, 1)).fit(
            DEFAULT_DATASET_ID, logger=logger
        )
        agent = GTPAgent("Hopper-v5", DEFAULT_DATASET_ID, run_logger=logger)
        agent.learn(args.steps, log_interval=100, eval_freq=max(args.steps // 2, 1), n_eval_episodes=2)
        run_folder = logger.run_dir
    print(f"upload later with: wandb sync {run_folder}")


if __name__ == "__main__":
    main()
