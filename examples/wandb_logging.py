"""Follow a refiner fit and a GTP run in Weights & Biases, offline (no network).

Everything goes through one ``RunLogger``; the run is written under ``wandb_example/``
and can be uploaded later with the ``wandb sync`` command printed at the end. Use
``RunLogger("online", ...)`` after ``wandb login`` to stream instead.

    python examples/wandb_logging.py
"""

from agents import GTPAgent
from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID
from ctflow_gym.logging import RunLogger

with RunLogger(
    "offline", run_name="example", config={"dataset": DEFAULT_DATASET_ID}, wandb_dir="wandb_example", print_every=5
) as logger:
    TrajectoryRefiner(window=16, ae_steps=500, flow_steps=500, predictor_steps=200).fit(
        DEFAULT_DATASET_ID, logger=logger
    )
    agent = GTPAgent("Hopper-v5", DEFAULT_DATASET_ID, run_logger=logger)
    agent.learn(1000, log_interval=100, eval_freq=500, n_eval_episodes=2)
    run_folder = logger.run_dir
print(f"upload later with: wandb sync {run_folder}")
