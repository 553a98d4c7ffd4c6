"""How a replayed window is judged before its actions are used.

A window is scored by its realised return, optionally plus a discounted value of the
state it ends in:

    score = sum of the H rewards + gamma^H * V(s_end)      (tail 0 after a termination)

The return alone is myopic: on Hopper a window can gain speed with a posture that
falls a few windows later; the value tail charges a window for the state it leaves
behind. :func:`sb3_value_function` makes V from an SB3 SAC/TD3 model.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

ValueFn = Callable[[np.ndarray], float]


def require_value_fn(value_fn: ValueFn | None, gamma: float) -> None:
    """Raise naming the argument when ``value_fn`` is not callable or ``gamma`` not in [0, 1]."""
    if value_fn is not None and not callable(value_fn):
        raise TypeError(f"value_fn must be a callable V(observation) -> float or None; got {type(value_fn).__name__}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1]; got {gamma}")


def window_score(
    window_return: float, end_observation, terminated: bool, value_fn: ValueFn | None, gamma: float, horizon: int
) -> float:
    """``window_return + gamma**horizon * value_fn(end_observation)``.

    The return alone without ``value_fn`` or after a termination. Raises ``ValueError``
    naming ``value_fn`` when it returns NaN or inf.
    """
    if value_fn is None or terminated:
        return float(window_return)
    value = float(value_fn(end_observation))
    if not np.isfinite(value):
        raise ValueError(f"value_fn returned {value} for an observation; it must return finite numbers")
    return float(window_return) + gamma**horizon * value


def sb3_value_function(model) -> ValueFn:
    """V(s) = min_i Q_i(s, pi(s)) from an SB3 SAC or TD3 model's critic and actor."""
    import torch

    if not hasattr(model, "critic") or not hasattr(model, "actor"):
        raise TypeError(f"model must be an SB3 SAC/TD3 model with critic and actor; got {type(model).__name__}")

    @torch.no_grad()
    def value(observation: np.ndarray) -> float:
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32)[None], device=model.device)
        action = model.policy._predict(obs, deterministic=True)  # scaled to [-1, 1], as the critic was trained
        return float(torch.min(torch.cat(model.critic(obs, action), dim=1)))

    return value
