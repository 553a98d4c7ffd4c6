"""Checks shared by the wrappers that put a refiner next to an env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

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


def _declared_spaces(policy) -> tuple[Any, Any]:
    """The observation and action spaces ``policy`` says it was made for, if it says."""
    for holder in (policy, getattr(policy, "env", None)):
        observation_space = getattr(holder, "observation_space", None)
        action_space = getattr(holder, "action_space", None)
        if observation_space is not None and action_space is not None:
            return observation_space, action_space
    return None, None


def require_policy_matches_env(policy, env: gym.Env) -> None:
    """Raise ``ValueError`` naming ``policy`` when the spaces it was made for differ in shape from ``env``'s.

    SB3 models declare their spaces (``observation_space``, ``action_space``), and this
    package's agents hold their env; either is compared with ``env`` here, when the
    policy is attached, rather than failing at its first action. Only shapes are
    compared: bounds may legitimately differ (a policy trained under a rescaling
    wrapper). A plain callable declares nothing; its actions are checked as they come
    (:func:`require_action_shape`).
    """
    observation_space, action_space = _declared_spaces(policy)
    if observation_space is None:
        return
    declared = (getattr(observation_space, "shape", None), getattr(action_space, "shape", None))
    expected = (env.observation_space.shape, env.action_space.shape)
    if declared != expected:
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ValueError(
            f"policy: it was made for observations of shape {declared[0]} and actions of shape {declared[1]}, "
            f"but env {name} has observations of shape {expected[0]} and actions of shape {expected[1]}; "
            "is it a policy for another env?"
        )


def require_action_shape(action: np.ndarray, env: gym.Env) -> np.ndarray:
    """``action`` itself; ``ValueError`` naming ``policy`` unless it has the shape ``env`` takes."""
    if action.shape != env.action_space.shape:
        raise ValueError(
            f"policy: returned an action of shape {action.shape}; the env takes actions of shape "
            f"{env.action_space.shape} (is it a policy for another env?)"
        )
    return action


def require_env_at(env: gym.Env, observation: np.ndarray) -> None:
    """Raise ``ValueError`` naming ``observation`` when it is not the observation of ``env``'s current state.

    ``RefinedPolicy`` looks ahead in the env it was given: an observation from another env
    (a second ``gym.make``, a vectorised copy) would be planned from the wrong state and
    silently give wrong actions. Checked where the env can say what it observes now (a
    MuJoCo env's ``_get_obs``, with the observation's shape); elsewhere nothing is checked.
    """
    current = getattr(env.unwrapped, "_get_obs", None)
    if current is None:
        return
    try:
        now = np.asarray(current(), dtype=np.float64)
    except Exception:  # an env whose _get_obs needs more than its state: nothing to compare
        return
    observation = np.asarray(observation, dtype=np.float64)
    if now.shape == observation.shape and not np.allclose(now, observation, rtol=1e-5, atol=1e-5):
        raise ValueError(
            "observation: it is not what env observes in its current state; RefinedPolicy looks ahead in the env it "
            "was given, so step that same env object (an observation from another env is planned from the wrong state)"
        )
