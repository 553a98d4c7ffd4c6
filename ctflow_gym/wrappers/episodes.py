"""Run a policy for whole episodes in an env (wrapped or not) and collect the returns (or fuller records)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ctflow_gym.data.actor_policies import policy_action_fn


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode run by :func:`record_episodes`.

    Attributes:
        seed: the seed its ``env.reset`` got.
        episode_return: the sum of the rewards the env handed out.
        length: env steps taken.
        terminated: whether it ended by termination (a fall), not truncation.
        seconds: wall time of its steps, the policy's and the env's (the reset not counted).
    """

    seed: int
    episode_return: float
    length: int
    terminated: bool
    seconds: float


def record_episodes(
    env: gym.Env, policy: Any, episodes: int, seed: int = 0, deterministic: bool = True
) -> list[EpisodeRecord]:
    """Run ``policy`` in ``env`` as :func:`run_episodes` does; each episode's return, length, end and time.

    For a benchmark or a report that needs more than the returns: episode i starts with
    ``env.reset(seed=seed + i)``, and a model's ``predict`` gets ``episode_start``.
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    plain = policy_action_fn(policy, deterministic)  # also rejects what is neither a model nor a callable

    def act(obs: np.ndarray, start: bool) -> np.ndarray:
        if hasattr(policy, "predict"):  # SB3's convention: episode_start tells a stateful policy of a reset
            return policy.predict(obs, episode_start=np.array([start]), deterministic=deterministic)[0]
        return plain(obs)

    records = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, length, done, terminated = 0.0, 0, False, False
        started = time.perf_counter()
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs, length == 0))
            total += float(reward)
            length += 1
            done = terminated or truncated
        seconds = time.perf_counter() - started
        records.append(EpisodeRecord(seed + episode, total, length, bool(terminated), seconds))
    return records


def run_episodes(env: gym.Env, policy: Any, episodes: int, seed: int = 0, deterministic: bool = True) -> list[float]:
    """Episode returns of ``policy`` in ``env``: episode i starts with ``env.reset(seed=seed + i)``.

    ``policy`` is an SB3 model (or anything with ``predict(obs, deterministic=...)``
    returning ``(action, state)``) or a callable from observation to action. The return
    is the sum of the rewards the env hands out, so in a
    :class:`~ctflow_gym.wrappers.RefinementWrapper` in commit mode it includes what
    committed windows earned. A model's ``predict`` gets ``episode_start`` (True on each
    episode's first step), so a stateful policy such as
    :class:`~ctflow_gym.wrappers.RefinedPolicy` drops the previous episode's plan.
    :func:`record_episodes` also gives each episode's length, end and time.
    """
    return [record.episode_return for record in record_episodes(env, policy, episodes, seed, deterministic)]
