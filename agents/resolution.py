"""Resolving what an agent works on: its env, its dataset, and a saved agent's env.

Functions only (no agent state): :class:`agents.base.OfflineAgent` calls them while
it is constructed or loaded. Every problem is a ``ValueError`` or ``TypeError`` whose
message starts with the argument at fault (``env:``, ``dataset and env``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from minari import MinariDataset

from ctflow_gym.data import load_dataset
from ctflow_gym.data.transitions import Transitions, load_transitions
from ctflow_gym.data.validation import require_continuous_actions, require_flat_observations


def make_env(env: gym.Env | str) -> gym.Env:
    """``env`` itself, or ``gym.make(env)`` for an id; checked to be continuous and flat.

    Raises ``ValueError`` when an id cannot be made, ``TypeError`` for anything that is
    not an env, and the data layer's errors for discrete actions or nested observations.
    """
    if isinstance(env, str):
        try:
            env = gym.make(env)
        except gym.error.Error as error:
            raise ValueError(f"env: cannot make {env!r}: {error}") from error
    if not isinstance(env, gym.Env):
        raise TypeError(f"env must be a gymnasium.Env or an env id string; got {type(env).__name__}")
    require_continuous_actions(env.action_space, "env")
    require_flat_observations(env.observation_space, "env")
    return env


def env_id_of(env: gym.Env) -> str | None:
    """The registered id of ``env`` (looked up through wrappers), or None when it has none."""
    spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
    return spec.id if spec is not None else None


def action_bounds(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of the env's action box as float32 arrays; ``ValueError`` if unbounded."""
    space = env.action_space
    low, high = np.asarray(space.low, dtype=np.float32), np.asarray(space.high, dtype=np.float32)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"env: the action space must be bounded; got {space}")
    return low, high


def load_matching_transitions(
    dataset: MinariDataset | str | os.PathLike, env: gym.Env, env_id: str | None
) -> tuple[Transitions, str]:
    """Open ``dataset`` (Minari dataset, id or path) and read its transitions.

    Returns ``(transitions, dataset id)``. Raises ``ValueError`` when the dataset's
    observation or action shape differs from ``env``'s (``env_id`` names it in the
    message), and the data layer's errors for unreadable or non-finite data.
    """
    dataset = load_dataset(dataset)
    obs_shape, act_shape = dataset.observation_space.shape, dataset.action_space.shape
    if obs_shape != env.observation_space.shape or act_shape != env.action_space.shape:
        raise ValueError(
            f"dataset and env spaces differ: dataset {dataset.id!r} has observations {obs_shape} and actions "
            f"{act_shape}, env {env_id or env} has {env.observation_space.shape} and {env.action_space.shape}"
        )
    return load_transitions(dataset), dataset.id


def require_env_matches_checkpoint(env: gym.Env, meta: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise ``ValueError`` unless ``env`` has the id, shapes and action box of the saved agent ``meta``."""
    obs_shape, act_shape = list(env.observation_space.shape), list(env.action_space.shape)
    saved_id, given_id = meta["env_id"], env_id_of(env)
    if (
        obs_shape != meta["observation_shape"]
        or act_shape != [len(meta["action_low"])]
        or (saved_id and given_id and given_id != saved_id)
        or not np.allclose(env.action_space.low, meta["action_low"])
        or not np.allclose(env.action_space.high, meta["action_high"])
    ):
        raise ValueError(
            f"env: the checkpoint at {str(Path(path))!r} was trained on {saved_id} (observations "
            f"{tuple(meta['observation_shape'])}, actions {len(meta['action_low'])}); got {given_id} "
            f"(observations {tuple(obs_shape)}, actions {tuple(act_shape)})"
        )
