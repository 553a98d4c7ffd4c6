"""Evaluating a policy in its env: SB3's ``evaluate_policy`` and D4RL-normalised scores.

Functions only: :meth:`agents.base.OfflineAgent.evaluate` calls them with its own
``predict`` and evaluation env.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ctflow_gym.data.scores import D4RL_REFERENCE_RETURNS, normalized_score
from ctflow_gym.data.validation import require_int


def monitored_vec_env(env: gym.Env):
    """``env`` inside SB3's ``Monitor`` and a one-env ``DummyVecEnv`` (what SB3 callbacks expect of a model)."""
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([lambda: Monitor(env)])


VECTORIZATIONS = ("sync", "async")


def require_vectorization(n_envs: Any, vectorization: Any, argument: str = "n_envs") -> None:
    """Raise ``ValueError`` naming ``argument`` (an integer >= 1) or ``vectorization`` (``"sync"`` / ``"async"``)."""
    require_int(n_envs, argument, numpy_integers=True)
    if vectorization not in VECTORIZATIONS:
        raise ValueError(f"vectorization must be one of {VECTORIZATIONS}; got {vectorization!r}")


def evaluation_vec_env(env: gym.Env, n_envs: int, vectorization: str = "sync"):
    """``n_envs`` copies of ``env`` (made again from its spec), each in a ``Monitor``, as one SB3 VecEnv.

    ``"sync"``: ``DummyVecEnv``, every env in this process; the policy is still called
    once per step for all envs together (one batched forward instead of ``n_envs``),
    which is where the time of an evaluation goes for a network policy on a CPU.
    ``"async"``: ``SubprocVecEnv``, one worker process per env (started with
    ``"forkserver"``, ``"spawn"`` where that is missing: forking a process that has
    run torch on several threads can deadlock), for envs slower than the policy.
    """
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    require_vectorization(n_envs, vectorization)
    if env.spec is None:
        raise ValueError(
            "n_envs > 1 makes the evaluation envs again from the env's spec, and this env has none; "
            "pass an env made with gymnasium.make (or n_envs=1)"
        )
    spec = env.spec
    makers = [lambda: Monitor(gym.make(spec))] * int(n_envs)
    if vectorization == "sync":
        return DummyVecEnv(makers)
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return SubprocVecEnv(makers, start_method=method)


def return_summary(returns: Any, env_id: str | None) -> dict[str, Any]:
    """Episode ``returns`` with their mean and std, and the D4RL-normalised score (mean, std).

    The scores are None for envs without D4RL reference returns (or without an id).
    """
    returns = np.asarray(returns, dtype=np.float64)
    result: dict[str, Any] = {
        "returns": returns.tolist(),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
    }
    family = (env_id or "").split("/")[-1].split("-")[0].lower()
    if family in D4RL_REFERENCE_RETURNS:
        scores = normalized_score(env_id, returns)
        result.update(normalized_score=float(np.mean(scores)), normalized_score_std=float(np.std(scores)))
    else:
        result.update(normalized_score=None, normalized_score_std=None)
    return result


def evaluate_predict(
    predict: Callable[..., tuple[np.ndarray, Any]],
    vec_env,
    env_id: str | None,
    n_episodes: int,
    deterministic: bool,
    seed: int,
    **options: Any,
) -> dict[str, Any]:
    """Run ``n_episodes`` of the SB3-style ``predict`` (called with ``options``) in ``vec_env``.

    Resets are seeded with ``seed`` (env i of the VecEnv with ``seed + i``; SB3's
    ``evaluate_policy`` gives env i a fixed share of the episodes, so the set of
    episodes depends only on ``seed`` and the number of envs, not on their timing).
    Returns :func:`return_summary` of the episode returns.
    """
    from stable_baselines3.common.evaluation import evaluate_policy

    vec_env.seed(seed)

    class _WithOptions:
        def predict(self, observation, state=None, episode_start=None, deterministic=True):
            return predict(observation, state, episode_start, deterministic, **options)

    returns, _ = evaluate_policy(
        _WithOptions(),
        vec_env,
        n_eval_episodes=n_episodes,
        deterministic=deterministic,
        return_episode_rewards=True,
        warn=False,
    )
    return return_summary(returns, env_id)
