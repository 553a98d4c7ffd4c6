"""Checks shared by the wrappers that put a refiner next to an env."""

from __future__ import annotations

import gymnasium as gym

from ctflow_gym.data.validation import require_continuous_actions


def require_env_matches_refiner(env: gym.Env, refiner) -> None:
    """Raise unless ``refiner`` is fitted and ``env`` has its observation and action sizes."""
    require_continuous_actions(env.action_space, "env")
    if not refiner.is_fitted:
        raise ValueError("refiner must be fitted (TrajectoryRefiner.fit or .load) before use with an env")
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    expected_obs, expected_act = (refiner.autoencoder.obs_dim,), (refiner.autoencoder.act_dim,)
    if obs_shape != expected_obs or act_shape != expected_act:
        raise ValueError(
            f"env: observation/action shapes {obs_shape}/{act_shape} differ from the refiner's "
            f"{expected_obs}/{expected_act} (fitted on {refiner.env_id or 'unknown env'})"
        )
