"""Offline-to-online fine-tuning: the loop behind :meth:`agents.base.OfflineAgent.learn_online`.

Flow Q-Learning's official code (seohongpark/fql, ``main.py``) fine-tunes an
offline-trained agent by acting in its env and training on a replay buffer made of the
offline dataset with every new transition appended to it: one env step, then one
gradient step on a minibatch drawn uniformly from the union (an update-to-data ratio of
1), with ``masks = 1 - terminated`` (a time-limit truncation bootstraps). This module is
that loop for every :class:`~agents.base.OfflineAgent`: act with ``predict``
(stochastic by default: the policy's own sampling noise is its exploration, as in FQL),
step the env, append to the :class:`~agents.online_buffer.OnlineBuffer`, then one
gradient step through the steps ``learn`` uses (:class:`agents.steps.EagerSteps`), and
log, evaluate, checkpoint and call back as ``learn`` does (:mod:`agents.training`).

Conventions:

- ``num_timesteps`` counts one per env step and continues from the offline count; an
  env step is followed by a gradient step once the buffer holds ``learning_starts``
  online transitions.
- Every episode's reset is seeded from the agent's seed and the step count
  (:func:`reset_seed`), so a run is reproducible, and a run resumed from a checkpoint
  written at the end of an episode continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from agents.evaluation import require_vectorization, return_summary
from agents.online_buffer import NO_DATASET, ONLINE_FIELDS, OnlineBuffer
from agents.resolution import env_id_of, make_env
from agents.steps import training_steps
from agents.training import after_step, finish, gradient_step, init_callback, record, resume_from
from ctflow_gym.data.validation import require_int
from ctflow_gym.logging import RunLogger
from ctflow_gym.progress import progress_bar as make_progress_bar

if TYPE_CHECKING:
    from agents.base import OfflineAgent


def reset_seed(seed: int, step: int) -> int:
    """The seed of the online episode that starts after ``step`` steps of an agent seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed) % 2**64, int(step), 0x0E11]).generate_state(1)[0])


def online_env(agent: OfflineAgent, env: gym.Env | str | None) -> tuple[gym.Env, bool]:
    """The env to act in and whether it was made here (to close): ``env``, or the agent's env id made fresh.

    Raises ``ValueError`` naming ``env`` when its spaces are not the dataset's, or when
    ``env`` is None and the agent's env has no id to make one from.
    """
    if env is None:
        if agent.env_id is None:
            raise ValueError("env: this agent's env has no registered id to make a fresh one from; pass env=")
        return make_env(agent.env_id), True
    made = isinstance(env, str)
    env = make_env(env)
    space = env.action_space
    if (
        env.observation_space.shape != (agent.obs_dim,)
        or space.shape != (agent.act_dim,)
        or not np.allclose(space.low, agent.action_low)
        or not np.allclose(space.high, agent.action_high)
    ):
        if made:
            env.close()
        raise ValueError(
            f"env: observations {env.observation_space.shape} and actions {space}; expected those of the dataset "
            f"{agent.dataset_id!r}: observations ({agent.obs_dim},) and actions ({agent.act_dim},) in "
            f"[{agent.action_low.tolist()}, {agent.action_high.tolist()}]"
        )
    return env, made


def episode_metrics(episode_return: float, length: int, env_id: str | None) -> dict[str, float]:
    """``online/episode_return``, ``online/episode_length`` and, for D4RL envs, ``online/normalized_score``."""
    summary = return_summary([episode_return], env_id)
    metrics = {"online/episode_return": summary["mean_return"], "online/episode_length": float(length)}
    if summary["normalized_score"] is not None:
        metrics["online/normalized_score"] = summary["normalized_score"]
    return metrics


def learn_online(
    agent: OfflineAgent,
    env: gym.Env | str | None = None,
    total_timesteps: int = 100_000,
    callback: Any = None,
    log_interval: int = 1000,
    progress_bar: bool = False,
    eval_freq: int = 0,
    n_eval_episodes: int = 10,
    n_eval_envs: int = 1,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_freq: int = 0,
    resume: bool = False,
    run_logger: RunLogger | None = None,
    learning_starts: int = 0,
    deterministic_acting: bool = False,
) -> OfflineAgent:
    """The online phase of :meth:`agents.base.OfflineAgent.learn_online` (see there for the arguments)."""
    if agent.transitions is None:
        raise ValueError(NO_DATASET)
    require_int(total_timesteps, "total_timesteps", numpy_integers=True)
    require_int(learning_starts, "learning_starts", least=0, numpy_integers=True)
    require_vectorization(n_eval_envs, "sync", "n_eval_envs")
    if eval_freq and env is agent.env:
        raise ValueError("env: the agent's own env serves its evaluations (eval_freq); act in another one (default)")
    logger = run_logger or agent.run_logger
    env, made_here = online_env(agent, env)
    steps = bar = None
    try:
        restored = resume_from(agent, checkpoint_path, resume)
        if agent._online is None:
            agent._online = OnlineBuffer(agent)
        buffer = agent._online
        if restored is None or restored.get("online") is None:
            buffer.start_step = agent.num_timesteps  # a new phase (or one resumed from an offline checkpoint)
        agent.target_timesteps = buffer.start_step + int(total_timesteps)
        buffer.reserve(max(agent.target_timesteps - agent.num_timesteps, 0))
        buffer.end_episode()  # whatever episode the last rows were in, this run starts a new one
        env_id = env_id_of(env) or agent.env_id
        callback = init_callback(agent, callback)
        callback.on_training_start({**locals(), "self": agent}, globals())
        steps = training_steps(agent, cuda_graph=False)
        bar = make_progress_bar(
            total=int(total_timesteps),
            initial=min(agent.num_timesteps - buffer.start_step, int(total_timesteps)),
            desc=f"{type(agent).__name__} online",
            disable=not progress_bar,
            unit="step",
        )
        settings = (logger, log_interval, eval_freq, n_eval_episodes, n_eval_envs, checkpoint_path, checkpoint_freq)
        observation, episode_return, episode_length = None, 0.0, 0
        while agent.num_timesteps < agent.target_timesteps:
            if observation is None:
                observation, _ = env.reset(seed=reset_seed(agent.seed, agent.num_timesteps))
                episode_return, episode_length = 0.0, 0
            action, _ = agent.predict(observation, deterministic=deterministic_acting)
            next_observation, reward, terminated, truncated, info = env.step(action)
            buffer.append(observation, action, float(reward), next_observation, terminated, truncated)
            episode_return, episode_length = episode_return + float(reward), episode_length + 1
            if buffer.size >= learning_starts:
                gradient_step(agent, steps, checkpoint_path)
            agent.num_timesteps += 1
            bar.update(1)
            done = bool(terminated or truncated)
            if done:
                record(agent, logger, episode_metrics(episode_return, episode_length, env_id))
            # SB3's names for what a callback may read of the step (one env)
            new_obs, rewards, dones, infos = next_observation[None], np.array([reward]), np.array([done]), [info]
            observation = None if done else next_observation
            if not after_step(agent, steps, callback, {**locals(), "self": agent}, *settings):
                break
    finally:
        for resource in (bar, steps):
            if resource is not None:
                resource.close()
        if made_here:
            env.close()
    return finish(agent, callback, checkpoint_path)


__all__ = ["ONLINE_FIELDS", "episode_metrics", "learn_online", "online_env", "reset_seed"]
