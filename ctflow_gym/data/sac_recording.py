"""``medium-replay``: an SB3 SAC run recorded from scratch until it reaches medium level.

:func:`train_sac_recording` trains SAC on the recording env of
:func:`ctflow_gym.data.builder.build_dataset`, so every transition SAC sees is the
dataset, and stops once its deterministic evaluation return and the best recorded
episode reach the target (D4RL's expert return / 3 by default) after ``min_steps``. The
SAC policy at that point is saved beside the dataset ("the medium policy"). Resets are
seeded (:class:`SeededResets`) and SAC runs on one torch thread, so a recipe's build
repeats bit for bit on any CPU. With a checkpoint folder the run saves its whole state at
the first episode end after every ``checkpoint_every`` steps and a run started again with
the same configuration resumes from it (:mod:`ctflow_gym.data.sac_checkpoint`), recording
the same data as one uninterrupted run.
"""

from __future__ import annotations

import json
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
        self.rng_state_before_reset = self.rng_state
        """The generator's state before the last reset drew its seed (what a checkpoint saves)."""

    @property
    def rng_state(self) -> dict:
        """The seed generator's state (JSON-ready); settable."""
        return self._rng.bit_generator.state

    @rng_state.setter
    def rng_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state

    def reset(self, *, seed=None, options=None):
        if seed is None:
            self.rng_state_before_reset = self.rng_state
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


RESUME_FIELDS = (
    "env_id", "kind", "dataset_id", "n_steps", "seed", "target_return", "min_steps", "eval_every", "eval_episodes",
    "sac_kwargs", "device",
)  # fmt: skip
"""The :class:`~ctflow_gym.data.builder.BuildConfig` fields a checkpoint must share with the build resuming it."""


def train_sac_recording(
    collector: gym.Env, config: "BuildConfig", policy_path: Path, checkpoint_dir: Path | None = None
) -> dict[str, Any]:
    """Run SB3 SAC on ``collector`` until its evaluation return reaches the target.

    ``collector`` is the :class:`SeededResets` around the Minari ``DataCollector``. With
    ``checkpoint_dir`` (and ``config.checkpoint_every`` > 0) the run is checkpointed there and,
    when a checkpoint of the same configuration is there already, resumed from it; a
    checkpoint of another configuration is refused, naming the fields that differ.
    """
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor

    from ctflow_gym.data.sac_checkpoint import (
        load_recording_checkpoint,
        read_checkpoint_state,
        save_recording_checkpoint,
    )

    target = config.target_return
    if target is None:
        _, expert = d4rl_reference_returns(config.env_id)
        target = expert / 3.0
    eval_resets = SeededResets(gym.make(config.env_id), config.seed + 10_000)
    eval_env = Monitor(eval_resets)
    made_with = json.loads(json.dumps({name: getattr(config, name) for name in RESUME_FIELDS}))  # as saved
    state = {"history": [], "best_episode": None, "stop_reason": "n_steps", "elapsed_s": 0.0, "config": made_with}
    started = time.time()
    stopped, episode_ended = [False], [False]

    class StopAtTarget(BaseCallback):
        """Stops SAC once it is at medium level and the data holds a medium episode."""

        def _on_step(self) -> bool:
            bar.update(self.num_timesteps - bar.n)
            episode_ended[0] = bool(self.locals["dones"][0])
            for info in self.locals.get("infos", ()):
                if "episode" in info:
                    episode_return, best = float(info["episode"]["r"]), state["best_episode"]
                    state["best_episode"] = episode_return if best is None else max(best, episode_return)
            if self.num_timesteps % config.eval_every:
                return True
            mean, std = evaluate_policy(self.model, eval_env, n_eval_episodes=config.eval_episodes, deterministic=True)
            best = -np.inf if state["best_episode"] is None else state["best_episode"]
            state["history"].append(
                {
                    "step": self.num_timesteps,
                    "eval_return_mean": float(mean),
                    "eval_return_std": float(std),
                    "best_recorded_return": best,
                }
            )
            print(
                f"[medium-replay] step {self.num_timesteps}: eval return {mean:.1f} +- {std:.1f}, "
                f"best recorded episode {best:.1f}",
                file=sys.stderr,
                flush=True,
            )
            if mean >= target and best >= target and self.num_timesteps >= config.min_steps:
                state["stop_reason"], stopped[0] = "target_return", True
                return False
            elapsed = state["elapsed_s"] + time.time() - started
            if config.max_minutes is not None and elapsed > 60 * config.max_minutes:
                state["stop_reason"], stopped[0] = "max_minutes", True
                return False
            return True

    import_minari_lazy_modules()
    sac_kwargs = {"learning_starts": 10_000, **(config.sac_kwargs or {})}
    model = SAC("MlpPolicy", collector, seed=config.seed, device=config.device, verbose=0, **sac_kwargs)
    # SB3's default logger makes an empty folder SB3-<date> in the temp dir at every learn;
    # the build reports through its callback, so SB3's records go nowhere.
    model.set_logger(Logger(folder=None, output_formats=[]))
    every = config.checkpoint_every if checkpoint_dir is not None else 0
    saved = read_checkpoint_state(checkpoint_dir) if every else None
    if saved is not None:
        differ = {k: (v, made_with.get(k)) for k, v in saved["progress"]["config"].items() if made_with.get(k) != v}
        if differ:
            raise ValueError(
                f"checkpoint_dir: the checkpoint at {checkpoint_dir} belongs to another build ("
                + ", ".join(f"{k}={a!r} there, {b!r} here" for k, (a, b) in differ.items())
                + "); delete it, or build with resume=False to start afresh"
            )
        state = load_recording_checkpoint(checkpoint_dir, model, collector.env, collector, eval_resets)
        print(f"[medium-replay] resumed at step {model.num_timesteps} from {checkpoint_dir}", file=sys.stderr)
    # SB3's own bar (rich) redraws many times a second; this one stays quiet in logs.
    show = config.progress_bar
    bar = progress.progress_bar(
        total=config.n_steps, initial=model.num_timesteps, desc="medium-replay", unit="step", disable=not show
    )

    def learn(steps: int) -> None:  # chunks train as one call does: counters and the last observation carry over
        model.learn(total_timesteps=steps, callback=StopAtTarget(), reset_num_timesteps=False)

    # One torch thread: multi-threaded matrix products may sum in another order on another
    # core count, and a recipe's medium-replay build must repeat bit for bit anywhere.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with bar:
            while model.num_timesteps < config.n_steps and not stopped[0]:
                if not every:
                    learn(config.n_steps - model.num_timesteps)
                    break
                learn(min(config.n_steps, (model.num_timesteps // every + 1) * every) - model.num_timesteps)
                while not (stopped[0] or model.num_timesteps >= config.n_steps or episode_ended[0]):
                    learn(1)  # on to the episode's end, where a checkpoint is whole
                if not stopped[0] and model.num_timesteps < config.n_steps:
                    state["elapsed_s"] += time.time() - started
                    started = time.time()
                    save_recording_checkpoint(checkpoint_dir, model, collector.env, collector, eval_resets, state)
    finally:
        torch.set_num_threads(threads)
    # The optimisers' moment estimates double the file size and matter only to whoever
    # continues training; SAC.load then starts Adam afresh.
    for optimizer in (model.actor.optimizer, model.critic.optimizer, getattr(model, "ent_coef_optimizer", None)):
        if optimizer is not None:
            optimizer.state.clear()
    model.save(policy_path)
    history, best = state["history"], state["best_episode"]
    reached = bool(history) and best is not None and min(history[-1]["eval_return_mean"], best) >= target
    if not reached:
        print(
            f"[medium-replay] warning: SAC did not reach target_return={target:.0f} within n_steps={config.n_steps}",
            file=sys.stderr,
        )
    return {
        "target_return": target,
        "target_reached": reached,
        "stop_reason": state["stop_reason"],
        "sac_steps": int(model.num_timesteps),
        "sac_kwargs": sac_kwargs,
        "eval_history": history,
    }
