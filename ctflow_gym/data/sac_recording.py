"""``medium-replay``: an SB3 SAC run recorded from scratch until it reaches medium level.

:func:`train_sac_recording` trains SAC on the recording env of
:func:`ctflow_gym.data.builder.build_dataset`, so every transition SAC sees is the
dataset, and stops once its deterministic evaluation return and the best recorded
episode reach the target (D4RL's expert return / 3 by default) after ``min_steps``. The
SAC policy at that point is saved beside the dataset ("the medium policy"). Resets are
seeded (:class:`SeededResets`) and SAC runs on one torch thread, so a recipe's build
repeats bit for bit on any CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from ctflow_gym import progress
from ctflow_gym.data.scores import d4rl_reference_returns

if TYPE_CHECKING:
    from ctflow_gym.data.builder import BuildConfig


class SeededResets(gym.Wrapper):
    """Gives every reset without a seed one drawn from a seeded generator.

    SB3 and Minari otherwise reseed episodes from OS entropy, which would make
    builds irreproducible.
    """

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._rng = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        if seed is None:
            seed = int(self._rng.integers(2**31 - 1))
        return self.env.reset(seed=seed, options=options)


def import_minari_lazy_modules() -> None:
    """Import now what Minari's episode buffer imports at the first recorded step.

    Minari (``create`` extra) imports jax there, and importing jax draws from numpy's
    global RNG, which SB3 has seeded for its replay sampling: only the first build in a
    process would see that draw, so two builds in one process would differ.
    """
    try:
        import jax.tree_util  # noqa: F401
    except ImportError:  # a Minari without jax does not import it either
        pass


def train_sac_recording(collector: gym.Env, config: "BuildConfig", policy_path: Path) -> dict[str, Any]:
    """Run SB3 SAC on ``collector`` until its evaluation return reaches the target."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor

    target = config.target_return
    if target is None:
        _, expert = d4rl_reference_returns(config.env_id)
        target = expert / 3.0
    eval_env = Monitor(SeededResets(gym.make(config.env_id), config.seed + 10_000))
    history: list[dict[str, float]] = []

    best_episode = [-np.inf]
    started = time.time()
    stop_reason = ["n_steps"]

    class StopAtTarget(BaseCallback):
        """Stops SAC once it is at medium level and the data holds a medium episode."""

        def _on_step(self) -> bool:
            bar.update(self.num_timesteps - bar.n)
            for info in self.locals.get("infos", ()):
                if "episode" in info:
                    best_episode[0] = max(best_episode[0], float(info["episode"]["r"]))
            if self.num_timesteps % config.eval_every:
                return True
            mean, std = evaluate_policy(self.model, eval_env, n_eval_episodes=config.eval_episodes, deterministic=True)
            history.append(
                {
                    "step": self.num_timesteps,
                    "eval_return_mean": float(mean),
                    "eval_return_std": float(std),
                    "best_recorded_return": best_episode[0],
                }
            )
            print(
                f"[medium-replay] step {self.num_timesteps}: eval return {mean:.1f} +- {std:.1f}, "
                f"best recorded episode {best_episode[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
            if mean >= target and best_episode[0] >= target and self.num_timesteps >= config.min_steps:
                stop_reason[0] = "target_return"
                return False
            if config.max_minutes is not None and time.time() - started > 60 * config.max_minutes:
                stop_reason[0] = "max_minutes"
                return False
            return True

    import_minari_lazy_modules()
    sac_kwargs = {"learning_starts": 10_000, **(config.sac_kwargs or {})}
    model = SAC("MlpPolicy", collector, seed=config.seed, device=config.device, verbose=0, **sac_kwargs)
    # SB3's default logger makes an empty folder SB3-<date> in the temp dir at every learn;
    # the build reports through its callback, so SB3's records go nowhere.
    model.set_logger(Logger(folder=None, output_formats=[]))
    # SB3's own bar (rich) redraws many times a second; this one stays quiet in logs.
    show = config.progress_bar
    bar = progress.progress_bar(total=config.n_steps, desc="medium-replay", unit="step", disable=not show)
    # One torch thread: multi-threaded matrix products may sum in another order on another
    # core count, and a recipe's medium-replay build must repeat bit for bit anywhere.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with bar:
            model.learn(total_timesteps=config.n_steps, callback=StopAtTarget())
    finally:
        torch.set_num_threads(threads)
    # The optimisers' moment estimates double the file size and matter only to whoever
    # continues training; SAC.load then starts Adam afresh.
    for optimizer in (model.actor.optimizer, model.critic.optimizer, getattr(model, "ent_coef_optimizer", None)):
        if optimizer is not None:
            optimizer.state.clear()
    model.save(policy_path)
    reached = bool(history) and min(history[-1]["eval_return_mean"], best_episode[0]) >= target
    if not reached:
        print(
            f"[medium-replay] warning: SAC did not reach target_return={target:.0f} within n_steps={config.n_steps}",
            file=sys.stderr,
        )
    return {
        "target_return": target,
        "target_reached": reached,
        "stop_reason": stop_reason[0],
        "sac_steps": int(model.num_timesteps),
        "sac_kwargs": sac_kwargs,
        "eval_history": history,
    }
