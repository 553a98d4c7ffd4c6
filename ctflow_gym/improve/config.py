"""Configuration of :func:`ctflow_gym.improve.improve_dataset`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ctflow_gym.data.validation import require_int
from ctflow_gym.workers import require_workers

IMPROVE_EXECUTIONS = ("best", "open_loop", "tracked")
SOURCE_STEPS = ("none", "all", "unimproved")


@dataclass
class ImprovementConfig:
    """How a dataset's windows are improved, realised and kept.

    Attributes:
        strength: refinement strength passed to ``refiner.refine`` (TrajectoryRefiner's
            alpha: 0 is the source, 1 the locally improved window), or a tuple of
            strengths, each making its own proposals: the realised best of all of them
            is the candidate (larger strengths extrapolate past the local target; the
            verification keeps only what really gained, so trying several costs replays,
            not correctness).
        samples: proposals per strength: the first as ``refine`` gives it, the others
            with seeds ``seed + 1``, ``seed + 2``, ... and, where ``refine`` takes a
            ``noise`` argument (TrajectoryRefiner), sampled with ``noise``; refiners that
            sample by seed alone (FTBRefiner's generator, GaussianPerturbation) get new
            seeds only, and a deterministic refiner repeats its first proposal.
        noise: ``refine``'s sampling noise for the extra samples (TrajectoryRefiner: the
            flow starts from z_src + strength * noise * eps).
        continuation: steps of the policy passed to :func:`improve_dataset` that follow
            each window (source and improved) in its score; 0 (default) scores the
            window alone. See :mod:`ctflow_gym.improve.verification`: with the policy the
            improved data will be extracted for (its own rollouts improved), a kept window
            is a verified improvement *for that policy*, not just a faster 16 steps.
        commit_steps: steps of each proposal that are realised (its first ones) before the
            ``continuation`` takes over, as a receding-horizon controller plans H steps and
            commits k; None (the default) realises the whole window. The source is judged
            over the same first steps, so with ``commit_steps=1`` and a continuation a kept
            window is exactly a one-step policy improvement, Q_pi(s, a') > Q_pi(s, a), which a
            reactive policy extracted by BC can represent; a whole kept window is a better
            *sequence*, which it need not (the Results page's "A policy improved from its own
            rollouts"). The kept spans written (and cut out with ``source_steps="unimproved"``)
            are these first steps; set ``stride`` to improve more of each episode.
        stride: steps between the starts of the windows cut from each episode; None
            means the refiner's window length (windows tile each episode without
            overlapping, so each source step is improved at most once).
        execution: how a refined window is realised: ``"open_loop"`` (its actions as
            they are), ``"tracked"`` (the refiner's inverse-dynamics model steers toward
            the planned states; needs one), or ``"best"`` (the default): both where the
            refiner can track, and the one that realises the higher score is kept, as
            the improve-then-extract issue asks ("whichever realises more"). For a dataset a
            policy will be cloned from, ``"open_loop"`` is the safer choice: a tracked
            window's actions are corrected toward planned states and clipped, so they move
            further from the data's (and to the box's edge more often) than they gain; see the
            Results page (Improve, then extract) for what BC made of each.
        min_gain: a realised window is kept only if its score beats the source's by more
            than this (feedback units; 0 keeps every strict improvement).
        value_tail: score windows by return + gamma^H V(end state) with the refiner's
            own dataset value function (``refiner.value_function``, fitted with
            ``feedback="bootstrapped_advantage"``) when it has one; the return alone
            otherwise. The tail charges a window for the state it leaves behind (on
            Hopper a window can buy speed with a posture that falls later).
        gamma: discount of the value tail.
        batch_size: windows refined and realised per batch (memory, progress updates).
        source_steps: which of the source dataset's steps are written before the improved
            windows. ``"none"`` (the default): the improved windows only (what Flow to
            Better extracts its policy from). ``"all"``: every source episode, then the
            windows (augmentation: a state whose window was improved appears twice, with
            the old and the new actions). ``"unimproved"``: the source with each kept
            window *in place of* the span it improved: the source episodes' other steps,
            cut into fragments at the improved spans (each fragment an episode, truncated
            where a span was cut out, terminated where the source was), then the
            windows. The last is what a policy is extracted from when the improvement
            should reach it undiluted: every state keeps one action, the better one
            where there is one (BC on ``"all"`` regresses to the mean of the two).
        seed: seed passed to ``refiner.refine`` where the refiner samples.
        workers: processes for the replays (:mod:`ctflow_gym.workers`); same results.
    """

    strength: float | tuple[float, ...] = 1.0
    samples: int = 1
    noise: float = 1.0
    continuation: int = 0
    commit_steps: int | None = None
    stride: int | None = None
    execution: str = "best"
    min_gain: float = 0.0
    value_tail: bool = True
    gamma: float = 0.99
    batch_size: int = 512
    source_steps: str = "none"
    seed: int = 0
    workers: int = 1

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        strengths = self._strength_values()
        if not strengths or any(
            isinstance(s, bool) or not isinstance(s, (int, float, np.number)) or not np.isfinite(s) or s < 0
            for s in strengths
        ):
            raise ValueError(f"strength must be a number >= 0 or a non-empty tuple of them; got {self.strength!r}")
        require_int(self.samples, "samples")
        require_int(self.continuation, "continuation", least=0)
        if not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(f"noise must be a finite number >= 0; got {self.noise!r}")
        if self.commit_steps is not None:
            require_int(self.commit_steps, "commit_steps")
        if self.stride is not None and (not isinstance(self.stride, (int, np.integer)) or self.stride < 1):
            raise ValueError(f"stride must be a positive integer or None; got {self.stride!r}")
        if self.execution not in IMPROVE_EXECUTIONS:
            raise ValueError(f"execution must be one of {IMPROVE_EXECUTIONS}; got {self.execution!r}")
        if not np.isfinite(self.min_gain) or self.min_gain < 0:
            raise ValueError(f"min_gain must be a finite number >= 0; got {self.min_gain!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1]; got {self.gamma!r}")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {self.batch_size!r}")
        if self.source_steps not in SOURCE_STEPS:
            raise ValueError(f"source_steps must be one of {SOURCE_STEPS}; got {self.source_steps!r}")
        require_workers(self.workers)

    def strengths(self) -> tuple[float, ...]:
        """``strength`` as a tuple of floats (one strength or several)."""
        return tuple(float(s) for s in self._strength_values())

    def _strength_values(self) -> tuple:
        return tuple(self.strength) if isinstance(self.strength, (tuple, list)) else (self.strength,)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (recorded in the improved dataset)."""
        return asdict(self)
