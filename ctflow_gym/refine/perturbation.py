"""``GaussianPerturbation``: blind search as a refiner family, the baseline a learned refiner must beat.

It adds independent Gaussian noise to every action of a window,

    a'_t = clip(a_t + strength * sigma * eps_t),    eps_t ~ N(0, I),

and leaves the states alone (it has no model of them). With verification by replay
(``RefinedPolicy(..., candidates=n)``, ``RefinementWrapper(..., candidates=n)``) the
best of n perturbed windows is random search at the same simulator budget as n
candidates of a learned refiner, which is how the benchmarks compare the two. Noise is
drawn from ``numpy.random.default_rng(seed)``, so a candidate is reproducible from its
seed; ``strength`` 0 returns the source actions exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ctflow_gym.checkpoint import read_checkpoint_meta, require_meta_keys, save_checkpoint
from ctflow_gym.data.validation import require_strength
from ctflow_gym.refine.contract import RefinementResult
from ctflow_gym.refine.registry import refiner_kind, register_refiner


@register_refiner
class GaussianPerturbation:
    """Gaussian action noise of scale ``strength * sigma`` per window (see the module docstring).

    Args:
        env_id: the env whose sizes and action bounds it uses (made once to read them).
        window: window length H.
        sigma: noise scale at strength 1, in action units (Hopper's actions lie in [-1, 1]).
    """

    def __init__(self, env_id: str, window: int = 16, sigma: float = 0.1):
        if not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window must be a positive integer; got {window!r}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0; got {sigma!r}")
        env = gym.make(env_id)
        try:
            if not isinstance(env.action_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
                raise TypeError(f"env_id: {env_id!r} needs 1-D Box observations and Box actions")
            self.obs_dim = int(env.observation_space.shape[0])
            self.act_dim = int(env.action_space.shape[0])
            self.low = np.asarray(env.action_space.low, np.float32)
            self.high = np.asarray(env.action_space.high, np.float32)
        finally:
            env.close()
        self.env_id, self.window, self.sigma = env_id, int(window), float(sigma)
        self.is_fitted = True
        self.checkpoint_path: str | None = None

    def refine(self, observations, actions=None, strength: float = 1.0, seed: int = 0) -> RefinementResult:
        """Perturb (N, H, act_dim) actions (one (H, dim) window counts as N = 1, as for every family).

        ``seed`` draws the noise. Raises ``ValueError`` naming the argument for a wrong shape.
        """
        require_strength(strength)
        observations = np.asarray(observations, dtype=np.float32)
        actions = np.asarray(actions, dtype=np.float32)
        if observations.ndim == 2 and actions.ndim == 2:
            observations, actions = observations[None], actions[None]
        if actions.ndim != 3 or actions.shape[1:] != (self.window, self.act_dim):
            raise ValueError(f"actions must have shape (N, {self.window}, {self.act_dim}); got {actions.shape}")
        expected = (len(actions), self.window, self.obs_dim)
        if observations.shape != expected:
            raise ValueError(f"observations must have shape {expected}; got {observations.shape}")
        noise = np.random.default_rng(seed).standard_normal(actions.shape).astype(np.float32)
        refined = np.clip(actions + strength * self.sigma * noise, self.low, self.high) if strength else actions.copy()
        deviation = np.sqrt((np.linalg.norm(refined - actions, axis=-1) ** 2).mean(-1))
        return RefinementResult(observations=observations, actions=refined, action_deviation=deviation)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint folder ``path`` (its settings; there are no weights)."""
        meta = {"env_id": self.env_id, "window": self.window, "sigma": self.sigma}
        saved = save_checkpoint(path, refiner_kind(type(self)), meta, {"sigma": torch.tensor([self.sigma])})
        self.checkpoint_path = str(Path(saved).resolve())
        return saved

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "GaussianPerturbation":
        """Read a folder written by :meth:`save` (JSON only)."""
        meta = read_checkpoint_meta(path, family="refiner", kinds=[refiner_kind(cls)])
        require_meta_keys(path, meta, ("env_id", "window", "sigma"))
        refiner = cls(meta["env_id"], meta["window"], meta["sigma"])
        refiner.checkpoint_path = str(Path(path).resolve())
        return refiner
