"""``FTBRefiner``: Flow to Better (Zhang et al., ICLR 2024) as a refiner family.

``fit`` follows the paper's Algorithm 1 on fixed-length windows:
(1) a per-step reward model from scripted-teacher preferences
(:mod:`~ctflow_gym.refine.ftb.preferences`, losses in :mod:`~ctflow_gym.refine.ftb.losses`),
(2) the dataset's windows scored, min-max normalised and cut into K score blocks
(preference augmentation), (3) a conditional generator of a better window given a worse
one, trained on (block k -> block k + 1) pairs with condition dropout: flow matching
with a 1-D temporal network (:class:`~ctflow_gym.models.temporal_velocity.ConditionalTemporalVelocity`)
in place of the paper's DDPM U-Net. ``improve`` is the paper's Algorithm 4, the
iterative improvement (:mod:`~ctflow_gym.refine.ftb.improvement`), from the best windows
or, with ``keep="each"``, from windows tiling the top k episodes (``top_episodes``), the
paper's extraction from whole trajectories on CPU; ``refine`` is one
generation round per window, so that a fitted FTB refiner works wherever a refiner does
(``RefinementWrapper``, ``RefinedPolicy``, ``evaluate_refinement``, ``ctflow improve``).
"""

from __future__ import annotations

import math
import os
import time
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
from ctflow_gym.data.minari_io import load_dataset
from ctflow_gym.data.normalization import NormalizationStats
from ctflow_gym.data.validation import require_strength
from ctflow_gym.data.windows import Windows, iter_episode_arrays, make_windows
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.models.step_reward import StepReward
from ctflow_gym.models.temporal_velocity import ConditionalTemporalVelocity
from ctflow_gym.refine.config import configured
from ctflow_gym.refine.contract import RefinementResult
from ctflow_gym.refine.ftb.config import FTBConfig
from ctflow_gym.refine.ftb.losses import bradley_terry_loss, conditional_flow_matching_loss, segment_bce_loss
from ctflow_gym.refine.ftb.preferences import BlockPairs, score_blocks, scripted_labels
from ctflow_gym.refine.ftb.sampling import generate
from ctflow_gym.refine.registry import refiner_kind, register_refiner
from ctflow_gym.refine.training import train_minibatch

SCORE_LOSS_FUNCTIONS = {"bce_segment": segment_bce_loss, "bradley_terry": bradley_terry_loss}


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by order), NaN for constant input."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@register_refiner
class FTBRefiner:
    """Flow to Better: improve a window by generating a better one conditioned on it.

    Example::

        ftb = FTBRefiner(window=32).fit("ctflow/hopper/medium-replay-v1")
        better = ftb.refine(observations, actions)               # one round per window
        pool = ftb.improve(make_windows(dataset, 32, stride=32))  # the paper's iterative improvement

    Constructor keywords are the fields of :class:`FTBConfig` (or pass ``config=``).
    Follows the :class:`ctflow_gym.refine.Refiner` contract; ``strength`` is the number
    of generation rounds, each conditioned on the previous one's output, a fractional
    part blending toward one more round (0: the source).

    Parts, set by ``fit`` or ``load``: ``stats`` (normalisation), ``reward`` (the
    per-step reward network of the score), ``score_range`` (min and max raw window score
    over the dataset, for min-max normalisation), ``block_edges`` (the best normalised
    score of each block but the last), ``velocity`` (the generator).
    ``inverse_dynamics`` is None (FTB has none: its windows are realised open loop).
    """

    def __init__(self, config: FTBConfig | None = None, **overrides: Any):
        self.config = config = configured(config or FTBConfig(), overrides, "FTBRefiner")
        self.device = torch.device(config.device)
        self.stats: NormalizationStats | None = None
        self.reward: StepReward | None = None
        self.velocity: ConditionalTemporalVelocity | None = None
        self.score_range: tuple[float, float] | None = None
        self.block_edges: list[float] = []
        self.obs_dim: int | None = None
        self.act_dim: int | None = None
        self.env_id: str | None = None
        self.action_bounds: tuple[np.ndarray, np.ndarray] | None = None
        self.inverse_dynamics = None
        self.fit_info: dict[str, Any] = {}
        self.checkpoint_path: str | None = None

    @property
    def window(self) -> int:
        """Window length H."""
        return self.config.window

    @property
    def is_fitted(self) -> bool:
        """Whether ``refine`` and ``improve`` can be called."""
        return self.velocity is not None

    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise ValueError("FTBRefiner is not fitted: call fit(dataset) or FTBRefiner.load(path) first")

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset, progress_bar: bool = True, logger: RunLogger = NULL_LOGGER) -> "FTBRefiner":
        """Fit the score model and the generator on a Minari dataset (id, path or object); returns self."""
        cfg = self.config
        self.checkpoint_path = None
        clock = {"started": time.time()}
        dataset = load_dataset(dataset)
        windows = make_windows(dataset, cfg.window, stride=cfg.stride)
        self.obs_dim, self.act_dim, self.env_id = windows.obs_dim, windows.act_dim, windows.env_id
        if windows.action_space is not None:
            self.action_bounds = (
                np.asarray(windows.action_space.low, np.float32),
                np.asarray(windows.action_space.high, np.float32),
            )
        self.stats = NormalizationStats.from_windows(windows)
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        episodes = [(e.observations, e.actions, e.rewards) for e in iter_episode_arrays(dataset)]
        pairs = scripted_labels(episodes, cfg.n_labels, cfg.segment, rng)
        self.reward = StepReward(self.obs_dim, self.act_dim, cfg.score_hidden, cfg.score_layers).to(self.device)
        score_loss = self._fit_score_model(pairs, generator, progress_bar, logger)
        clock["score_model"] = time.time()
        raw = self._raw_scores(windows.observations, windows.actions)
        self.score_range = (float(raw.min()), float(raw.max()))
        normalised = self._normalise_scores(raw)
        blocks = score_blocks(normalised, cfg.blocks)
        self.block_edges = [float(normalised[blocks == b].max()) for b in range(int(blocks.max()))]
        self.velocity = ConditionalTemporalVelocity(
            self.obs_dim + self.act_dim, cfg.generator_hidden, cfg.generator_blocks
        ).to(self.device)
        generator_loss = self._fit_generator(windows, blocks, generator, progress_bar, logger)
        clock["generator"] = time.time()
        self.fit_info = {
            "dataset_id": dataset.id,
            "windows": len(windows),
            "labelled_pairs": len(pairs.labels),
            "score_loss": score_loss,
            "score_return_rank_correlation": _rank_correlation(normalised, windows.rewards.sum(axis=1)),
            "block_sizes": np.bincount(blocks).tolist(),
            "generator_loss": generator_loss,
            "seconds": {
                "score_model": clock["score_model"] - clock["started"],
                "generator": clock["generator"] - clock["score_model"],
            },
        }
        return self

    def _fit_score_model(self, pairs, generator, progress_bar: bool, logger: RunLogger) -> float:
        """Adam with the code's linear warm-up on the labelled pairs (loss chosen by ``score_loss``)."""
        cfg = self.config
        tensors = [
            torch.as_tensor(a, dtype=torch.float32, device=self.device)
            for a in (
                self.stats.normalize_observations(pairs.first_observations),
                self.stats.normalize_actions(pairs.first_actions),
                self.stats.normalize_observations(pairs.second_observations),
                self.stats.normalize_actions(pairs.second_actions),
            )
        ]
        labels = torch.as_tensor(pairs.labels, device=self.device)
        loss_fn = SCORE_LOSS_FUNCTIONS[cfg.score_loss]

        def loss(batch: torch.Tensor) -> torch.Tensor:
            o1, a1, o2, a2 = (t[batch] for t in tensors)
            return loss_fn(self.reward, (o1, a1), (o2, a2), labels[batch])

        # the code draws 256 pairs with replacement from its 15, which estimates the mean loss over all of them
        # with noise, at 17 times the work: 100-step segments made the score model the slowest stage
        whole = (lambda: torch.arange(len(labels))) if len(labels) <= cfg.score_batch else None
        return train_minibatch(
            self.reward.parameters(), loss, len(labels), cfg.score_steps, cfg.score_batch, cfg.score_lr, generator,
            "ftb/score_loss", logger, progress_bar, sample=whole, max_grad_norm=0.25,  # the code's clip
            lr_lambda=lambda step: min((step + 1) / cfg.score_warmup, 1.0),
        )  # fmt: skip

    def _fit_generator(self, windows: Windows, blocks: np.ndarray, generator, progress_bar, logger) -> float:
        """Flow matching on block pairs (paper Eq. 5), ``pairs_per_block`` pairs per adjacent blocks per batch."""
        cfg = self.config
        data = torch.as_tensor(self._normalised_windows(windows.observations, windows.actions), device=self.device)
        pairs = BlockPairs(blocks, cfg.pairs_per_block)

        def loss(batch: tuple[np.ndarray, np.ndarray]) -> torch.Tensor:
            worse, better = batch
            return conditional_flow_matching_loss(
                self.velocity, data[better], data[worse], cfg.condition_dropout, generator
            )

        return train_minibatch(
            self.velocity.parameters(), loss, len(data), cfg.generator_steps, cfg.pairs_per_block, cfg.generator_lr,
            generator, "ftb/generator_loss", logger, progress_bar, sample=lambda: pairs.sample(generator),
        )  # fmt: skip

    # ------------------------------------------------------------------ scores
    def _normalised_windows(self, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
        obs = self.stats.normalize_observations(np.asarray(observations, np.float32))
        act = self.stats.normalize_actions(np.asarray(actions, np.float32))
        return np.concatenate([obs, act], axis=-1).astype(np.float32)

    def _split(self, normalised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        obs = self.stats.denormalize_observations(normalised[..., : self.obs_dim])
        act = self.stats.denormalize_actions(normalised[..., self.obs_dim :])
        if self.action_bounds is not None:
            act = np.clip(act, *self.action_bounds)
        return obs.astype(np.float32), act.astype(np.float32)

    @torch.no_grad()
    def _raw_scores(self, observations: np.ndarray, actions: np.ndarray, batch: int = 4096) -> np.ndarray:
        normalised = self._normalised_windows(observations, actions)
        out = []
        for lo in range(0, len(normalised), batch):
            chunk = torch.as_tensor(normalised[lo : lo + batch], device=self.device)
            out.append(self.reward.window_score(chunk[..., : self.obs_dim], chunk[..., self.obs_dim :]).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def _normalise_scores(self, raw: np.ndarray) -> np.ndarray:
        low, high = self.score_range
        return (raw - low) / max(high - low, 1e-12)

    @torch.no_grad()
    def step_scores(self, observations, actions) -> np.ndarray:
        """Per-step terms sigmoid(r_psi(s_t, a_t)) of windows (N, H, .) -> (N, H); their sum is the raw score."""
        self._require_fitted()
        normalised = torch.as_tensor(self._normalised_windows(np.asarray(observations), np.asarray(actions)))
        normalised = normalised.to(self.device)
        return (
            torch.sigmoid(self.reward(normalised[..., : self.obs_dim], normalised[..., self.obs_dim :])).cpu().numpy()
        )

    def block_of(self, score: float) -> int:
        """The 0-based score block a normalised score falls in (K - 1 above every edge)."""
        return int(np.searchsorted(np.asarray(self.block_edges), score, side="left"))

    def scores(self, observations, actions) -> np.ndarray:
        """Min-max normalised FTB scores of windows (N, H, .): 0 the dataset's worst window, 1 its best."""
        self._require_fitted()
        return self._normalise_scores(self._raw_scores(np.asarray(observations), np.asarray(actions)))

    # ------------------------------------------------------------------ generation
    def generate(self, observations: np.ndarray, actions: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """One better window per window (N, H, .) by guided generation; returns (observations, actions)."""
        self._require_fitted()
        normalised = self._normalised_windows(observations, actions)
        return self._split(self._generate_normalised(normalised, seed))

    def _generate_normalised(self, normalised: np.ndarray, seed: int, batch: int = 1024) -> np.ndarray:
        cfg = self.config
        generator = torch.Generator().manual_seed(int(seed))
        out = []
        for lo in range(0, len(normalised), batch):
            condition = torch.as_tensor(normalised[lo : lo + batch], device=self.device)
            start = condition[:, 0, : self.obs_dim] if cfg.inpaint_start else None
            sample = generate(self.velocity, condition, cfg.guidance, cfg.sample_steps, generator, start)
            out.append(sample.cpu().numpy())
        return np.concatenate(out) if out else normalised.copy()

    def refine(
        self, observations, actions=None, strength: float = 1.0, seed: int = 0, **options: Any
    ) -> RefinementResult:
        """``floor(strength)`` generation rounds per window, then a blend of the fraction left toward one more.

        Takes (N, H, .) arrays or one window (H, .). ``predicted_gain`` is the change in
        normalised FTB score. Unknown ``options`` raise ``TypeError``.
        """
        self._require_fitted()
        if options:
            raise TypeError(f"FTBRefiner.refine got unknown options {sorted(options)}")
        require_strength(strength)
        obs = np.asarray(observations, np.float32)
        act = np.asarray(actions, np.float32)
        single = obs.ndim == 2
        if single:
            obs, act = obs[None], act[None]
        if obs.shape[1:] != (self.window, self.obs_dim) or act.shape[1:] != (self.window, self.act_dim):
            raise ValueError(
                f"observations and actions must be (N, {self.window}, {self.obs_dim}) and (N, {self.window}, "
                f"{self.act_dim}); got {obs.shape} and {act.shape}"
            )
        current = self._normalised_windows(obs, act)
        rounds, fraction = int(math.floor(strength)), strength - math.floor(strength)
        for r in range(rounds):
            current = self._generate_normalised(current, seed + r)
        if fraction > 0:
            current = current + fraction * (self._generate_normalised(current, seed + rounds) - current)
        refined_obs, refined_act = self._split(current) if strength > 0 else (obs, act)
        gain = self.scores(refined_obs, refined_act) - self.scores(obs, act)
        deviation = np.sqrt(np.mean(np.sum((refined_act - act) ** 2, axis=-1), axis=-1))
        result = RefinementResult(refined_obs, refined_act, predicted_gain=gain, action_deviation=deviation)
        if single:
            return RefinementResult(*(None if v is None else v[0] for v in result.__dict__.values()))
        return result

    def improve(
        self,
        windows: Windows,
        seed: int = 0,
        progress_bar: bool = True,
        validity_workers: int = 1,
        keep: str = "top",
    ):
        """The paper's iterative improvement (Algorithm 4) from ``windows``.

        ``keep="top"`` starts from the best ``top_n`` of ``windows`` and keeps the pool's
        ``top_n``; ``keep="each"`` starts from every window and keeps each one's final
        version (for windows that tile whole episodes: ``make_windows(dataset, window,
        stride=window, episodes=refiner.top_episodes(dataset, k))``). Returns
        :class:`~ctflow_gym.refine.ftb.improvement.ImprovedPool`; see
        :func:`~ctflow_gym.refine.ftb.improvement.iterative_improvement`.
        """
        from ctflow_gym.refine.ftb.improvement import iterative_improvement

        self._require_fitted()
        return iterative_improvement(
            self, windows, seed=seed, progress_bar=progress_bar, workers=validity_workers, keep=keep
        )

    def top_episodes(self, dataset, k: int) -> np.ndarray:
        """Ids of the ``k`` episodes of ``dataset`` with the highest FTB score, best first.

        An episode's score is the paper's trajectory score, sum over its steps of
        sigmoid(r_psi(s, a)) (Eq. 3), over the whole episode (so a longer episode of the same
        per-step quality scores higher, as in the paper's 1000-step trajectories). The paper
        starts its extraction from the top k = 300 trajectories of a D4RL dataset
        (hopper-medium-replay holds 2041 episodes); choose ``k`` for the dataset at hand.
        Raises ``ValueError`` naming ``k`` when it is not a positive integer or exceeds the
        dataset's episodes.
        """
        self._require_fitted()
        dataset = load_dataset(dataset)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= dataset.total_episodes:
            raise ValueError(f"k must be an integer in [1, {dataset.total_episodes}] (the episodes); got {k!r}")
        ids, totals = [], []
        for episode in iter_episode_arrays(dataset):
            steps = len(episode.actions)
            terms = self.step_scores(episode.observations[None, :steps], episode.actions[None])
            ids.append(episode.episode_id)
            totals.append(float(terms.sum(dtype=np.float64)))
        order = np.argsort(-np.asarray(totals), kind="stable")[:k]
        return np.asarray(ids, dtype=np.int64)[order]

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the refiner to the checkpoint folder ``path``; returns it and sets ``checkpoint_path``."""
        self._require_fitted()
        meta = {
            "config": self.config.to_dict(),
            "stats": self.stats.to_dict(),
            "score_range": list(self.score_range),
            "block_edges": self.block_edges,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "env_id": self.env_id,
            "action_bounds": None if self.action_bounds is None else [b.tolist() for b in self.action_bounds],
            "fit_info": self.fit_info,
        }
        tensors = module_tensors({"reward": self.reward, "velocity": self.velocity})
        saved = save_checkpoint(path, refiner_kind(type(self)), meta, tensors)
        self.checkpoint_path = str(Path(saved).resolve())
        return saved

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "FTBRefiner":
        """Read a refiner written by :meth:`save` (JSON and safetensors only)."""
        meta = read_checkpoint_meta(path, family="refiner", kinds=[refiner_kind(cls)])
        require_meta_keys(path, meta, ("config", "stats", "score_range", "obs_dim", "act_dim", "env_id", "fit_info"))
        config = FTBConfig(**meta["config"])
        if device is not None:
            config.device = device
        refiner = cls(config)
        refiner.stats = NormalizationStats.from_dict(meta["stats"])
        refiner.obs_dim, refiner.act_dim, refiner.env_id = meta["obs_dim"], meta["act_dim"], meta["env_id"]
        refiner.score_range = tuple(meta["score_range"])
        refiner.block_edges = list(meta.get("block_edges", []))
        bounds = meta.get("action_bounds")
        refiner.action_bounds = None if bounds is None else tuple(np.asarray(b, np.float32) for b in bounds)
        refiner.reward = StepReward(refiner.obs_dim, refiner.act_dim, config.score_hidden, config.score_layers)
        refiner.velocity = ConditionalTemporalVelocity(
            refiner.obs_dim + refiner.act_dim, config.generator_hidden, config.generator_blocks
        )
        modules = {"reward": refiner.reward, "velocity": refiner.velocity}
        load_module_tensors(modules, load_tensors(path, device=refiner.device), path)
        for module in modules.values():
            module.to(refiner.device).eval()
        refiner.fit_info = meta["fit_info"]
        refiner.checkpoint_path = str(Path(path).resolve())
        return refiner
