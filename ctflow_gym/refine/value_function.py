"""A state-value function fitted on logged data: V(s) for verification and bootstrapped feedback.

:class:`DatasetValueFunction` estimates the value of the dataset's behaviour, V^beta(s),
by *fitted evaluation with lambda-returns*: in each of ``rounds`` rounds the targets

    G_t = r_t + gamma * [(1 - lambda) * V(s_{t+1}) + lambda * G_{t+1}]        (Eq. V1)

are computed backwards through every episode with the current V (G after the last step
of an episode is V(s_T) for a time-limit truncation and 0 for a termination), and V is
regressed on them for ``steps_per_round`` minibatch steps. Round 0 starts from V = 0, so
its targets are discounted Monte Carlo returns cut at the episode end; later rounds
bootstrap through truncations. We chose this over TD(0) with a target network because
lambda-returns reach a gamma = 0.99 horizon in a few rounds instead of tens of thousands
of steps, and over plain Monte Carlo because time-limit truncations would bias it.

It is a :data:`~ctflow_gym.replay.scoring.ValueFn` (``value_fn(observation) -> float``),
so any policy can be verified with it (GTPAgent, BC, PPO: nothing needs a critic), and it
gives the refiner's ``feedback="bootstrapped_advantage"`` its V.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctflow_gym.checkpoint import (
    load_module_tensors,
    load_tensors,
    module_tensors,
    read_checkpoint_meta,
    require_meta_keys,
    save_checkpoint,
)
from ctflow_gym.data.transitions import Transitions, load_transitions
from ctflow_gym.data.validation import require_finite
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.models import MLP
from ctflow_gym.refine.codec import batched
from ctflow_gym.refine.config import configured
from ctflow_gym.refine.losses import feedback_regression_loss
from ctflow_gym.refine.training import train_minibatch

VALUE_KIND = "value:DatasetValueFunction"


@dataclass
class ValueFunctionConfig:
    """How :class:`DatasetValueFunction` is fitted.

    Attributes:
        gamma: discount (0.99, the horizon verification and the agents use).
        lam: lambda of the targets (Eq. V1); 1 is Monte Carlo with bootstrapped truncations.
        rounds: target recomputations (round 0 is Monte Carlo; 4 more propagate through truncations).
        steps_per_round: Adam steps on each round's targets.
        hidden, layers: MLP width and depth.
        batch_size, lr: minibatch size and Adam learning rate.
        seed: seeds the minibatches and the initial weights.
        device: torch device.
    """

    gamma: float = 0.99
    lam: float = 0.95
    rounds: int = 5
    steps_per_round: int = 2000
    hidden: int = 256
    layers: int = 2
    batch_size: int = 512
    lr: float = 3e-4
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        for name in ("rounds", "steps_per_round", "hidden", "layers", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("gamma", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")


def lambda_returns(
    rewards: np.ndarray,
    next_values: np.ndarray,
    terminations: np.ndarray,
    episode_ends: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Eq. V1 for flat transitions in episode order; returns G_t (N,).

    ``next_values`` is V(s_{t+1}) per transition; it is ignored where the transition
    terminated. At an episode's last transition the recursion restarts.
    """
    targets = np.empty(len(rewards), dtype=np.float64)
    following = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        bootstrap = 0.0 if terminations[t] else float(next_values[t])
        if episode_ends[t]:
            following = bootstrap  # G after the episode's last step: V(s_T), or 0 at a termination
        following = rewards[t] + gamma * ((1.0 - lam) * bootstrap + lam * following)
        targets[t] = following
    return targets


class DatasetValueFunction:
    """V^beta(s) fitted on a dataset's transitions (see the module docstring).

    Example::

        value_fn = DatasetValueFunction().fit("ctflow/hopper/medium-replay-v1")
        policy = RefinedPolicy(agent, refiner, verify=True, value_fn=value_fn)

    Constructor keywords are the fields of :class:`ValueFunctionConfig`. Calling it on
    one observation returns a float; :meth:`values` takes a batch.
    """

    def __init__(self, config: ValueFunctionConfig | None = None, **overrides: Any):
        self.config = config = configured(config or ValueFunctionConfig(), overrides, "DatasetValueFunction")
        self.network: MLP | None = None
        self.obs_mean = self.obs_std = None
        self.value_mean, self.value_std = 0.0, 1.0
        self.dataset_id: str | None = None
        self.checkpoint_path: str | None = None

    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has run."""
        return self.network is not None

    @property
    def gamma(self) -> float:
        """The discount V was fitted with."""
        return self.config.gamma

    def fit(
        self, data: Transitions | Any, logger: RunLogger = NULL_LOGGER, progress_bar: bool = True
    ) -> "DatasetValueFunction":
        """Fit on ``data``: :class:`Transitions` or a Minari dataset, id or path."""
        cfg = self.config
        transitions = data if isinstance(data, Transitions) else load_transitions(data)
        self.dataset_id = None if isinstance(data, Transitions) else getattr(data, "id", str(data))
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        device = torch.device(cfg.device)
        self.obs_mean = transitions.observations.mean(0).astype(np.float32)
        self.obs_std = np.maximum(transitions.observations.std(0), 1e-6).astype(np.float32)
        obs = self._normalized(transitions.observations)
        next_obs = self._normalized(transitions.next_observations)
        self.network = MLP(obs.shape[1], 1, cfg.hidden, cfg.layers).to(device)
        next_values = np.zeros(len(transitions))
        for round_index in range(cfg.rounds):
            returns = lambda_returns(
                transitions.rewards.astype(np.float64),
                next_values,
                transitions.terminations,
                transitions.episode_ends,
                cfg.gamma,
                cfg.lam,
            )
            if round_index == 0:  # one scale for every round, so the raw values stay comparable
                self.value_mean, self.value_std = float(returns.mean()), float(returns.std() + 1e-8)
            target = torch.as_tensor((returns - self.value_mean) / self.value_std, dtype=torch.float32, device=device)
            self.network.train()
            loss = train_minibatch(
                self.network.parameters(),
                lambda b: feedback_regression_loss(self.network, obs[b], target[b]),
                len(obs),
                cfg.steps_per_round,
                cfg.batch_size,
                cfg.lr,
                generator,
                f"value/round_{round_index}_loss",
                logger,
                progress_bar,
            )
            self.network.eval()
            next_values = self._raw(next_obs)
        self.fit_loss = loss
        self.checkpoint_path = None
        return self

    def _normalized(self, observations) -> torch.Tensor:
        observations = np.asarray(observations, dtype=np.float32)
        return torch.as_tensor(
            (observations - self.obs_mean) / self.obs_std, dtype=torch.float32, device=self.config.device
        )

    @torch.no_grad()
    def _raw(self, normalized: torch.Tensor) -> np.ndarray:
        values = batched(lambda x: self.network(x).squeeze(-1), normalized).cpu().numpy().astype(np.float64)
        return values * self.value_std + self.value_mean

    def values(self, observations) -> np.ndarray:
        """V of a batch of observations (N, obs_dim) -> (N,) float64."""
        if not self.is_fitted:
            raise RuntimeError("this DatasetValueFunction is not fitted; call fit() or DatasetValueFunction.load()")
        observations = np.asarray(observations, dtype=np.float32)
        if observations.ndim != 2 or observations.shape[1] != len(self.obs_mean):
            raise ValueError(f"observations must have shape (N, {len(self.obs_mean)}); got {observations.shape}")
        require_finite(observations, "observations")
        return self._raw(self._normalized(observations))

    def __call__(self, observation) -> float:
        """V(observation) for one observation (the :data:`ValueFn` contract)."""
        return float(self.values(np.asarray(observation, dtype=np.float32)[None])[0])

    def tensors(self, prefix: str = "network") -> dict[str, torch.Tensor]:
        """The network's tensors keyed ``"<prefix>.<parameter>"`` (for embedding in another checkpoint)."""
        return module_tensors({prefix: self.network})

    def meta(self) -> dict[str, Any]:
        """JSON-ready configuration and normalisation (inverse: :meth:`from_saved`)."""
        return {
            "config": asdict(self.config),
            "obs_mean": self.obs_mean.tolist(),
            "obs_std": self.obs_std.tolist(),
            "value_mean": self.value_mean,
            "value_std": self.value_std,
            "dataset_id": self.dataset_id,
        }

    @classmethod
    def from_saved(
        cls,
        meta: dict[str, Any],
        tensors: dict[str, torch.Tensor],
        path: str | os.PathLike,
        prefix: str = "network",
        device: str | None = None,
    ) -> "DatasetValueFunction":
        """Rebuild from :meth:`meta` and :meth:`tensors`; errors name the checkpoint ``path``."""
        known = {f.name for f in fields(ValueFunctionConfig)}
        config = ValueFunctionConfig(**{k: v for k, v in meta["config"].items() if k in known})
        if device is not None:
            config.device = str(device)
        value_fn = cls(config)
        value_fn.obs_mean = np.asarray(meta["obs_mean"], dtype=np.float32)
        value_fn.obs_std = np.asarray(meta["obs_std"], dtype=np.float32)
        value_fn.value_mean, value_fn.value_std = float(meta["value_mean"]), float(meta["value_std"])
        value_fn.dataset_id = meta.get("dataset_id")
        value_fn.network = MLP(len(value_fn.obs_mean), 1, config.hidden, config.layers).to(config.device)
        load_module_tensors({prefix: value_fn.network}, tensors, path)
        value_fn.network.eval()
        return value_fn

    def save(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint folder ``path`` (:mod:`ctflow_gym.checkpoint`); returns it."""
        if not self.is_fitted:
            raise RuntimeError("this DatasetValueFunction is not fitted; nothing to save")
        saved = save_checkpoint(path, VALUE_KIND, self.meta(), self.tensors())
        self.checkpoint_path = str(Path(saved).resolve())
        return saved

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "DatasetValueFunction":
        """Read a value function written by :meth:`save` (JSON and safetensors only)."""
        meta = read_checkpoint_meta(path, family="value", kinds=[VALUE_KIND])
        require_meta_keys(path, meta, ("config", "obs_mean", "obs_std", "value_mean", "value_std"))
        value_fn = cls.from_saved(meta, load_tensors(path), path, device=device)
        value_fn.checkpoint_path = str(Path(path).resolve())
        return value_fn
