"""The CTF paper's baselines (its Table 1) as refiner families of their own.

Each is a registered family (:func:`~ctflow_gym.refine.register_refiner`), so it works
wherever a refiner does (``RefinementWrapper``, ``RefinedPolicy``, ``evaluate_refinement``,
``improve_dataset``, ``load_refiner``, the command line) and is measured exactly like
CTFlow:

- :class:`NearestImprovedRefiner`: the nearest training window in latent space whose
  feedback is better by the margin replaces the source;
- :class:`RandomImprovedRefiner`: a random training window better by the margin replaces it;
- :class:`ReconstructionRefiner`: the autoencoder's reconstruction D(E(tau)), what the
  latent space alone does to a window;
- :class:`NonLocalRefiner`: the same flow trained on non-local pairs (any worse window to
  any better one), ``TrajectoryRefiner(targets="nonlocal")`` under its own name.

The first three live in the latent space of a fitted :class:`TrajectoryRefiner` (the
paper compares them in the same space as the flow): build one from a fitted refiner with
``NearestImprovedRefiner(refiner)`` (they share its parts; nothing is refitted), or let
``fit`` fit one (``NearestImprovedRefiner(window=16).fit(dataset)``: keywords are
:class:`~ctflow_gym.refine.RefinerConfig` fields). A window whose source has no better
training window keeps its nearest training window (the paper leaves this case open).

Strength: the replacements are all-or-nothing, so ``strength`` > 0 replaces and
``strength`` 0 returns the source exactly (the contract every refiner keeps); there is
no path in between. A saved baseline is a record plus its refiner, training windows
included (``<path>/refiner``), loaded back by kind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from ctflow_gym.checkpoint import read_checkpoint_meta, save_checkpoint
from ctflow_gym.data.validation import require_strength
from ctflow_gym.data.windows import window_arrays
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.refine.contract import RefinementResult
from ctflow_gym.refine.refiner import TrajectoryRefiner
from ctflow_gym.refine.registry import refiner_kind, register_refiner

REFINER_FOLDER = "refiner"
"""Where a saved baseline keeps its :class:`TrajectoryRefiner` (with the training windows)."""


class LatentReplacement:
    """A baseline in the latent space of a :class:`TrajectoryRefiner` (see the module docstring).

    Args:
        refiner: a fitted (or to be fitted) ``TrajectoryRefiner`` whose autoencoder and
            training windows the baseline uses; None makes one from ``overrides``.
        overrides: :class:`~ctflow_gym.refine.RefinerConfig` fields, only without ``refiner``.
    """

    replacement: ClassVar[str]
    """What replaces a window: ``"nearest"`` or ``"random"`` (drawn by
    :meth:`~ctflow_gym.refine.baselines.TrainingBank.replace`), or ``"reconstruction"``."""

    uses_training_windows: ClassVar[bool] = True
    """Whether refining draws from the training windows (kept after ``fit``, saved with the baseline)."""

    def __init__(self, refiner: TrajectoryRefiner | None = None, **overrides: Any):
        if refiner is not None and overrides:
            raise TypeError(f"{type(self).__name__}: pass a refiner or RefinerConfig fields, not both")
        if refiner is not None and not isinstance(refiner, TrajectoryRefiner):
            raise TypeError(f"refiner must be a TrajectoryRefiner; got {type(refiner).__name__}")
        self.refiner = refiner if refiner is not None else TrajectoryRefiner(**overrides)
        self.checkpoint_path: str | None = None

    def fit(self, data, logger: RunLogger = NULL_LOGGER, progress_bar: bool = True):
        """Fit the underlying ``TrajectoryRefiner`` on ``data`` (see :meth:`TrajectoryRefiner.fit`); returns self."""
        self.refiner.fit(data, logger=logger, progress_bar=progress_bar)
        self.checkpoint_path = None
        return self

    @property
    def is_fitted(self) -> bool:
        """Whether ``refine`` can be called: the refiner is fitted (and holds its training windows, if used)."""
        return self.refiner.is_fitted and (self.refiner.bank is not None or not self.uses_training_windows)

    @property
    def window(self) -> int:
        """Window length H."""
        return self.refiner.window

    @property
    def obs_dim(self) -> int | None:
        """Observation size (None before fitting)."""
        return self.refiner.obs_dim

    @property
    def act_dim(self) -> int | None:
        """Action size (None before fitting)."""
        return self.refiner.act_dim

    @property
    def env_id(self) -> str | None:
        """The env the refiner was fitted for, when known."""
        return self.refiner.env_id

    @property
    def inverse_dynamics(self):
        """The refiner's inverse-dynamics model (tracked execution), or None."""
        return self.refiner.inverse_dynamics

    @property
    def fit_info(self) -> dict:
        """The refiner's ``fit_info`` (held-out episodes included)."""
        return self.refiner.fit_info

    def refine(self, observations, actions=None, strength: float = 1.0, seed: int = 0, **options: Any):
        """Replace each window (N, H, dim) (or one (H, dim)); ``strength`` 0 returns the sources.

        ``seed`` seeds the random choice (:class:`RandomImprovedRefiner`); other options
        are not taken (the replacements have no steps or noise).
        """
        if options:
            raise TypeError(f"{type(self).__name__}.refine takes no options {sorted(options)}")
        if not self.is_fitted:
            raise RuntimeError(
                f"this {type(self).__name__} is not fitted: call fit(), build it from a fitted TrajectoryRefiner "
                "(kept after fit(), or loaded from a folder saved with include_bank=True), or load one"
            )
        observations, actions = window_arrays(observations, actions)
        if require_strength(strength) == 0:
            return self.refiner.refine(observations, actions, strength=0.0)
        return self._replace(observations, actions, seed)

    @torch.no_grad()
    def _replace(self, observations, actions, seed: int) -> RefinementResult:
        refiner, codec = self.refiner, self.refiner.codec
        src_obs, src_act = codec.check_windows(observations, actions)
        obs, act = codec.normalized_tensors(src_obs, src_act)
        z_src = codec.encode(obs, act)
        if self.replacement == "reconstruction":
            z_ref, (refined_obs, refined_act) = z_src, codec.to_raw(*codec.decode(z_src))
        else:
            z_ref, new_obs, new_act = refiner.bank.replace(codec, z_src, self.replacement, refiner.margin, seed)
            refined_obs, refined_act = codec.to_raw(new_obs, new_act)
        return refiner.refinement_result(z_src, z_ref, refined_obs, refined_act, act)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the baseline's record to ``path`` and its refiner, training windows included, to ``path/refiner``."""
        path = Path(path)
        save_checkpoint(path, refiner_kind(type(self)), {"refiner": REFINER_FOLDER}, {})
        self.refiner.save(path / REFINER_FOLDER, include_bank=self.uses_training_windows)
        self.checkpoint_path = str(path.resolve())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None):
        """Read a baseline written by :meth:`save` (JSON and safetensors only)."""
        path = Path(path)
        read_checkpoint_meta(path, family="refiner", kinds=[refiner_kind(cls)])
        baseline = cls(TrajectoryRefiner.load(path / REFINER_FOLDER, device=device))
        baseline.checkpoint_path = str(path.resolve())
        return baseline


@register_refiner
class NearestImprovedRefiner(LatentReplacement):
    """The nearest improved training window (in standardised latent space) replaces each source."""

    replacement = "nearest"


@register_refiner
class RandomImprovedRefiner(LatentReplacement):
    """A random improved training window (drawn with ``seed``) replaces each source."""

    replacement = "random"


@register_refiner
class ReconstructionRefiner(LatentReplacement):
    """The autoencoder's reconstruction D(E(tau)) replaces each source (no flow, no training windows)."""

    replacement = "reconstruction"
    uses_training_windows = False


@register_refiner
class NonLocalRefiner(TrajectoryRefiner):
    """The flow trained on non-local pairs (the paper's non-local flow matching baseline).

    A :class:`TrajectoryRefiner` whose ``targets`` is ``"nonlocal"`` (any other value is an
    error): every worse training window is paired with a random better one anywhere in
    the dataset, instead of with a better latent neighbour.
    """

    def __init__(self, config=None, **overrides: Any):
        if config is None:
            overrides.setdefault("targets", "nonlocal")
        super().__init__(config, **overrides)
        if self.config.targets != "nonlocal":
            raise ValueError(f"targets: NonLocalRefiner trains on non-local pairs; got {self.config.targets!r}")
