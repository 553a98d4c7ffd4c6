"""Train the shipped *medium* Hopper-v5 policy: SB3 SAC, checkpoints at medium level.

How ``ctflow_gym/assets/datasets/ctflow/hopper/medium-replay-v1/medium_policy.zip`` was
made. A separate SAC run with the settings of the run that recorded the shipped
dataset (``learning_starts=10_000``, SB3 defaults otherwise, seed 21, CPU); every
``--eval-every`` steps the deterministic policy is evaluated on ``--eval-episodes``
episodes (seeds 10_000 + i) and every checkpoint whose mean return lies in
``[--low, --high]`` is saved as ``<out>/step_<n>.zip`` with the optimiser state cleared
(only inference needs the file). The shipped one was chosen among those by a longer
evaluation (see ``--select``).

Usage::

    python scripts/train_medium_policy.py --out /tmp/medium_run
    python scripts/train_medium_policy.py --out /tmp/medium_run --select 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np


def evaluate(model, episodes: int, seed0: int) -> tuple[float, float, int]:
    """Mean and std of deterministic returns, and the number of falls (terminations)."""
    env = gym.make("Hopper-v5")
    returns, falls = [], 0
    for i in range(episodes):
        obs, _ = env.reset(seed=seed0 + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        falls += int(terminated)
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns)), falls


def train(args) -> None:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history = []
    started = time.time()

    class SaveMedium(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every:
                return True
            mean, std, falls = evaluate(self.model, args.eval_episodes, 10_000)
            row = {"step": self.num_timesteps, "mean": mean, "std": std, "falls": falls, "s": time.time() - started}
            history.append(row)
            print(json.dumps(row), flush=True)
            if args.low <= mean <= args.high:
                # Only inference needs the file: save without Adam's moments (half the size).
                optimizers = [self.model.actor.optimizer, self.model.critic.optimizer, self.model.ent_coef_optimizer]
                optimizers = [o for o in optimizers if o is not None]
                states = [o.state for o in optimizers]
                for o in optimizers:
                    o.state = type(o.state)()
                self.model.save(out / f"step_{self.num_timesteps}.zip")
                for o, state in zip(optimizers, states):
                    o.state = state
            (out / "history.json").write_text(json.dumps(history, indent=1))
            return self.num_timesteps < args.steps and not (history and mean > args.stop_above)

    model = SAC("MlpPolicy", gym.make("Hopper-v5"), seed=args.seed, device="cpu", verbose=0, learning_starts=10_000)
    model.learn(total_timesteps=args.steps, callback=SaveMedium())


def select(args) -> None:
    from stable_baselines3 import SAC

    rows = []
    for path in sorted(Path(args.out).glob("step_*.zip"), key=lambda p: int(p.stem.split("_")[1])):
        mean, std, falls = evaluate(SAC.load(path, device="cpu"), args.select, 1000)
        rows.append({"file": path.name, "mean": mean, "std": std, "falls": falls})
        print(json.dumps(rows[-1]), flush=True)
    (Path(args.out) / "selection.json").write_text(json.dumps(rows, indent=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--low", type=float, default=900.0)
    parser.add_argument("--high", type=float, default=1800.0)
    parser.add_argument("--stop-above", type=float, default=2600.0)
    parser.add_argument("--select", type=int, default=0, help="evaluate saved checkpoints on this many episodes")
    args = parser.parse_args(argv)
    select(args) if args.select else train(args)


if __name__ == "__main__":
    sys.exit(main())
