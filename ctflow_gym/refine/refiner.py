"""``TrajectoryRefiner``: counterfactual transport flows (seed 000) as one object.

``fit`` trains, in the paper's order: (1) the trajectory autoencoder on windows,
(2) local preference pairs in normalised latent space, (3) the source-conditioned
flow by flow matching; and, for evaluation only, (4) a return predictor on held-out
episodes. ``refine`` integrates the flow from each source latent to t = strength and
decodes. The paper's baselines are methods of the same object.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ctflow_gym.atomic import move_into_place, scratch_folder
from ctflow_gym.data.minari_io import load_dataset
from ctflow_gym.data.normalization import NormalizationStats
from ctflow_gym.data.validation import require_finite, require_strength
from ctflow_gym.data.windows import Windows, make_windows, split_episodes
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.models import MLP, SourceConditionedVelocity, TrajectoryAutoencoder
from ctflow_gym.refine.config import METHODS, RefinerConfig
from ctflow_gym.refine.flow_matching import flow_matching_loss, integrate
from ctflow_gym.refine.pairs import PreferencePairs, local_pairs, nonlocal_pairs
from ctflow_gym.refine.training import train_minibatch

FORMAT_VERSION = 1
_BATCH = 8192


@dataclass(frozen=True)
class RefinementResult:
    """Refined windows and what refinement did to each (arrays aligned on axis 0).

    Attributes:
        observations: (N, H, obs_dim) refined states, as decoded (a prediction: only
            replay in the simulator says which states the actions really reach).
        actions: (N, H, act_dim) refined actions, clipped to the action bounds.
        source_latents: (N, d) normalised latents of the source windows.
        refined_latents: (N, d) latents the method moved them to.
        predicted_gain: (N,) proxy feedback gain P(E(refined)) - P(E(source)) of the
            held-out return predictor, or None when it was not fitted.
        action_deviation: (N,) root mean square over steps of the L2 distance
            between refined and source actions, in normalised action units.
        latent_deviation: (N,) || refined_latent - source_latent ||.
    """

    observations: np.ndarray
    actions: np.ndarray
    source_latents: np.ndarray
    refined_latents: np.ndarray
    predicted_gain: np.ndarray | None
    action_deviation: np.ndarray
    latent_deviation: np.ndarray


class TrajectoryRefiner:
    """Counterfactual transport flows for windows of (state, action) trajectories.

    Example::

        refiner = TrajectoryRefiner(window=16, k=3).fit("ctflow/hopper/medium-replay-v1")
        result = refiner.refine(observations, actions, strength=0.5)

    Constructor keywords are the fields of :class:`RefinerConfig` (or pass
    ``config=``).
    """

    def __init__(self, config: RefinerConfig | None = None, **overrides: Any):
        config = config or RefinerConfig()
        for name, value in overrides.items():
            if not hasattr(config, name):
                raise TypeError(f"TrajectoryRefiner got an unknown argument {name!r}; see RefinerConfig")
            setattr(config, name, value)
        config.validate()
        self.config = config
        self.device = torch.device(config.device)
        self.autoencoder: TrajectoryAutoencoder | None = None
        self.velocity: SourceConditionedVelocity | None = None
        self.predictor: torch.nn.Module | None = None
        self.stats: NormalizationStats | None = None
        self.latent_mean: torch.Tensor | None = None
        self.latent_std: torch.Tensor | None = None
        self.predictor_scale: tuple[float, float] = (0.0, 1.0)
        self.margin: float | None = None
        self.action_low: np.ndarray | None = None
        self.action_high: np.ndarray | None = None
        self.env_id: str | None = None
        self.pairs: PreferencePairs | None = None
        self.fit_info: dict[str, Any] = {}
        self.bank: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has run."""
        return self.autoencoder is not None

    def fit(self, data, logger: RunLogger = NULL_LOGGER, progress_bar: bool = True) -> "TrajectoryRefiner":
        """Train on ``data``: a Minari dataset, id or path, or :class:`Windows`.

        Windows must have the configured length. Raises ``ValueError`` when no
        improving pair exists (with the number of windows, k and margin).
        """
        cfg = self.config
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        windows, action_space, dataset_id = self._windows_from(data)
        if len(windows) < 2:
            raise ValueError(f"data: at least 2 windows are needed to fit; got {len(windows)}")
        if cfg.held_out_fraction > 0 and len(np.unique(windows.episode_ids)) >= 2:
            train, held_out = split_episodes(windows, cfg.held_out_fraction, seed=cfg.seed)
        else:
            train, held_out = windows, None
        self.env_id = windows.env_id
        if action_space is not None:
            self.action_low = np.asarray(action_space.low, dtype=np.float32)
            self.action_high = np.asarray(action_space.high, dtype=np.float32)
        self.stats = NormalizationStats.from_windows(train)
        obs, act = self._normalized_tensors(train.observations, train.actions)

        # (1) trajectory autoencoder, appendix A.2
        self.autoencoder = TrajectoryAutoencoder(cfg.window, train.obs_dim, train.act_dim, cfg.latent_dim, cfg.ae_hidden, cfg.ae_layers).to(self.device)
        ae_loss = train_minibatch(
            self.autoencoder.parameters(), lambda b: self.autoencoder.reconstruction_loss(obs[b], act[b]),
            len(train), cfg.ae_steps, cfg.batch_size, cfg.lr, generator, "refiner/ae_loss", logger, progress_bar,
        )
        self.autoencoder.eval()
        with torch.no_grad():
            raw_latents = self._batched(lambda o, a: self.autoencoder.encode(o, a), obs, act)
        # Latents are normalised before pairing and flow training (appendix A.7).
        self.latent_mean = raw_latents.mean(0)
        self.latent_std = raw_latents.std(0).clamp_min(1e-6)
        latents = (raw_latents - self.latent_mean) / self.latent_std

        # (2) local preference pairs, section 2.2 / appendix A.3
        feedback = self._training_feedback(train, obs, generator, logger, progress_bar)
        self.margin = float(cfg.margin) if cfg.margin is not None else 0.1 * float(np.std(feedback))
        z_np = latents.cpu().numpy()
        if cfg.targets == "local":
            pairs = local_pairs(z_np, feedback, train.episode_ids, train.start_steps, cfg.window, cfg.k, self.margin)
        else:
            pairs = nonlocal_pairs(feedback, self.margin, seed=cfg.seed)
        if len(pairs) == 0:
            raise ValueError(
                f"no improving pair found among {len(train)} training windows with k={cfg.k} and "
                f"margin={self.margin:.4g} (feedback std {np.std(feedback):.4g}); lower margin or raise k"
            )
        self.pairs = pairs

        # (3) source-conditioned flow matching, Eq. 2
        self.velocity = SourceConditionedVelocity(cfg.latent_dim, cfg.flow_hidden, cfg.flow_layers).to(self.device)
        sources = latents[torch.as_tensor(pairs.sources, device=self.device)]
        targets = latents[torch.as_tensor(pairs.targets, device=self.device)]
        flow_loss = train_minibatch(
            self.velocity.parameters(), lambda b: flow_matching_loss(self.velocity, sources[b], targets[b]),
            len(pairs), cfg.flow_steps, cfg.batch_size, cfg.lr, generator, "refiner/flow_loss", logger, progress_bar,
        )
        self.velocity.eval()

        # (4) return predictor on held-out episodes, for the proxy metric only
        predictor_loss = None
        if held_out is not None:
            predictor_loss = self._fit_predictor(held_out, generator, logger, progress_bar)

        self.bank = {
            "latents": z_np,
            "feedback": feedback.astype(np.float64),
            "observations": train.observations,
            "actions": train.actions,
        }
        self.fit_info = {
            "dataset_id": dataset_id,
            "held_out_episodes": [] if held_out is None else np.unique(held_out.episode_ids).tolist(),
            "windows": len(windows),
            "train_windows": len(train),
            "held_out_windows": 0 if held_out is None else len(held_out),
            "pairs": len(pairs),
            "pair_fraction": len(pairs) / len(train),
            "margin": self.margin,
            "ae_loss": ae_loss,
            "flow_loss": flow_loss,
            "predictor_loss": predictor_loss,
        }
        logger.log({f"refiner/fit_{k}": v for k, v in self.fit_info.items() if isinstance(v, (int, float))})
        return self

    @property
    def held_out_episodes(self) -> np.ndarray:
        """Ids of the dataset episodes held out of the autoencoder and the flow.

        Only the proxy return predictor trains on them, so their windows are the
        honest place to measure refinement. Empty when nothing was held out. ``fit_info["dataset_id"]`` names
        the dataset the ids refer to (None when fitted on :class:`Windows`).
        """
        return np.asarray(self.fit_info.get("held_out_episodes", []), dtype=np.int64)

    def _windows_from(self, data):
        cfg = self.config
        if isinstance(data, Windows):
            if data.window != cfg.window:
                raise ValueError(f"data: windows have length {data.window}; this refiner is configured for window={cfg.window}")
            for name in ("observations", "actions", "feedback"):
                require_finite(getattr(data, name), f"data.{name}")
            return data, None, None
        dataset = load_dataset(data)
        feedback = "return" if cfg.feedback == "advantage" else cfg.feedback
        return make_windows(dataset, cfg.window, cfg.stride, feedback, cfg.gamma), dataset.action_space, dataset.id

    def _training_feedback(self, train: Windows, obs: torch.Tensor, generator, logger, progress_bar) -> np.ndarray:
        """R(tau) per training window; for ``"advantage"``, minus a fitted V(s_1)."""
        feedback = train.feedback.astype(np.float64)
        if self.config.feedback != "advantage":
            return feedback
        mean, std = float(feedback.mean()), float(feedback.std() + 1e-8)
        target = torch.as_tensor((feedback - mean) / std, dtype=torch.float32, device=self.device)
        start_obs = obs[:, 0]
        value = MLP(train.obs_dim, 1, 256, 2).to(self.device)
        train_minibatch(
            value.parameters(), lambda b: (value(start_obs[b]).squeeze(-1) - target[b]).pow(2).mean(),
            len(train), self.config.predictor_steps, self.config.batch_size, self.config.lr, generator,
            "refiner/start_value_loss", logger, progress_bar,
        )
        with torch.no_grad():
            baseline = value(start_obs).squeeze(-1).cpu().numpy() * std + mean
        return feedback - baseline

    def _fit_predictor(self, held_out: Windows, generator, logger, progress_bar) -> float:
        obs, act = self._normalized_tensors(held_out.observations, held_out.actions)
        latents = self._encode(obs, act)
        mean, std = float(held_out.feedback.mean()), float(held_out.feedback.std() + 1e-8)
        self.predictor_scale = (mean, std)
        target = torch.as_tensor((held_out.feedback - mean) / std, dtype=torch.float32, device=self.device)
        self.predictor = MLP(self.config.latent_dim, 1, 256, 2).to(self.device)
        loss = train_minibatch(
            self.predictor.parameters(), lambda b: (self.predictor(latents[b]).squeeze(-1) - target[b]).pow(2).mean(),
            len(held_out), self.config.predictor_steps, self.config.batch_size, self.config.lr, generator,
            "refiner/predictor_loss", logger, progress_bar,
        )
        self.predictor.eval()
        return loss

    # ---------------------------------------------------------------- inference
    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("this TrajectoryRefiner is not fitted; call fit() or TrajectoryRefiner.load()")

    def _normalized_tensors(self, observations, actions) -> tuple[torch.Tensor, torch.Tensor]:
        obs = torch.as_tensor(self.stats.normalize_observations(np.asarray(observations, np.float32)), dtype=torch.float32, device=self.device)
        act = torch.as_tensor(self.stats.normalize_actions(np.asarray(actions, np.float32)), dtype=torch.float32, device=self.device)
        return obs, act

    @staticmethod
    def _batched(fn, *tensors):
        return torch.cat([fn(*(t[i : i + _BATCH] for t in tensors)) for i in range(0, len(tensors[0]), _BATCH)])

    @torch.no_grad()
    def _encode(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Normalised latents of normalised windows."""
        raw = self._batched(lambda o, a: self.autoencoder.encode(o, a), obs, act)
        return (raw - self.latent_mean) / self.latent_std

    @torch.no_grad()
    def _decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.autoencoder.decode(latents * self.latent_std + self.latent_mean)

    @torch.no_grad()
    def _feedback_of_latents(self, latents: torch.Tensor) -> np.ndarray:
        mean, std = self.predictor_scale
        return self._batched(lambda z: self.predictor(z).squeeze(-1), latents).cpu().numpy() * std + mean

    @torch.no_grad()
    def predict_feedback(self, observations, actions) -> np.ndarray:
        """The held-out return predictor's feedback estimate P(E(tau)) per window."""
        self._require_fitted()
        if self.predictor is None:
            raise RuntimeError("no return predictor: the refiner was fitted with held_out_fraction=0")
        obs, act = self._normalized_tensors(*self._check_windows(observations, actions))
        return self._feedback_of_latents(self._encode(obs, act))

    def _check_windows(self, observations, actions) -> tuple[np.ndarray, np.ndarray]:
        observations = np.asarray(observations, dtype=np.float32)
        actions = np.asarray(actions, dtype=np.float32)
        if observations.ndim == 2 and actions.ndim == 2:
            observations, actions = observations[None], actions[None]
        shape = (self.config.window, self.autoencoder.obs_dim)
        if observations.ndim != 3 or observations.shape[1:] != shape:
            raise ValueError(f"observations must have shape (N, {shape[0]}, {shape[1]}) or ({shape[0]}, {shape[1]}); got {observations.shape}")
        act_shape = (self.config.window, self.autoencoder.act_dim)
        if actions.ndim != 3 or actions.shape[1:] != act_shape or len(actions) != len(observations):
            raise ValueError(f"actions must have shape ({len(observations)}, {act_shape[0]}, {act_shape[1]}); got {actions.shape}")
        require_finite(observations, "observations")
        require_finite(actions, "actions")
        return observations, actions

    @torch.no_grad()
    def refine(
        self,
        observations,
        actions=None,
        strength: float = 1.0,
        steps: int | None = None,
        method: str = "flow",
        seed: int = 0,
    ) -> RefinementResult:
        """Refine a batch of windows (or one window of shape (H, dim)).

        Args:
            observations: (N, H, obs_dim) states, or a :class:`Windows` (then
                ``actions`` is omitted).
            actions: (N, H, act_dim).
            strength: alpha >= 0; 0 returns the source (exactly with residual
                decoding), 1 the learned target, > 1 extrapolates.
            steps: Euler steps (default ``config.euler_steps``).
            method: ``"flow"`` (ours), ``"nearest"`` (nearest improved neighbour in the
                training bank replaces the source), ``"random"`` (a random improved
                training window replaces it), ``"reconstruction"`` (D(E(tau))).
            seed: seeds ``"random"``.
        """
        self._require_fitted()
        if isinstance(observations, Windows):
            observations, actions = observations.observations, observations.actions
        if actions is None:
            raise ValueError("actions are required unless observations is a Windows batch")
        require_strength(strength)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}")
        steps = self.config.euler_steps if steps is None else steps
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps!r}")
        src_obs_np, src_act_np = self._check_windows(observations, actions)
        obs, act = self._normalized_tensors(src_obs_np, src_act_np)
        z_src = self._encode(obs, act)

        if method == "flow":
            z_ref = self._batched(lambda z: integrate(self.velocity, z, strength, steps)[0], z_src)
            refined_obs, refined_act = self._decode_refined(z_ref, z_src, src_obs_np, src_act_np)
        else:
            if method == "reconstruction":
                z_ref = z_src
                new_obs, new_act = self._decode(z_src)
            else:
                z_ref, new_obs, new_act = self._replace_from_bank(z_src, method, seed)
            refined_obs = self.stats.denormalize_observations(new_obs.cpu().numpy())
            refined_act = self._clip(self.stats.denormalize_actions(new_act.cpu().numpy()))
        action_step_distance = np.linalg.norm(self.stats.normalize_actions(refined_act) - act.cpu().numpy(), axis=-1)
        action_dev = np.sqrt((action_step_distance**2).mean(-1))
        predicted_gain = None
        if self.predictor is not None:
            # The sources are already encoded (z_src); only the refined windows need encoding.
            predicted_gain = self.predict_feedback(refined_obs, refined_act) - self._feedback_of_latents(z_src)
        z_src_np, z_ref_np = z_src.cpu().numpy(), z_ref.cpu().numpy()
        return RefinementResult(
            observations=refined_obs.astype(np.float32),
            actions=refined_act.astype(np.float32),
            source_latents=z_src_np,
            refined_latents=z_ref_np,
            predicted_gain=predicted_gain,
            action_deviation=action_dev.astype(np.float64),
            latent_deviation=np.linalg.norm(z_ref_np - z_src_np, axis=1),
        )

    def _clip(self, actions: np.ndarray) -> np.ndarray:
        return actions if self.action_low is None else np.clip(actions, self.action_low, self.action_high)

    def _decode_refined(self, z_ref, z_src, src_obs: np.ndarray, src_act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Refined windows in raw units, per ``config.decode``."""
        ref_obs, ref_act = self._decode(z_ref)
        if self.config.decode == "direct":
            return self.stats.denormalize_observations(ref_obs.cpu().numpy()), self._clip(self.stats.denormalize_actions(ref_act.cpu().numpy()))
        # Residual decoding: source + (D(z_alpha) - D(z_src)), added in raw units so
        # that strength 0 returns the source bit for bit.
        dec_obs, dec_act = self._decode(z_src)
        delta_obs = (ref_obs - dec_obs).cpu().numpy() * self.stats.obs_std
        delta_act = (ref_act - dec_act).cpu().numpy() * self.stats.act_std
        return src_obs + delta_obs, self._clip(src_act + delta_act)

    def _replace_from_bank(self, z_src: torch.Tensor, method: str, seed: int):
        """Baselines that replace the source by a training window with better feedback."""
        if self.bank is None:
            raise RuntimeError(f"method={method!r} needs the training bank; it is kept after fit() and saved with save(path, include_bank=True)")
        bank_z = torch.as_tensor(self.bank["latents"], device=self.device)
        bank_feedback = self.bank["feedback"]
        # A new window's own feedback is unknown: use its nearest bank window's.
        distances = torch.cdist(z_src, bank_z)
        order = torch.argsort(distances, dim=1).cpu().numpy()
        own_feedback = bank_feedback[order[:, 0]]
        rng = np.random.default_rng(seed)
        chosen = np.empty(len(z_src), dtype=np.int64)
        for i in range(len(z_src)):
            better = bank_feedback >= own_feedback[i] + self.margin
            if method == "nearest":
                ranked = order[i][better[order[i]]]
                chosen[i] = ranked[0] if len(ranked) else order[i, 0]
            else:
                candidates = np.flatnonzero(better)
                chosen[i] = rng.choice(candidates) if len(candidates) else order[i, 0]
        obs, act = self._normalized_tensors(self.bank["observations"][chosen], self.bank["actions"][chosen])
        return bank_z[torch.as_tensor(chosen, device=self.device)], obs, act

    @torch.no_grad()
    def path(self, observations, actions, strength: float = 1.0, times=None, steps: int | None = None) -> dict[str, np.ndarray]:
        """The refinement path: windows decoded at ``times`` in [0, strength].

        Returns ``{"times": (T,), "latents": (T, N, d), "observations": (T, N, H, obs_dim),
        "actions": (T, N, H, act_dim)}``; decoding follows ``config.decode``.
        """
        self._require_fitted()
        require_strength(strength)
        times = np.linspace(0.0, strength, 5) if times is None else np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or np.any(times < 0) or np.any(times > strength + 1e-9):
            raise ValueError(f"times must be a 1-D array within [0, strength={strength}]; got {times}")
        src_obs, src_act = self._check_windows(observations, actions)
        obs, act = self._normalized_tensors(src_obs, src_act)
        z_src = self._encode(obs, act)
        steps = steps or self.config.euler_steps
        _, trace = integrate(self.velocity, z_src, strength, steps, record_at=torch.as_tensor(np.sort(times)))
        decoded = [self._decode_refined(z, z_src, src_obs, src_act) for z in trace]
        return {
            "times": np.sort(times),
            "latents": trace.cpu().numpy(),
            "observations": np.stack([o for o, _ in decoded]).astype(np.float32),
            "actions": np.stack([a for _, a in decoded]).astype(np.float32),
        }

    # -------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, include_bank: bool = False) -> Path:
        """Write the refiner to folder ``path`` (config.json + weights.safetensors).

        ``include_bank`` also stores the training windows the ``"nearest"`` and
        ``"random"`` baselines draw from (large: N x H x (obs + act) floats). The
        folder is written beside ``path`` under a temporary name and renamed.
        """
        self._require_fitted()
        path = Path(path)
        with scratch_folder(path.parent, f".{path.name}-") as staging:
            tensors = {f"autoencoder.{k}": v for k, v in self.autoencoder.state_dict().items()}
            tensors.update({f"velocity.{k}": v for k, v in self.velocity.state_dict().items()})
            if self.predictor is not None:
                tensors.update({f"predictor.{k}": v for k, v in self.predictor.state_dict().items()})
            tensors["latent_mean"], tensors["latent_std"] = self.latent_mean, self.latent_std
            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(staging / "weights.safetensors"))
            if include_bank and self.bank is not None:
                save_file({k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in self.bank.items()}, str(staging / "bank.safetensors"))
            meta = {
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "obs_dim": self.autoencoder.obs_dim,
                "act_dim": self.autoencoder.act_dim,
                "stats": self.stats.to_dict(),
                "predictor_scale": list(self.predictor_scale),
                "has_predictor": self.predictor is not None,
                "margin": self.margin,
                "action_low": None if self.action_low is None else self.action_low.tolist(),
                "action_high": None if self.action_high is None else self.action_high.tolist(),
                "env_id": self.env_id,
                "fit_info": self.fit_info,
            }
            (staging / "config.json").write_text(json.dumps(meta, indent=2))
            move_into_place(staging, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "TrajectoryRefiner":
        """Read a refiner written by :meth:`save`. Only JSON and safetensors are read."""
        path = Path(path)
        if not (path / "config.json").is_file() or not (path / "weights.safetensors").is_file():
            raise FileNotFoundError(f"path: {str(path)!r} is not a saved TrajectoryRefiner (config.json and weights.safetensors expected)")
        meta = json.loads((path / "config.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"path: refiner format version {meta.get('format_version')} is not supported (expected {FORMAT_VERSION})")
        config = RefinerConfig.from_dict(meta["config"])
        if device is not None:
            config.device = device
        refiner = cls(config)
        cfg = refiner.config
        tensors = load_file(str(path / "weights.safetensors"), device=str(refiner.device))

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}

        refiner.autoencoder = TrajectoryAutoencoder(cfg.window, meta["obs_dim"], meta["act_dim"], cfg.latent_dim, cfg.ae_hidden, cfg.ae_layers).to(refiner.device)
        refiner.autoencoder.load_state_dict(part("autoencoder"))
        refiner.velocity = SourceConditionedVelocity(cfg.latent_dim, cfg.flow_hidden, cfg.flow_layers).to(refiner.device)
        refiner.velocity.load_state_dict(part("velocity"))
        if meta["has_predictor"]:
            refiner.predictor = MLP(cfg.latent_dim, 1, 256, 2).to(refiner.device)
            refiner.predictor.load_state_dict(part("predictor"))
            refiner.predictor.eval()
        refiner.autoencoder.eval()
        refiner.velocity.eval()
        refiner.latent_mean, refiner.latent_std = tensors["latent_mean"], tensors["latent_std"]
        refiner.stats = NormalizationStats.from_dict(meta["stats"])
        refiner.predictor_scale = tuple(meta["predictor_scale"])
        refiner.margin = meta["margin"]
        refiner.action_low = None if meta["action_low"] is None else np.asarray(meta["action_low"], np.float32)
        refiner.action_high = None if meta["action_high"] is None else np.asarray(meta["action_high"], np.float32)
        refiner.env_id = meta["env_id"]
        refiner.fit_info = meta["fit_info"]
        if (path / "bank.safetensors").is_file():
            refiner.bank = {k: v.numpy() for k, v in load_file(str(path / "bank.safetensors")).items()}
        return refiner
