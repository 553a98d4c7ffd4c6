"""Input checks shared by the data layer and everything above it.

Each raises with a message that names the argument and what was expected.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


def require_continuous_actions(action_space: gym.Space, argument: str) -> None:
    """Raise ``TypeError`` unless ``action_space`` is a 1-D continuous ``Box``."""
    if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
        raise TypeError(
            f"{argument}: a continuous 1-D Box action space is required; got {action_space}. "
            "Discrete and structured action spaces are not supported"
        )


def require_flat_observations(observation_space: gym.Space, argument: str) -> None:
    """Raise ``TypeError`` unless ``observation_space`` is a 1-D ``Box``."""
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise TypeError(f"{argument}: a 1-D Box observation space is required; got {observation_space}")


def require_finite(array: np.ndarray, argument: str, where: str = "") -> None:
    """Raise ``ValueError`` if ``array`` holds NaN or inf, saying where the first one is."""
    finite = np.isfinite(array)
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        location = f" in {where}" if where else ""
        raise ValueError(f"{argument} must be finite; found {np.asarray(array)[first]} at index {first}{location}")


def require_int(value, name: str, least: int = 1, numpy_integers: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer >= ``least``.

    Bools are not integers here. Numpy integers are only with ``numpy_integers``: leave it off
    for values that are saved as JSON (configuration fields), which a numpy integer would break.
    """
    kinds = (int, np.integer) if numpy_integers else int
    if isinstance(value, bool) or not isinstance(value, kinds) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}; got {value!r}")


def require_strength(strength: float) -> float:
    """Return ``strength`` as a float; raise ``ValueError`` unless it is finite and >= 0."""
    if not np.isfinite(strength) or strength < 0:
        raise ValueError(f"strength must be a finite number >= 0; got {strength}")
    return float(strength)


def require_episode_ids(episodes, dataset) -> np.ndarray:
    """``episodes`` as sorted unique int64 ids; ``ValueError`` naming ``episodes`` if one is not in ``dataset``."""
    episodes = np.unique(np.asarray(episodes, dtype=np.int64))
    outside = episodes[~np.isin(episodes, dataset.episode_indices)]
    if len(outside):
        raise ValueError(
            f"episodes: ids {outside[:5].tolist()} are not episodes of dataset {dataset.id!r} "
            f"({dataset.total_episodes} episodes)"
        )
    return episodes


def require_observation(observation: Any, obs_dim: int) -> np.ndarray:
    """``observation`` as an array; ``ValueError`` naming it unless it has shape ``(obs_dim,)``
    or ``(batch, obs_dim)`` and every value is finite.

    A policy's ``predict`` calls it before acting: a NaN or inf that reached the network
    would come back as NaN actions (or an error deep inside torch) rather than as a
    mistake in the input, so it is refused with the first bad value and its index.
    """
    array = np.asarray(observation)
    shapes = f"({obs_dim},) or (batch, {obs_dim})"
    if array.ndim not in (1, 2) or array.shape[-1] != obs_dim:
        raise ValueError(f"observation must have shape {shapes}; got {array.shape}")
    try:
        finite = np.isfinite(array)
    except TypeError:
        raise ValueError(f"observation must hold numbers (shape {shapes}); got dtype {array.dtype}") from None
    if not finite.all():
        first = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"observation must hold finite values, shape {shapes}; got {array[first]} at index {first} "
            f"({int((~finite).sum())} of {array.size} values are not finite)"
        )
    return array
