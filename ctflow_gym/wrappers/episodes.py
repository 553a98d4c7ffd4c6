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
    is the sum of the rewards the env hands out (a model's ``predict`` is told of each
    episode's first step by ``episode_start``, so a :class:`RefinedPolicy` drops the plan
    of the previous episode), so in a
    :class:`~ctflow_gym.wrappers.RefinementWrapper` in commit mode it includes what
    committed windows earned.
    """
    if not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer; got {episodes!r}")
    act = policy_action_fn(policy, deterministic)
    if hasattr(policy, "predict"):  # SB3's convention: episode_start tells a stateful policy of a reset
        act = lambda obs, start: policy.predict(obs, episode_start=np.array([start]), deterministic=deterministic)[0]  # noqa: E731
    else:
        act = lambda obs, start, plain=act: plain(obs)  # noqa: E731
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
