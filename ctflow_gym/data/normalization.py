"""Normalisation statistics of states and actions, computed from dataset transitions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from minari import MinariDataset

from ctflow_gym.data.minari_io import load_dataset
from ctflow_gym.data.windows import Windows, iter_episode_arrays

STD_FLOOR = 1e-6
"""Standard deviations below this are raised to it, so constant dimensions stay finite."""


@dataclass(frozen=True)
class NormalizationStats:
    """Per-dimension mean and standard deviation of observations and actions.

    ``normalize_*`` maps to zero mean and unit variance, ``denormalize_*`` back.
    All arrays are float32 vectors; they serialise to JSON with :meth:`to_dict`.
    """

    obs_mean: np.ndarray
    obs_std: np.ndarray
    act_mean: np.ndarray
    act_std: np.ndarray

    @classmethod
    def from_arrays(cls, observations: np.ndarray, actions: np.ndarray) -> "NormalizationStats":
        """Statistics of ``observations`` (..., obs_dim) and ``actions`` (..., act_dim)."""
        obs = np.asarray(observations, dtype=np.float64).reshape(-1, np.shape(observations)[-1])
        act = np.asarray(actions, dtype=np.float64).reshape(-1, np.shape(actions)[-1])
        return cls(
            obs_mean=obs.mean(0).astype(np.float32),
            obs_std=np.maximum(obs.std(0), STD_FLOOR).astype(np.float32),
            act_mean=act.mean(0).astype(np.float32),
            act_std=np.maximum(act.std(0), STD_FLOOR).astype(np.float32),
        )

    @classmethod
    def from_dataset(cls, dataset: MinariDataset | str) -> "NormalizationStats":
        """Statistics over every transition of ``dataset`` (observations before each action)."""
        observations, actions = [], []
        for _, obs, act, *_ in iter_episode_arrays(load_dataset(dataset)):
            observations.append(obs[: len(act)])
            actions.append(act)
        return cls.from_arrays(np.concatenate(observations), np.concatenate(actions))

    @classmethod
    def from_windows(cls, windows: Windows) -> "NormalizationStats":
        """Statistics over the steps of ``windows``."""
        return cls.from_arrays(windows.observations, windows.actions)

    def normalize_observations(self, observations: np.ndarray) -> np.ndarray:
        """Map observations to zero mean and unit variance."""
        return (observations - self.obs_mean) / self.obs_std

    def denormalize_observations(self, observations: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize_observations`."""
        return observations * self.obs_std + self.obs_mean

    def normalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map actions to zero mean and unit variance."""
        return (actions - self.act_mean) / self.act_std

    def denormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`normalize_actions`."""
        return actions * self.act_std + self.act_mean

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready form."""
        return {name: getattr(self, name).tolist() for name in ("obs_mean", "obs_std", "act_mean", "act_std")}

    @classmethod
    def from_dict(cls, values: dict) -> "NormalizationStats":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on missing keys."""
        missing = {"obs_mean", "obs_std", "act_mean", "act_std"} - set(values)
        if missing:
            raise ValueError(f"normalisation statistics lack {sorted(missing)}")
        return cls(
            **{
                name: np.asarray(values[name], dtype=np.float32)
                for name in ("obs_mean", "obs_std", "act_mean", "act_std")
            }
        )
