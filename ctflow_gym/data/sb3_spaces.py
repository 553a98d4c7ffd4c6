"""Spaces of a stable-baselines3 zip, read without unpickling (used by :mod:`ctflow_gym.data.sb3_policies`).

SB3 stores a space as ``{":type:": ..., ":serialized:": <cloudpickle>, ...}`` plus a
readable copy of its attributes. ``Box`` spaces are rebuilt from ``dtype``, ``_shape``
and the printed ``low`` / ``high`` (only when the printed numbers are provably the
saved ones), ``Discrete`` from ``n`` / ``start``; anything else raises
:class:`NeedsPickle`. A given env's spaces are checked against the stored ones.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

SERIALIZED = ":serialized:"
_PRINT_PRECISION = 8  # numpy's default print precision, used by SB3's str() of Box bounds
_BOX_TYPES = ("<class 'gymnasium.spaces.box.Box'>", "<class 'gym.spaces.box.Box'>")
_DISCRETE_TYPES = ("<class 'gymnasium.spaces.discrete.Discrete'>", "<class 'gym.spaces.discrete.Discrete'>")


class NeedsPickle(Exception):
    """The safe path cannot rebuild this field; unpickling could."""

    def __init__(self, field: str, reason: str, advice: str = ""):
        self.field = field
        self.advice = advice
        super().__init__(f"{field}: {reason}")


def is_serialized(value: Any) -> bool:
    """Whether ``value`` is SB3's pickled-object record."""
    return isinstance(value, dict) and SERIALIZED in value


def is_env(env: Any) -> bool:
    """Whether ``env`` is a gymnasium env (rather than an id or None)."""
    import gymnasium as gym

    return isinstance(env, gym.Env)


def _parse_printed_array(text: Any, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray | None, bool]:
    """Parse numpy's ``str(array)``: (values or None, whether they are exactly the saved ones)."""
    if not isinstance(text, str) or "..." in text:
        return None, False
    tokens = text.replace("[", " ").replace("]", " ").split()
    if len(tokens) != int(np.prod(shape, dtype=np.int64)):
        return None, False
    try:
        if dtype.kind == "b":
            if not set(tokens) <= {"True", "False"}:
                return None, False
            values = np.array([token == "True" for token in tokens], dtype=dtype)
        elif dtype.kind in "iu":
            values = np.array([int(token) for token in tokens], dtype=dtype)
        else:
            values = np.array([float(token) for token in tokens], dtype=dtype)
    except (ValueError, OverflowError):
        return None, False
    values = values.reshape(shape)
    exact = True
    if dtype.kind == "f":  # fewer than 8 decimals: numpy printed the shortest exact repr
        exact = all(len(token.split("e")[0].partition(".")[2]) < _PRINT_PRECISION for token in tokens)
    with np.printoptions(precision=_PRINT_PRECISION, threshold=1000, floatmode="maxprec", suppress=False, legacy=False):
        exact = exact and str(values).split() == text.split()
    return values, exact


class StoredSpace:
    """What the file says about one space: the space when exact, else what could be read."""

    def __init__(self, field: str, value: Any):
        import gymnasium as gym

        self.field = field
        self.space = None
        self.low = self.high = None
        if not is_serialized(value):
            raise ValueError(f"{field}: missing or unreadable in the file's data")
        kind = value.get(":type:")
        if kind in _DISCRETE_TYPES:
            self.kind = "Discrete"
            n, start = _integer(value.get("n")), _integer(value.get("start", 0))
            if n is None or start is None:
                raise NeedsPickle(field, "a Discrete space whose n/start are not readable")
            self.space = gym.spaces.Discrete(n, start=start)
            return
        if kind not in _BOX_TYPES:
            raise NeedsPickle(field, f"a {kind} space; only Box and Discrete spaces are rebuilt without unpickling")
        self.kind = "Box"
        try:
            self.dtype = np.dtype(value.get("dtype"))
            self.shape = tuple(int(size) for size in value.get("_shape"))
        except (TypeError, ValueError):
            raise NeedsPickle(field, "a Box space whose dtype/shape are not readable") from None
        if self.dtype.kind not in "fiub":
            raise NeedsPickle(field, f"a Box space of dtype {self.dtype}")
        self.low, low_exact = _parse_printed_array(value.get("low"), self.shape, self.dtype)
        self.high, high_exact = _parse_printed_array(value.get("high"), self.shape, self.dtype)
        if low_exact and high_exact:
            self.space = gym.spaces.Box(self.low, self.high, self.shape, self.dtype)

    def check_env(self, env_space) -> None:
        """Raise ``ValueError`` naming ``env`` when ``env_space`` is not this space."""
        import gymnasium as gym

        if self.space is not None:
            check_env_space(self.field, self.space, env_space)
            return
        same = (
            isinstance(env_space, gym.spaces.Box)
            and env_space.shape == self.shape
            and env_space.dtype == self.dtype
            and (self.low is None or np.allclose(env_space.low, self.low))
            and (self.high is None or np.allclose(env_space.high, self.high))
        )
        if not same:
            raise ValueError(
                f"env: its {self.field} {env_space} does not match the file's "
                f"(Box of shape {self.shape}, dtype {self.dtype}, low {self.low}, high {self.high})"
            )


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return None


def check_env_space(field: str, stored, env_space) -> None:
    """Raise ``ValueError`` naming ``env`` when its space ``field`` differs from the stored one."""
    if stored != env_space:
        raise ValueError(f"env: its {field} {env_space} does not match the file's {stored}")


def env_spaces(env: Any):
    """``(observation_space, action_space)`` of ``env`` (an env, an env id, or None for none)."""
    if env is None:
        return None
    if isinstance(env, str):
        import gymnasium as gym

        try:
            made = gym.make(env)
        except gym.error.Error as error:
            raise ValueError(f"env: cannot make {env!r}: {error}") from error
        try:
            return made.observation_space, made.action_space
        finally:
            made.close()
    if not hasattr(env, "observation_space") or not hasattr(env, "action_space"):
        raise ValueError(f"env must be a gymnasium Env or an env id; got {type(env).__name__}")
    return env.observation_space, env.action_space
