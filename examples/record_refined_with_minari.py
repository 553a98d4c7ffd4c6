"""Record refined Hopper episodes as an ordinary Minari dataset, and check they replay.

The shipped SAC policy acts in Hopper-v5 wrapped in ``RefinementWrapper(mode="commit")``;
Minari's own ``DataCollector`` records the episodes, with the simulator state of every
observation (``SimStateRecorder``, as the package's dataset builder does). The dataset is
loaded back with ``ctflow_gym.data``, cut into windows, and every window that holds no
committed jump is replayed from its recorded state: the rewards come back bit for bit.

    python examples/record_refined_with_minari.py                    # fits a small refiner (under a minute on a CPU)
    python examples/record_refined_with_minari.py --refiner FOLDER   # a saved refiner
"""

import argparse
import json
import tempfile
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
from minari import DataCollector

from ctflow_gym import TrajectoryRefiner, load_refiner
from ctflow_gym.data import (
    BUILD_METADATA_KEY,
    DEFAULT_DATASET_ID,
    default_policy_path,
    load_dataset,
    load_sb3_policy,
    make_windows,
)
from ctflow_gym.data.minari_io import minari_root_at
from ctflow_gym.replay import REPLAY_STATE_SPEC, SimStateRecorder, closed_loop_returns
from ctflow_gym.wrappers import COMMITTED_INFO_KEY, RefinementStepData, RefinementWrapper

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--refiner", help="checkpoint folder of a refiner (default: fit a small one and save it)")
parser.add_argument("--root", help="Minari root to write the dataset into (default: a new temporary folder)")
parser.add_argument("--episodes", type=int, default=5)
args = parser.parse_args()
root = Path(args.root or tempfile.mkdtemp(prefix="refined-minari-"))

if args.refiner:
    refiner = load_refiner(args.refiner)
else:
    refiner = TrajectoryRefiner(window=8, ae_steps=600, flow_steps=600, predictor_steps=200).fit(DEFAULT_DATASET_ID)
    refiner.save(root / "refiner")  # saved, so the dataset's env spec names its folder and can rebuild the env
policy = load_sb3_policy(default_policy_path())

# Recorder outside the wrapper: each recorded sim_state is the state after the wrapper's step,
# also when a committed window moved the episode to the refined end state.
env = gym.make("Hopper-v5", max_episode_steps=200)
env = RefinementWrapper(env, refiner, strength=1.0, replay=True, mode="commit")
env = SimStateRecorder(env)
with minari_root_at(root):
    collector = DataCollector(env, step_data_callback=RefinementStepData, record_infos=True)
    for episode in range(args.episodes):
        obs, _ = collector.reset(seed=episode)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = collector.step(policy.predict(obs, deterministic=True)[0])
            done = terminated or truncated
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*author_email.*")
        dataset = collector.create_dataset(
            dataset_id="ctflow/hopper/refined-commit-v0",
            eval_env="Hopper-v5",
            algorithm_name="shipped SAC policy in RefinementWrapper(mode='commit')",
            author="ctflow_gym example",
            code_permalink="examples/record_refined_with_minari.py",
            description="Hopper-v5 episodes with refined windows committed; infos hold sim_state",
        )
    # As the package's builder does: say which simulator state the infos hold.
    dataset.storage.update_metadata({BUILD_METADATA_KEY: json.dumps({"sim_state_spec": REPLAY_STATE_SPEC})})
    collector.close()
totals = env.env.totals
print(
    f"recorded {args.episodes} episodes into {root}: {totals.windows_committed} of {totals.windows_replayed} "
    "windows committed"
)

dataset = load_dataset(root / "ctflow/hopper/refined-commit-v0")
windows = make_windows(dataset, window=refiner.window, stride=refiner.window)  # aligned with the wrapper's windows
committed = np.array(
    [
        np.asarray(next(dataset.iterate_episodes([int(e)])).infos[COMMITTED_INFO_KEY])[
            1 + s : 1 + s + windows.window
        ].any()
        for e, s in zip(windows.episode_ids, windows.start_steps)
    ]
)
plain = windows.subset(~committed)
returns, _, _ = closed_loop_returns(plain.env_id, plain.sim_states, plain.actions, spec=plain.sim_state_spec)
exact = returns == plain.rewards.sum(axis=1)
print(
    f"{len(windows)} windows, {committed.sum()} with a committed jump; "
    f"{exact.sum()} of the other {len(plain)} replay bit for bit from their recorded sim_state"
)
assert exact.all()
