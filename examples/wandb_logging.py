"""Follow a refiner fit and a GTP run in Weights & Biases, offline (no network).

Everything goes through one ``RunLogger``; the run is written under ``wandb_example/``
and can be uploaded later with the ``wandb sync`` command printed at the end. Use
``RunLogger("online", ...)`` after ``wandb login`` to stream instead.

    python examples/wandb_logging.py [--dir FOLDER]
    python examples/wandb_logging.py --quick      # tiny fit and training: checks it runs
"""

import argparse

from agents import GTPAgent
from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID
from ctflow_gym.logging import RunLogger

TINY = dict(ae_steps=50, flow_steps=50, predictor_steps=20, inverse_dynamics_steps=20)
"""Refiner steps per stage of ``--quick``."""


def main(argv=None) -> None:
    """Parse the arguments, then fit a refiner and train GTP into one offline W&B run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings: a smoke run of a minute or two whose numbers mean nothing"
    )
    parser.add_argument("--dir", default="wandb_example", help="where W&B writes the run (default: wandb_example)")
    args = parser.parse_args(argv)

    with RunLogger(
        "offline", run_name="example", config={"dataset": DEFAULT_DATASET_ID}, wandb_dir=args.dir, print_every=5
    ) as logger:
        steps = TINY if args.quick else dict(ae_steps=500, flow_steps=500, predictor_steps=200)
        TrajectoryRefiner(window=16, **steps).fit(DEFAULT_DATASET_ID, logger=logger)
        agent = GTPAgent("Hopper-v5", DEFAULT_DATASET_ID, run_logger=logger)
        agent_steps = 40 if args.quick else 1000
        agent.learn(agent_steps, log_interval=agent_steps // 10, eval_freq=agent_steps // 2, n_eval_episodes=2)
        run_folder = logger.run_dir
    print(f"upload later with: wandb sync {run_folder}")


if __name__ == "__main__":
    main()
