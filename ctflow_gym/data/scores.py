"""D4RL reference returns and normalised scores.

``normalized_score = 100 * (R - R_random) / (R_expert - R_random)``, with the reference
returns of D4RL (``d4rl/infos.py``: REF_MIN_SCORE / REF_MAX_SCORE), the numbers every
offline RL paper reports against. They were measured on the v2 envs; the v5 envs
have the same reward functions, so the scale carries over.
"""

from __future__ import annotations

import numpy as np

D4RL_REFERENCE_RETURNS: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
    "pointmazeumaze": (0.0, 1.0),
    "pointmazemedium": (0.0, 1.0),
    "pointmazelarge": (0.0, 1.0),
}
"""Env family -> (random policy return, expert policy return).

The PointMaze envs (``ctflow/PointMaze*-v0``) end an episode at its goal with a reward
of 1 (:mod:`ctflow_gym.envs.point_maze`), so their score is the success rate x 100:
D4RL's maze2d reference returns count steps spent at a goal in endless episodes, which
these envs do not have.
"""


def _family(env_id: str) -> str:
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"env_id must be a non-empty string such as 'Hopper-v5'; got {env_id!r}")
    name = env_id.split("/")[-1].split("-")[0].lower()
    if name not in D4RL_REFERENCE_RETURNS:
        raise KeyError(
            f"env_id {env_id!r} has no D4RL reference returns; known env families: "
            f"{sorted(D4RL_REFERENCE_RETURNS)} (e.g. 'Hopper-v5')"
        )
    return name


def d4rl_reference_returns(env_id: str) -> tuple[float, float]:
    """Return ``(random_return, expert_return)`` of D4RL for ``env_id`` (e.g. ``"Hopper-v5"``)."""
    return D4RL_REFERENCE_RETURNS[_family(env_id)]


def normalized_score(env_id: str, returns):
    """D4RL-normalised score (0 = random policy, 100 = expert) of episode ``returns``.

    Returns a float for a scalar input and an array for an array input.
    """
    random_return, expert_return = d4rl_reference_returns(env_id)
    values = np.asarray(returns, dtype=np.float64)
    scores = 100.0 * (values - random_return) / (expert_return - random_return)
    return float(scores) if scores.ndim == 0 else scores
