"""``TrajectoryRefiner``: counterfactual transport flows as one object built from parts.

``fit`` trains, in the paper's order: (1) the trajectory autoencoder on windows
(:class:`~ctflow_gym.refine.codec.LatentCodec`), (2) local preference pairs in
standardised latent space (:mod:`~ctflow_gym.refine.pairs`), (3) the source-conditioned
flow by flow matching (Eq. 2, :func:`~ctflow_gym.refine.losses.flow_matching_loss`);
and, for evaluation only, (4) a return predictor on held-out episodes
(:mod:`~ctflow_gym.refine.feedback`). ``refine`` integrates the flow from each source
latent to t = strength and decodes. The paper's baselines are refiner families of
their own in the same latent space (:mod:`~ctflow_gym.refine.replacement`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctflow_gym.checkpoint import (
    read_checkpoint_meta,
    require_meta_keys,
    save_checkpoint,
)
from ctflow_gym.data.normalization import NormalizationStats
from ctflow_gym.data.validation import require_strength
from ctflow_gym.data.windows import split_episodes, window_arrays
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.models import SourceConditionedVelocity, TrajectoryAutoencoder
from ctflow_gym.refine.baselines import TrainingBank
from ctflow_gym.refine.codec import LatentCodec, batched
from ctflow_gym.refine.config import RefinerConfig, configured
from ctflow_gym.refine.contract import RefinementResult
from ctflow_gym.refine.feedback import FeedbackModel
from ctflow_gym.refine.fit_inputs import training_feedback, windows_to_fit
from ctflow_gym.refine.integration import integrate
from ctflow_gym.refine.inverse_dynamics import InverseDynamics
from ctflow_gym.refine.losses import autoencoder_loss, flow_matching_loss
from ctflow_gym.refine.pairs import PreferencePairs, local_pairs, nonlocal_pairs
from ctflow_gym.refine.refiner_files import checkpoint_contents, restore_contents
from ctflow_gym.refine.registry import refiner_kind, register_refiner
from ctflow_gym.refine.training import train_minibatch
from ctflow_gym.refine.value_function import DatasetValueFunction
from ctflow_gym.timing import StageClock


@register_refiner
class TrajectoryRefiner:
    """Counterfactual transport flows for windows of (state, action) trajectories.

    Example::

        refiner = TrajectoryRefiner(window=16, k=3).fit("ctflow/hopper/medium-replay-v1")
        result = refiner.refine(observations, actions, strength=0.5)

    Constructor keywords are the fields of :class:`RefinerConfig` (or pass ``config=``).
    Follows the :class:`ctflow_gym.refine.Refiner` contract.

    Parts, set by ``fit`` or ``load``: ``codec`` (normalisation, autoencoder, latent
    statistics, action bounds), ``velocity`` (the flow's velocity field), ``predictor``
    (the proxy return predictor, when episodes were held out), ``bank`` (training
    windows for the replacement baselines), ``pairs`` (after ``fit`` only), ``margin``,
    ``inverse_dynamics`` (g(s_t, s_{t+1}) for tracked execution, unless
    ``inverse_dynamics_steps=0``) and ``value_function`` (the dataset V of
    ``feedback="bootstrapped_advantage"``, usable as a verification ``value_fn``).

    ``checkpoint_path``: the folder it was last saved to or loaded from (absolute), None
    after ``fit``; ``RefinementWrapper`` records it in ``env.spec``. A fitted refiner
    pickles (it crosses to the worker processes of vector envs) and refines identically
    after unpickling.
    """

    def __init__(self, config: RefinerConfig | None = None, **overrides: Any):
        self.config = config = configured(config or RefinerConfig(), overrides, "TrajectoryRefiner")
        self.device = torch.device(config.device)
        self.codec: LatentCodec | None = None
        self.velocity: SourceConditionedVelocity | None = None
        self.predictor: FeedbackModel | None = None
        self.inverse_dynamics: InverseDynamics | None = None
        self.value_function: DatasetValueFunction | None = None
        self.bank: TrainingBank | None = None
        self.pairs: PreferencePairs | None = None
        self.margin: float | None = None
        self.env_id: str | None = None
        self.fit_info: dict[str, Any] = {}
        self.checkpoint_path: str | None = None

    # --------------------------------------------------------------- contract
    @property
    def is_fitted(self) -> bool:
        """Whether ``fit`` (or ``load``) has run."""
        return self.codec is not None

    @property
    def window(self) -> int:
        """Window length H."""
        return self.config.window

    @property
    def obs_dim(self) -> int | None:
        """Observation size (None before fitting)."""
        return None if self.codec is None else self.codec.obs_dim

    @property
    def act_dim(self) -> int | None:
        """Action size (None before fitting)."""
        return None if self.codec is None else self.codec.act_dim

    @property
    def held_out_episodes(self) -> np.ndarray:
        """Ids of the dataset episodes held out of the autoencoder and the flow.

        Only the proxy return predictor trains on them, so their windows are the honest
        place to measure refinement. Empty when nothing was held out.
        ``fit_info["dataset_id"]`` names the dataset the ids refer to (None when fitted
        on :class:`Windows`).
        """
        return np.asarray(self.fit_info.get("held_out_episodes", []), dtype=np.int64)

    # ------------------------------------------------------------------ fitting
    def fit(self, data, logger: RunLogger = NULL_LOGGER, progress_bar: bool = True) -> "TrajectoryRefiner":
        """Train on ``data``: a Minari dataset, id or path, or :class:`Windows`.

        Windows must have the configured length. Raises ``ValueError`` when no
        improving pair exists (with the number of windows, k and margin).
        ``fit_info`` records what the fit made (windows, pairs, losses) and, per stage,
        its wall time (``stage_seconds``) and the peak resident memory at its end
        (``peak_rss_mb``).
        """
        cfg = self.config
        clock = StageClock()
        self.checkpoint_path = None  # the weights about to change are no longer those of any saved folder
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        windows, action_space, dataset = windows_to_fit(data, cfg)
        dataset_id = None if dataset is None else dataset.id
        if len(windows) < 2:
            raise ValueError(f"data: at least 2 windows are needed to fit; got {len(windows)}")
        if cfg.held_out_fraction > 0 and len(np.unique(windows.episode_ids)) >= 2:
            train, held_out = split_episodes(
                windows, cfg.held_out_fraction, seed=cfg.seed if cfg.split_seed is None else cfg.split_seed
            )
        else:
            train, held_out = windows, None
        self.env_id = windows.env_id
        n_windows = len(windows)
        del windows  # the split copied it: keep one copy of the windows through the fit
        stats = NormalizationStats.from_windows(train)
        obs = torch.as_tensor(stats.normalize_observations(train.observations), dtype=torch.float32, device=self.device)
        act = torch.as_tensor(stats.normalize_actions(train.actions), dtype=torch.float32, device=self.device)
        clock.lap("windows")

        # (1) trajectory autoencoder, appendix A.2; latents standardised (appendix A.7)
        autoencoder = TrajectoryAutoencoder(
            cfg.window, train.obs_dim, train.act_dim, cfg.latent_dim, cfg.ae_hidden, cfg.ae_layers
        ).to(self.device)
        ae_loss = train_minibatch(
            autoencoder.parameters(),
            lambda b: autoencoder_loss(autoencoder, obs[b], act[b]),
            len(train),
            cfg.ae_steps,
            cfg.batch_size,
            cfg.lr,
            generator,
            "refiner/ae_loss",
            logger,
            progress_bar,
        )
        autoencoder.eval()
        with torch.no_grad():
            raw_latents = batched(lambda o, a: autoencoder.encode(o, a), obs, act)
        low, high = (
            (None, None)
            if action_space is None
            else (np.asarray(action_space.low, np.float32), np.asarray(action_space.high, np.float32))
        )
        self.codec = LatentCodec(stats, autoencoder, raw_latents.mean(0), raw_latents.std(0).clamp_min(1e-6), low, high)
        latents = (raw_latents - self.codec.latent_mean) / self.codec.latent_std
        clock.lap("autoencoder")

        # (2) local preference pairs, section 2.2 / appendix A.3
        feedback, self.value_function = training_feedback(train, obs, dataset, cfg, generator, logger, progress_bar)
        self.margin = float(cfg.margin) if cfg.margin is not None else 0.1 * float(np.std(feedback))
        z_np = latents.cpu().numpy()
        clock.lap("feedback")
        if cfg.targets == "local":
            pairs = local_pairs(
                z_np,
                feedback,
                train.episode_ids,
                train.start_steps,
                cfg.window,
                cfg.k,
                self.margin,
                index=cfg.neighbour_index,
                seed=cfg.seed,
            )
        else:
            pairs = nonlocal_pairs(feedback, self.margin, seed=cfg.seed)
        if len(pairs) == 0:
            raise ValueError(
                f"no improving pair found among {len(train)} training windows with k={cfg.k} and "
                f"margin={self.margin:.4g} (feedback std {np.std(feedback):.4g}); lower margin or raise k"
            )
        self.pairs = pairs
        clock.lap("pairs")

        # (3) source-conditioned flow matching, Eq. 2
        self.velocity = SourceConditionedVelocity(cfg.latent_dim, cfg.flow_hidden, cfg.flow_layers).to(self.device)
        sources = latents[torch.as_tensor(pairs.sources, device=self.device)]
        targets = latents[torch.as_tensor(pairs.targets, device=self.device)]
        flow_loss = train_minibatch(
            self.velocity.parameters(),
            lambda b: flow_matching_loss(self.velocity, sources[b], targets[b]),
            len(pairs),
            cfg.flow_steps,
            cfg.batch_size,
            cfg.lr,
            generator,
            "refiner/flow_loss",
            logger,
            progress_bar,
        )
        self.velocity.eval()
        clock.lap("flow")

        # (4) return predictor on held-out episodes, for the proxy metric only (appendix A.5)
        predictor_loss = None
        if held_out is not None:
            held_latents = self.codec.encode(*self.codec.normalized_tensors(held_out.observations, held_out.actions))
            self.predictor, predictor_loss = FeedbackModel.fit(
                held_latents,
                held_out.feedback,
                cfg.predictor_steps,
                cfg.batch_size,
                cfg.lr,
                generator,
                "refiner/predictor_loss",
                logger,
                progress_bar,
            )

        clock.lap("predictor")

        # (5) inverse dynamics for tracked execution of refined windows (not in the paper)
        inverse_dynamics_loss = None
        self.inverse_dynamics = None
        if cfg.inverse_dynamics_steps > 0:
            self.inverse_dynamics = InverseDynamics(
                stats.obs_mean, stats.obs_std, stats.act_mean, stats.act_std, low, high, self.device
            )
            end_obs = None
            if train.end_observations is not None:
                end_obs = torch.as_tensor(
                    stats.normalize_observations(train.end_observations), dtype=torch.float32, device=self.device
                )
            inverse_dynamics_loss = self.inverse_dynamics.fit_windows(
                obs,
                act,
                end_obs,
                cfg.inverse_dynamics_steps,
                cfg.batch_size,
                cfg.lr,
                generator,
                logger,
                progress_bar,
            )

        clock.lap("inverse_dynamics")
        self.bank = TrainingBank(z_np, feedback.astype(np.float64), train.observations, train.actions)
        self.fit_info = {
            "dataset_id": dataset_id,
            "held_out_episodes": [] if held_out is None else np.unique(held_out.episode_ids).tolist(),
            "windows": n_windows,
            "train_windows": len(train),
            "held_out_windows": 0 if held_out is None else len(held_out),
            "pairs": len(pairs),
            "pair_fraction": len(pairs) / len(train),
            "margin": self.margin,
            "ae_loss": ae_loss,
            "flow_loss": flow_loss,
            "predictor_loss": predictor_loss,
            "inverse_dynamics_loss": inverse_dynamics_loss,
            "stage_seconds": clock.seconds,
            "peak_rss_mb": clock.peak_rss_mb,
        }
        logger.log({f"refiner/fit_{k}": v for k, v in self.fit_info.items() if isinstance(v, (int, float))})
        return self

    # ---------------------------------------------------------------- inference
    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("this TrajectoryRefiner is not fitted; call fit() or TrajectoryRefiner.load()")

    def predict_feedback(self, observations, actions) -> np.ndarray:
        """The held-out return predictor's feedback estimate P(E(tau)) per window."""
        self._require_fitted()
        if self.predictor is None:
            raise RuntimeError("no return predictor: the refiner was fitted with held_out_fraction=0")
        return self.predictor.predict(
            self.codec.encode(*self.codec.normalized_tensors(*self.codec.check_windows(observations, actions)))
        )

    @torch.no_grad()
    def refine(
        self,
        observations,
        actions=None,
        strength: float = 1.0,
        steps: int | None = None,
        seed: int = 0,
        noise: float = 0.0,
    ) -> RefinementResult:
        """Refine a batch of windows (or one window of shape (H, dim)).

        Args:
            observations: (N, H, obs_dim) states, or a :class:`Windows` (then
                ``actions`` is omitted).
            actions: (N, H, act_dim).
            strength: alpha >= 0; 0 returns the source (exactly with residual
                decoding), 1 the learned target, > 1 extrapolates.
            steps: Euler steps (default ``config.euler_steps``).
            seed: seeds ``noise``.
            noise: sampling: the flow starts from z_src + strength *
                noise * eps, eps ~ N(0, I) drawn with ``seed`` in standardised latent
                units, so several seeds give several samples around the learned
                refinement (candidates to verify); 0 (default) is deterministic, and
                strength 0 still returns the source.
        """
        self._require_fitted()
        observations, actions = window_arrays(observations, actions)
        require_strength(strength)
        steps = self.config.euler_steps if steps is None else steps
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer; got {steps!r}")
        codec = self.codec
        src_obs, src_act = codec.check_windows(observations, actions)
        obs, act = codec.normalized_tensors(src_obs, src_act)
        z_src = codec.encode(obs, act)

        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
        z_start = z_src
        if noise > 0 and strength > 0:
            generator = torch.Generator(device="cpu").manual_seed(int(seed))
            eps = torch.randn(z_src.shape, generator=generator).to(z_src)
            z_start = z_src + strength * noise * eps
        z_ref = batched(lambda z: integrate(self.velocity, z, strength, steps)[0], z_start)
        refined_obs, refined_act = codec.decode_refined(z_ref, z_src, src_obs, src_act, self.config.decode)
        return self.refinement_result(z_src, z_ref, refined_obs, refined_act, act)

    @torch.no_grad()
    def refinement_result(self, z_src, z_ref, refined_obs, refined_act, source_actions) -> RefinementResult:
        """The :class:`RefinementResult` of windows moved from latents ``z_src`` to ``z_ref``.

        ``refined_obs`` / ``refined_act`` are raw arrays, ``source_actions`` the sources'
        normalised actions (a tensor). The predicted gain is the held-out return
        predictor's (None without one). Shared with the families built in this
        refiner's latent space (:mod:`~ctflow_gym.refine.replacement`).
        """
        codec = self.codec
        predicted_gain = None
        if self.predictor is not None:
            # The sources are already encoded (z_src); only the refined windows need encoding.
            refined_latents = codec.encode(*codec.normalized_tensors(*codec.check_windows(refined_obs, refined_act)))
            predicted_gain = self.predictor.predict(refined_latents) - self.predictor.predict(z_src)
        z_src_np, z_ref_np = z_src.cpu().numpy(), z_ref.cpu().numpy()
        return RefinementResult(
            observations=refined_obs.astype(np.float32),
            actions=refined_act.astype(np.float32),
            predicted_gain=predicted_gain,
            action_deviation=codec.action_deviation(refined_act, source_actions),
            source_latents=z_src_np,
            refined_latents=z_ref_np,
            latent_deviation=np.linalg.norm(z_ref_np - z_src_np, axis=1),
        )

    @torch.no_grad()
    def path(
        self, observations, actions, strength: float = 1.0, times=None, steps: int | None = None
    ) -> dict[str, np.ndarray]:
        """The refinement path: windows decoded at ``times`` in [0, strength].

        Returns ``{"times": (T,), "latents": (T, N, d), "observations": (T, N, H, obs_dim),
        "actions": (T, N, H, act_dim)}``; decoding follows ``config.decode``.
        """
        self._require_fitted()
        require_strength(strength)
        times = np.linspace(0.0, strength, 5) if times is None else np.asarray(times, dtype=np.float64)
        if times.ndim != 1 or np.any(times < 0) or np.any(times > strength + 1e-9):
            raise ValueError(f"times must be a 1-D array within [0, strength={strength}]; got {times}")
        codec = self.codec
        src_obs, src_act = codec.check_windows(observations, actions)
        z_src = codec.encode(*codec.normalized_tensors(src_obs, src_act))
        steps = steps or self.config.euler_steps
        _, trace = integrate(self.velocity, z_src, strength, steps, record_at=torch.as_tensor(np.sort(times)))
        decoded = [codec.decode_refined(z, z_src, src_obs, src_act, self.config.decode) for z in trace]
        return {
            "times": np.sort(times),
            "latents": trace.cpu().numpy(),
            "observations": np.stack([o for o, _ in decoded]).astype(np.float32),
            "actions": np.stack([a for _, a in decoded]).astype(np.float32),
        }

    # -------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, include_bank: bool = False) -> Path:
        """Write the refiner to the checkpoint folder ``path`` (:mod:`ctflow_gym.checkpoint`).

        ``include_bank`` also stores the training windows the nearest and random
        improved baselines draw from (:mod:`~ctflow_gym.refine.replacement`; large: N x H x
        (obs + act) floats). Returns the folder and sets ``checkpoint_path`` to it.
        """
        self._require_fitted()
        meta, tensors, extra = checkpoint_contents(self, include_bank)
        saved = save_checkpoint(path, refiner_kind(type(self)), meta, tensors, extra_tensors=extra)
        self.checkpoint_path = str(Path(saved).resolve())
        return saved

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "TrajectoryRefiner":
        """Read a refiner written by :meth:`save`. Only JSON and safetensors are read."""
        meta = read_checkpoint_meta(path, family="refiner", kinds=[refiner_kind(cls)])
        require_meta_keys(path, meta, ("config", "codec", "predictor", "margin", "env_id", "fit_info"))
        config = RefinerConfig.from_dict(meta["config"])
        if device is not None:
            config.device = device
        refiner = cls(config)
        restore_contents(refiner, path, meta)
        refiner.checkpoint_path = str(Path(path).resolve())
        return refiner
