"""Run a policy for whole episodes in an env (wrapped or not) and collect the returns."""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np


def policy_action_fn(policy: Any, deterministic: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """``observation -> action`` from an SB3-style model (its ``predict``) or a callable; ``TypeError`` otherwise."""
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return policy
    raise TypeError(
        (
            "policy must be an SB3-style model (with predict(obs, deterministic=...)) or a callable; "
            f"got {type(policy).__name__}"
        )
    )


def run_episodes(env: gym.Env, policy: Any, episodes: int, seed: int = 0, deterministic: bool = True) -> list[float]:
    """Episode returns of ``policy`` in ``env``: episode i starts with ``env.reset(seed=seed + i)``.

    ``policy`` is an SB3 model (or anything with ``predict(obs, deterministic=...)``
    returning ``(action, state)``) or a callable from observation to action. The return
    is the sum of the rewards the env hands out, so in a
    :class:`~ctflow_gym.wrappers.RefinementWrapper` in commit mode it includes what
    committed windows earned. A model's ``predict`` gets ``episode_start`` (True on each
    episode's first step), so a stateful policy such as
    :class:`~ctflow_gym.wrappers.RefinedPolicy` drops the previous episode's plan.
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    plain = policy_action_fn(policy, deterministic)  # also rejects what is neither a model nor a callable

    def act(obs: np.ndarray, start: bool) -> np.ndarray:
        if hasattr(policy, "predict"):  # SB3's convention: episode_start tells a stateful policy of a reset
            return policy.predict(obs, episode_start=np.array([start]), deterministic=deterministic)[0]
        return plain(obs)

    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done, start = 0.0, False, True
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs, start))
            start = False
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return returns
