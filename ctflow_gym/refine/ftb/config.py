"""Configuration of :class:`ctflow_gym.refine.ftb.FTBRefiner` (Flow to Better)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

SCORE_LOSSES = ("bce_segment", "bradley_terry")


@dataclass
class FTBConfig:
    """Every knob of Flow to Better, with where each default comes from.

    "Paper" is Zhang et al., ICLR 2024; "code" is the official repository
    (github.com/Zzl35/flow-to-better, HEAD 3f473a0). Where they differ the code is
    followed unless said otherwise, since the code produced the paper's numbers.

    Attributes:
        window: length H of the trajectories FTB improves. The paper generates whole
            1000-step episodes (~40 GPU hours); here fixed-length windows, so that the
            generator trains on 2 CPU cores in minutes and every window has a recorded
            start state to be realised from.
        stride: step between window starts when cutting the dataset for blocks and
            generator training.
        n_labels: labelled preference pairs from the scripted teacher (code: 15 pairs
            for D4RL). Many more labels (e.g. 10,000) is the "true returns" setting.
        segment: length of the labelled segments (code: 100, from the human-label files);
            episodes shorter than it give no segment.
        score_loss: ``"bce_segment"`` (code, ``utils/trainer.py``: sigmoid of each
            segment's mean r, a separate binary cross-entropy per segment) or
            ``"bradley_terry"`` (paper Eq. 4: softmax over the summed r of the pair).
        score_hidden, score_layers: the per-step reward MLP (paper Table 4: 256, 3 linear layers).
        score_steps, score_lr, score_warmup, score_batch: Adam on the labelled pairs, lr
            warmed up linearly over ``score_warmup`` steps. Code: 1,000 steps, lr 1e-4,
            warm-up 10,000 (so the lr never passes 1e-5), batch 256 drawn with replacement;
            here the whole labelled set is the batch when it has at most ``score_batch``
            pairs (the same expected loss without the sampling noise, at a fraction of the cost).
        blocks: K, the number of score blocks of preference augmentation (paper: 20 for
            MuJoCo; its most sensitive setting: hopper-medium-replay 74.4 at K=10, 92.8 at 30).
        pairs_per_block: block pairs (k -> k+1) per generator batch and block (code: 3,
            so a batch of 57 pairs at K = 20).
        generator_hidden, generator_blocks: width and depth of the temporal network
            (:class:`~ctflow_gym.models.temporal_velocity.ConditionalTemporalVelocity`).
        generator_steps, generator_lr: flow-matching training (code: DDPM, 500k steps at lr 1e-4;
            here flow matching, which needs far fewer steps, at a higher lr).
        condition_dropout: probability that a training pair drops its condition (code 0.25; paper 0.2).
        guidance: classifier-free guidance weight w (paper and code: 1.2).
        sample_steps: Euler steps of generation (flow matching replaces the 1000-step DDPM chain).
        inpaint_start: hold the generated window's first state at the source's during
            generation, so the plan starts where the simulator is (the code's initial-state
            conditioning exists but is switched off; here it is on by default because every
            improvement is realised from the source's recorded start state).
        top_n: windows the iterative improvement starts from, the best by score (code: the
            top 300 episodes; windows are shorter, so more of them).
        sigma: acceptance ratio score_norm(new) / score_norm(old) > sigma (paper and code: 1.05).
        min_accept: the iterative improvement stops after a round accepting fewer than this
            fraction (code: 0.05).
        max_rounds: cap on improvement rounds (None: the paper's K - i, i the block of the
            worst start window).
        magnitude_limit: the code's validity check: every normalised entry below this (30).
        dynamics_tolerance: our exact validity check: a generated window is valid only if
            its mean one-step dynamics error measured by MuJoCo
            (:func:`ctflow_gym.replay.dynamics_error`) is at most this, in observation units;
            None measures it but does not filter.
        seed: seeds windows, labels, initialisation, batches and sampling.
        device: torch device.
    """

    window: int = 32
    stride: int = 4
    n_labels: int = 15
    segment: int = 100
    score_loss: str = "bce_segment"
    score_hidden: int = 256
    score_layers: int = 2
    score_steps: int = 1000
    score_lr: float = 1e-4
    score_warmup: int = 10_000
    score_batch: int = 256
    blocks: int = 20
    pairs_per_block: int = 8
    generator_hidden: int = 64
    generator_blocks: int = 4
    generator_steps: int = 4000
    generator_lr: float = 3e-4
    condition_dropout: float = 0.25
    guidance: float = 1.2
    sample_steps: int = 20
    inpaint_start: bool = True
    top_n: int = 1000
    sigma: float = 1.05
    min_accept: float = 0.05
    max_rounds: int | None = None
    magnitude_limit: float = 30.0
    dynamics_tolerance: float | None = None
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        positive = (
            "window stride n_labels segment score_hidden score_layers score_steps score_warmup score_batch "
            "pairs_per_block generator_hidden generator_blocks generator_steps sample_steps top_n"
        ).split()
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if isinstance(self.blocks, bool) or not isinstance(self.blocks, (int, np.integer)) or self.blocks < 2:
            raise ValueError(f"blocks (K) must be an integer >= 2; got {self.blocks!r}")
        if self.score_loss not in SCORE_LOSSES:
            raise ValueError(f"score_loss must be one of {SCORE_LOSSES}; got {self.score_loss!r}")
        if not (np.isfinite(self.sigma) and self.sigma > 1.0):
            raise ValueError(f"sigma must be a number > 1 (an improvement must raise the score); got {self.sigma!r}")
        if not 0.0 <= self.condition_dropout < 1.0:
            raise ValueError(f"condition_dropout must be in [0, 1); got {self.condition_dropout!r}")
        if not 0.0 <= self.min_accept <= 1.0:
            raise ValueError(f"min_accept must be in [0, 1]; got {self.min_accept!r}")
        for name in ("score_lr", "generator_lr", "guidance", "magnitude_limit"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number; got {value!r}")
        if self.max_rounds is not None and (not isinstance(self.max_rounds, (int, np.integer)) or self.max_rounds < 1):
            raise ValueError(f"max_rounds must be a positive integer or None; got {self.max_rounds!r}")
        if self.dynamics_tolerance is not None and not (
            np.isfinite(self.dynamics_tolerance) and self.dynamics_tolerance > 0
        ):
            raise ValueError(f"dynamics_tolerance must be a positive number or None; got {self.dynamics_tolerance!r}")

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)
