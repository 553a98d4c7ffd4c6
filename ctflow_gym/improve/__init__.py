"""Verified trajectory improvement: refine a dataset's windows, realise them in MuJoCo, keep what got better.

- :mod:`~ctflow_gym.improve.config`: :class:`ImprovementConfig`;
- :mod:`~ctflow_gym.improve.verification`: refine, realise (open loop / tracked), judge;
- :mod:`~ctflow_gym.improve.writing`: the kept realised windows as a Minari dataset with provenance;
- :mod:`~ctflow_gym.improve.improvement`: :func:`improve_dataset`, the whole step;
- :mod:`~ctflow_gym.improve.distillation`: :func:`distill`, a verified refined policy made
  into a standalone policy (DAgger with it as the expert).

Example::

    from ctflow_gym.improve import improve_dataset
    from ctflow_gym.refine import load_refiner

    report = improve_dataset("ctflow/hopper/medium-replay-v1", load_refiner("refiner/"), "ctflow/hopper/improved-v0")
    print(report.summary())
"""

from ctflow_gym.improve.config import IMPROVE_EXECUTIONS, ImprovementConfig
from ctflow_gym.improve.distillation import (
    DistillationConfig,
    DistillationReport,
    DistillationRound,
    distill,
    teacher_windows,
)
from ctflow_gym.improve.improvement import ImprovementReport, improve_dataset, realise_proposals
from ctflow_gym.improve.verification import VerifiedWindow, verify_proposals, verify_windows
from ctflow_gym.improve.writing import NothingImprovedError

__all__ = [
    "DistillationConfig",
    "DistillationReport",
    "DistillationRound",
    "distill",
    "teacher_windows",
    "IMPROVE_EXECUTIONS",
    "ImprovementConfig",
    "ImprovementReport",
    "NothingImprovedError",
    "VerifiedWindow",
    "improve_dataset",
    "realise_proposals",
    "verify_proposals",
    "verify_windows",
]
