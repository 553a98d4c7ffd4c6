"""Windows <-> normalised latents: the part of a latent refiner that reads and writes windows.

:class:`LatentCodec` holds the dataset normalisation, the trajectory autoencoder, the
latent statistics (latents are standardised before pairing and flow training,
appendix A.7), the env's action bounds, and the batching used for every network call.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ctflow_gym.data.normalization import NormalizationStats
from ctflow_gym.data.validation import require_finite
from ctflow_gym.models import TrajectoryAutoencoder

BATCH = 8192
"""Windows per network call when encoding, decoding or integrating many windows."""


def batched(fn: Callable[..., torch.Tensor], *tensors: torch.Tensor) -> torch.Tensor:
    """``fn`` applied to aligned chunks of ``tensors`` of at most :data:`BATCH` rows, concatenated."""
    return torch.cat([fn(*(t[i : i + BATCH] for t in tensors)) for i in range(0, len(tensors[0]), BATCH)])


class LatentCodec:
    """Normalise, encode, decode and clip windows of one env's (state, action) steps.

    Args:
        stats: per-dimension observation/action statistics of the training windows.
        autoencoder: the trained :class:`~ctflow_gym.models.TrajectoryAutoencoder`.
        latent_mean, latent_std: statistics of the training latents E(tau).
        action_low, action_high: the env's action bounds (refined actions are clipped to
            them: MuJoCo clamps controls, but e.g. Hopper-v5 charges its control cost on
            the unclipped action), or None when unknown.
    """

    def __init__(
        self,
        stats: NormalizationStats,
        autoencoder: TrajectoryAutoencoder,
        latent_mean: torch.Tensor,
        latent_std: torch.Tensor,
        action_low: np.ndarray | None,
        action_high: np.ndarray | None,
    ):
        self.stats = stats
        self.autoencoder = autoencoder.eval()
        self.latent_mean = latent_mean
        self.latent_std = latent_std
        self.action_low = action_low
        self.action_high = action_high
        self.device = latent_mean.device

    @property
    def window(self) -> int:
        """Window length H."""
        return self.autoencoder.window

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        return self.autoencoder.obs_dim

    @property
    def act_dim(self) -> int:
        """Action size."""
        return self.autoencoder.act_dim

    # ------------------------------------------------------------- windows in
    def check_windows(self, observations, actions) -> tuple[np.ndarray, np.ndarray]:
        """``(observations, actions)`` as float32 (N, H, dim) arrays; a single (H, dim) window gets N = 1.

        Raises ``ValueError`` naming the argument for a wrong shape or a non-finite value.
        """
        observations = np.asarray(observations, dtype=np.float32)
        actions = np.asarray(actions, dtype=np.float32)
        if observations.ndim == 2 and actions.ndim == 2:
            observations, actions = observations[None], actions[None]
        shape = (self.window, self.obs_dim)
        if observations.ndim != 3 or observations.shape[1:] != shape:
            raise ValueError(
                (
                    f"observations must have shape (N, {shape[0]}, {shape[1]}) or ({shape[0]}, {shape[1]}); got "
                    f"{observations.shape}"
                )
            )
        act_shape = (self.window, self.act_dim)
        if actions.ndim != 3 or actions.shape[1:] != act_shape or len(actions) != len(observations):
            raise ValueError(
                f"actions must have shape ({len(observations)}, {act_shape[0]}, {act_shape[1]}); got {actions.shape}"
            )
        require_finite(observations, "observations")
        require_finite(actions, "actions")
        return observations, actions

    def normalized_tensors(self, observations, actions) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw windows -> normalised float32 tensors on the codec's device."""
        obs = self.stats.normalize_observations(np.asarray(observations, np.float32))
        act = self.stats.normalize_actions(np.asarray(actions, np.float32))
        return (
            torch.as_tensor(obs, dtype=torch.float32, device=self.device),
            torch.as_tensor(act, dtype=torch.float32, device=self.device),
        )

    @torch.no_grad()
    def encode(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Standardised latents (z - mean) / std of normalised windows."""
        raw = batched(lambda o, a: self.autoencoder.encode(o, a), obs, act)
        return (raw - self.latent_mean) / self.latent_std

    # ------------------------------------------------------------ windows out
    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D(z) of standardised latents: normalised (observations, actions) tensors."""
        return self.autoencoder.decode(latents * self.latent_std + self.latent_mean)

    def clip(self, actions: np.ndarray) -> np.ndarray:
        """``actions`` clipped to the action bounds (unchanged when they are unknown)."""
        return actions if self.action_low is None else np.clip(actions, self.action_low, self.action_high)

    def to_raw(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Normalised tensors -> raw observations and clipped raw actions."""
        return self.stats.denormalize_observations(obs.cpu().numpy()), self.clip(
            self.stats.denormalize_actions(act.cpu().numpy())
        )

    def decode_refined(
        self, z_ref: torch.Tensor, z_src: torch.Tensor, src_obs: np.ndarray, src_act: np.ndarray, mode: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Refined windows in raw units.

        ``mode="direct"`` is the paper's D(z_ref). ``"residual"`` is
        source + (D(z_ref) - D(z_src)), added in raw units so that z_ref = z_src returns
        the source bit for bit and the autoencoder's error does not touch every window.
        """
        ref_obs, ref_act = self.decode(z_ref)
        if mode == "direct":
            return self.to_raw(ref_obs, ref_act)
        dec_obs, dec_act = self.decode(z_src)
        delta_obs = (ref_obs - dec_obs).cpu().numpy() * self.stats.obs_std
        delta_act = (ref_act - dec_act).cpu().numpy() * self.stats.act_std
        return src_obs + delta_obs, self.clip(src_act + delta_act)

    def action_deviation(self, refined_actions: np.ndarray, source_actions: torch.Tensor) -> np.ndarray:
        """RMS over steps of || refined - source || per window, in normalised action units."""
        step_distance = np.linalg.norm(
            self.stats.normalize_actions(refined_actions) - source_actions.cpu().numpy(), axis=-1
        )
        return np.sqrt((step_distance**2).mean(-1)).astype(np.float64)

    # ------------------------------------------------------------- persistence
    def tensors(self) -> dict[str, torch.Tensor]:
        """Tensors to save: the autoencoder's (``autoencoder.*``) and the latent statistics."""
        tensors = {f"autoencoder.{k}": v for k, v in self.autoencoder.state_dict().items()}
        tensors.update(latent_mean=self.latent_mean, latent_std=self.latent_std)
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    def meta(self) -> dict[str, Any]:
        """JSON-ready metadata to save: sizes, normalisation and action bounds."""
        return {
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "stats": self.stats.to_dict(),
            "action_low": None if self.action_low is None else self.action_low.tolist(),
            "action_high": None if self.action_high is None else self.action_high.tolist(),
        }

    @classmethod
    def from_saved(
        cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor], autoencoder: TrajectoryAutoencoder
    ) -> "LatentCodec":
        """Inverse of :meth:`meta` / :meth:`tensors`; ``autoencoder`` is built (untrained) by the caller."""
        autoencoder.load_state_dict(
            {k[len("autoencoder.") :]: v for k, v in tensors.items() if k.startswith("autoencoder.")}
        )
        bounds = [
            None if meta[key] is None else np.asarray(meta[key], np.float32) for key in ("action_low", "action_high")
        ]
        return cls(
            NormalizationStats.from_dict(meta["stats"]),
            autoencoder,
            tensors["latent_mean"],
            tensors["latent_std"],
            *bounds,
        )
