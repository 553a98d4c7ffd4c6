"""Checks shared by the wrappers that put a refiner next to an env."""

from __future__ import annotations

import gymnasium as gym

from ctflow_gym.data.validation import require_continuous_actions
from ctflow_gym.refine.contract import require_refiner


def require_env_matches_refiner(env: gym.Env, refiner) -> None:
    """Raise unless ``refiner`` follows the refiner contract, is fitted, and ``env`` has its sizes."""
    require_continuous_actions(env.action_space, "env")
    require_refiner(refiner)
    obs_shape, act_shape = env.observation_space.shape, env.action_space.shape
    expected_obs, expected_act = (refiner.obs_dim,), (refiner.act_dim,)
    if obs_shape != expected_obs or act_shape != expected_act:
        raise ValueError(
            f"env: observation/action shapes {obs_shape}/{act_shape} differ from the refiner's "
            f"{expected_obs}/{expected_act} (fitted on {refiner.env_id or 'unknown env'})"
        )
