"""Configuration of :func:`ctflow_gym.improve.improve_dataset`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ctflow_gym.workers import require_workers

IMPROVE_EXECUTIONS = ("best", "open_loop", "tracked")


@dataclass
class ImprovementConfig:
    """How a dataset's windows are improved, realised and kept.

    Attributes:
        strength: refinement strength passed to ``refiner.refine`` (TrajectoryRefiner's
            alpha: 0 is the source, 1 the locally improved window).
        stride: steps between the starts of the windows cut from each episode; None
            means the refiner's window length (windows tile each episode without
            overlapping, so each source step is improved at most once).
        execution: how a refined window is realised: ``"open_loop"`` (its actions as
            they are), ``"tracked"`` (the refiner's inverse-dynamics model steers toward
            the planned states; needs one), or ``"best"`` (the default): both where the
            refiner can track, and the one that realises the higher score is kept, as
            the improve-then-extract issue asks ("whichever realises more").
        min_gain: a realised window is kept only if its score beats the source's by more
            than this (feedback units; 0 keeps every strict improvement).
        value_tail: score windows by return + gamma^H V(end state) with the refiner's
            own dataset value function (``refiner.value_function``, fitted with
            ``feedback="bootstrapped_advantage"``) when it has one; the return alone
            otherwise. The tail charges a window for the state it leaves behind (on
            Hopper a window can buy speed with a posture that falls later).
        gamma: discount of the value tail.
        batch_size: windows refined and realised per batch (memory, progress updates).
        include_source: write the source dataset's episodes before the improved windows
            (an augmented dataset for agents that learn from both); False writes the
            improved windows only (what Flow to Better extracts its policy from).
        seed: seed passed to ``refiner.refine`` where the refiner samples.
        workers: processes for the replays (:mod:`ctflow_gym.workers`); same results.
    """

    strength: float = 1.0
    stride: int | None = None
    execution: str = "best"
    min_gain: float = 0.0
    value_tail: bool = True
    gamma: float = 0.99
    batch_size: int = 512
    include_source: bool = False
    seed: int = 0
    workers: int = 1

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if not np.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"strength must be a finite number >= 0; got {self.strength!r}")
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
        require_workers(self.workers)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict (recorded in the improved dataset)."""
        return asdict(self)
