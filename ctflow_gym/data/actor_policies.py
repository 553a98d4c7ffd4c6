"""Behaviour policies shipped as plain weights: SB3 SAC's actor, run in numpy.

The datasets' recipes (:mod:`ctflow_gym.data.recipes`) name the policies that act in
them. An SB3 zip holds critics, optimiser moments and pickled objects a recipe does not
need (and which :func:`ctflow_gym.data.load_sb3_policy` must work around), so the
shipped behaviour policies keep only the actor, in the package's checkpoint format
(:mod:`ctflow_gym.checkpoint`: ``checkpoint.json`` + ``weights.safetensors``, read without
running code from the files).

:class:`SACActorPolicy` computes exactly SB3 SAC's actor (``latent_pi`` MLP with ReLU,
``mu`` and ``log_std`` heads, ``log_std`` clipped to [-20, 2], a tanh-squashed Gaussian,
actions rescaled to the action box) with two choices made for rebuilding datasets bit
for bit:

- the forward pass runs in **float64 numpy** on float32 weights. SB3's float32 torch
  forward differs across CPU kernels in the last bits, which a chaotic simulator turns
  into different episodes; float64 differences almost never survive the final cast of
  the action to float32;
- stochastic actions draw their noise from the policy's own seeded
  ``numpy.random.Generator`` (:meth:`SACActorPolicy.seed`), not torch's global RNG.

Its deterministic action equals SB3's ``predict(obs, deterministic=True)`` to float32
rounding; its stochastic actions follow the same distribution with other draws.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ctflow_gym.checkpoint import load_tensors, read_checkpoint_meta, save_checkpoint

KIND = "policy:SACActor"
LOG_STD_BOUNDS = (-20.0, 2.0)
"""SB3 SAC's clip of the actor's log standard deviation."""


class SACActorPolicy:
    """SB3 SAC's actor as plain arrays, acting through an SB3-style ``predict``.

    Args:
        hidden: ``[(weight, bias), ...]`` of the ReLU layers (weights ``out x in``).
        mu, log_std: ``(weight, bias)`` of the two heads.
        action_low, action_high: the action box actions are rescaled to.
        env_id: the env the policy acts in (checked by whoever builds data with it).
        seed: seed of the noise of stochastic actions.
    """

    def __init__(self, hidden, mu, log_std, action_low, action_high, env_id: str, seed: int = 0):
        self.hidden = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in hidden]
        self.mu = tuple(np.asarray(a, np.float64) for a in mu)
        self.log_std = tuple(np.asarray(a, np.float64) for a in log_std)
        self.action_low = np.asarray(action_low, np.float64)
        self.action_high = np.asarray(action_high, np.float64)
        self.env_id = env_id
        self.observation_dim = int(self.hidden[0][0].shape[1])
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Restart the noise of stochastic actions from ``seed``."""
        self._rng = np.random.default_rng(seed)

    @classmethod
    def from_sb3(cls, model, env_id: str) -> "SACActorPolicy":
        """The actor of an SB3 SAC ``model`` (e.g. from :func:`ctflow_gym.data.load_sb3_policy`)."""
        actor = getattr(model, "actor", None)
        if actor is None or not hasattr(actor, "latent_pi") or not hasattr(actor, "log_std"):
            raise ValueError(f"model must be an SB3 SAC model (with actor.latent_pi, mu, log_std); got {type(model)}")
        if getattr(actor, "use_sde", False):
            raise ValueError("model: SAC with gSDE (use_sde=True) is not supported; its actor has no log_std head")
        linears = [m for m in actor.latent_pi if isinstance(m, torch.nn.Linear)]
        activations = {type(m).__name__ for m in actor.latent_pi if not isinstance(m, torch.nn.Linear)}
        if activations - {"ReLU"}:
            raise ValueError(f"model: only ReLU actors are supported; found {sorted(activations)}")

        def pair(linear):
            return linear.weight.detach().cpu().numpy(), linear.bias.detach().cpu().numpy()

        space = model.action_space
        return cls([pair(m) for m in linears], pair(actor.mu), pair(actor.log_std), space.low, space.high, env_id)

    def _mean_and_log_std(self, observation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = observation
        for weight, bias in self.hidden:
            x = np.maximum(x @ weight.T + bias, 0.0)
        mean = x @ self.mu[0].T + self.mu[1]
        log_std = np.clip(x @ self.log_std[0].T + self.log_std[1], *LOG_STD_BOUNDS)
        return mean, log_std

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """``(action, None)`` for one observation or a batch, as SB3's ``predict`` returns them."""
        obs = np.asarray(observation, dtype=np.float64)
        if obs.shape[-1:] != (self.observation_dim,) or obs.ndim not in (1, 2):
            raise ValueError(
                f"observation must have shape ({self.observation_dim},) or (n, {self.observation_dim}); got {obs.shape}"
            )
        if not np.all(np.isfinite(obs)):
            raise ValueError("observation must be finite; got NaN or infinite values")
        mean, log_std = self._mean_and_log_std(obs)
        if not deterministic:
            mean = mean + np.exp(log_std) * self._rng.standard_normal(mean.shape)
        squashed = np.tanh(mean)
        action = self.action_low + 0.5 * (squashed + 1.0) * (self.action_high - self.action_low)
        return action.astype(np.float32), None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the actor as a checkpoint folder (JSON + safetensors) at ``path``."""
        tensors = {
            f"hidden{i}.{name}": torch.from_numpy(np.ascontiguousarray(a, np.float32))
            for i, layer in enumerate(self.hidden)
            for name, a in zip(("weight", "bias"), layer)
        }
        for head in ("mu", "log_std"):
            for name, array in zip(("weight", "bias"), getattr(self, head)):
                tensors[f"{head}.{name}"] = torch.from_numpy(np.ascontiguousarray(array, np.float32))
        meta = {
            "env_id": self.env_id,
            "layers": len(self.hidden),
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
        }
        return save_checkpoint(path, KIND, meta, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike, seed: int = 0) -> "SACActorPolicy":
        """Read an actor written by :meth:`save` (nothing from the folder is executed)."""
        meta = read_checkpoint_meta(path, kinds=[KIND])
        tensors = {k: v.numpy() for k, v in load_tensors(path).items()}

        def pair(prefix):
            return tensors[f"{prefix}.weight"], tensors[f"{prefix}.bias"]

        hidden = [pair(f"hidden{i}") for i in range(int(meta["layers"]))]
        return cls(hidden, pair("mu"), pair("log_std"), meta["action_low"], meta["action_high"], meta["env_id"], seed)


def policy_action_fn(policy: Any, deterministic: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """``observation -> action`` from an SB3-style model (its ``predict``) or a callable; ``TypeError`` otherwise.

    One observation or a batch, as the model or the callable takes them (SB3's ``predict`` and
    :meth:`SACActorPolicy.predict` take both).
    """
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=deterministic)[0]
    if callable(policy):
        return policy
    raise TypeError(
        (
            "policy must be an SB3-style model (with predict(obs, deterministic=...)) or a callable; "
            f"got {type(policy).__name__}"
        )
    )


def is_actor_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :meth:`SACActorPolicy.save`."""
    return (Path(path) / "checkpoint.json").is_file()


def behaviour_policy(path: str | os.PathLike, algo: str, env_id: str, deterministic: bool, seed: int) -> Any:
    """A callable ``observation -> action`` for a dataset build, from an actor folder or an SB3 zip.

    An actor folder (:class:`SACActorPolicy`) draws its noise from ``seed``; an SB3 zip
    acts through SB3's ``predict`` (torch's global RNG, which the build seeds).
    """
    if is_actor_checkpoint(path):
        policy = SACActorPolicy.load(path, seed=seed)
        if policy.env_id != env_id:
            raise ValueError(f"policy: {str(path)!r} acts in {policy.env_id!r}, not in env_id={env_id!r}")
    else:
        from ctflow_gym.data.sb3_policies import load_sb3_policy

        policy = load_sb3_policy(path, algo, env=env_id)

    def act(observation: np.ndarray) -> np.ndarray:
        action, _ = policy.predict(observation, deterministic=deterministic)
        return action

    return act
