"""The refiner contract: what wrappers, evaluation and the command line rely on.

A refiner takes windows of a trajectory, H consecutive (state, action) steps, and
returns refined windows of the same shape. Everything outside a refiner's own module
depends only on :class:`Refiner` and :class:`RefinementResult`, so a new family (for
example Flow to Better's improvement conditioned on a worse trajectory) is one new
module plus :func:`ctflow_gym.refine.register_refiner`, and then works with
``RefinementWrapper``, ``RefinedPolicy``, closed-loop evaluation and
:func:`ctflow_gym.refine.load_refiner`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class RefinementResult:
    """Refined windows and what refinement did to each (arrays aligned on axis 0).

    Attributes:
        observations: (N, H, obs_dim) refined states as the refiner predicts them (a
            plan: only replay in the simulator says which states the actions reach).
        actions: (N, H, act_dim) refined actions, within the env's action bounds.
        predicted_gain: (N,) the refiner's own (proxy) estimate of the feedback gain, or None.
        action_deviation: (N,) root mean square over steps of the L2 distance between
            refined and source actions (in the refiner's action units; TrajectoryRefiner
            uses dataset-normalised units), or None.
        source_latents: (N, d) latents of the source windows, for latent refiners (else None).
        refined_latents: (N, d) latents the refiner moved them to (else None).
        latent_deviation: (N,) || refined_latent - source_latent || (else None).
    """

    observations: np.ndarray
    actions: np.ndarray
    predicted_gain: np.ndarray | None = None
    action_deviation: np.ndarray | None = None
    source_latents: np.ndarray | None = None
    refined_latents: np.ndarray | None = None
    latent_deviation: np.ndarray | None = None


@runtime_checkable
class Refiner(Protocol):
    """What every refiner provides (a ``typing.Protocol``: no base class is needed).

    Attributes:
        window: window length H (refine takes and returns H steps).
        obs_dim, act_dim: observation and action sizes (None before fitting, if unknown then).
        env_id: the gymnasium id of the env the refiner was fitted for, when known.
        is_fitted: whether ``refine`` can be called.

    ``refine(observations, actions, strength=1.0, **options)`` takes (N, H, obs_dim) and
    (N, H, act_dim) arrays, or one window (H, dim), and returns a
    :class:`RefinementResult`; ``strength`` 0 must return the source actions, larger
    values refine more; ``options`` are refiner-specific (wrappers pass them through).
    ``save(path)`` writes a checkpoint folder with :func:`ctflow_gym.checkpoint.save_checkpoint`
    and kind ``"refiner:<class name>"``; ``load(path, device=None)`` is its class-method
    inverse, so :func:`ctflow_gym.refine.load_refiner` can dispatch on the kind.

    Optional attribute ``checkpoint_path`` (str or None; not required by
    :func:`require_refiner`): the checkpoint folder whose contents equal the refiner's
    current state, i.e. where it was last saved to or loaded from, and None once it
    changes in memory (e.g. by fitting). :func:`ctflow_gym.refine.load_refiner` sets it
    on whatever it loads; a family's own ``save`` should set it too.
    ``RefinementWrapper`` records it in ``env.spec`` so that ``gym.make(env.spec)`` can
    load the refiner again (see :func:`refiner_checkpoint_path`).
    """

    window: int
    obs_dim: int | None
    act_dim: int | None
    env_id: str | None
    is_fitted: bool

    def refine(self, observations: Any, actions: Any = None, strength: float = 1.0, **options: Any) -> RefinementResult:
        """Refine a batch of windows (see the class docstring)."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the refiner to the checkpoint folder ``path``."""

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "Refiner":
        """Read a refiner written by :meth:`save`."""


def require_refiner(refiner: Any, argument: str = "refiner") -> None:
    """Raise naming ``argument`` unless it follows :class:`Refiner` and is fitted."""
    missing = [
        name
        for name in ("window", "obs_dim", "act_dim", "env_id", "is_fitted", "refine", "save", "load")
        if not hasattr(refiner, name)
    ]
    if missing:
        raise TypeError(
            f"{argument} must follow the ctflow_gym.refine.Refiner contract; {type(refiner).__name__} lacks {missing}"
        )
    if not refiner.is_fitted:
        raise ValueError(
            f"{argument} must be fitted (e.g. TrajectoryRefiner.fit or load_refiner) before use with an env"
        )


def refiner_checkpoint_path(refiner: Any) -> str | None:
    """The refiner's optional ``checkpoint_path`` (see :class:`Refiner`) if it names an existing folder, else None."""
    path = getattr(refiner, "checkpoint_path", None)
    if path is None or not Path(path).is_dir():
        return None
    return str(path)
