"""Refiners: the contract every family follows, its registry, and counterfactual transport flows.

- :class:`Refiner` / :class:`RefinementResult` (:mod:`~ctflow_gym.refine.contract`): what
  wrappers, evaluation and the command line rely on;
- :func:`register_refiner` / :func:`load_refiner` (:mod:`~ctflow_gym.refine.registry`):
  families by name and one loader that dispatches on a checkpoint's kind;
- :class:`TrajectoryRefiner`: counterfactual transport flows (autoencoder, local pairs,
  source-conditioned flow matching, the paper's baselines);
- :class:`FTBRefiner`: Flow to Better (:mod:`~ctflow_gym.refine.ftb`), a better window generated
  conditioned on the worse one, and its iterative improvement;
- :class:`NearestImprovedRefiner`, :class:`RandomImprovedRefiner`, :class:`ReconstructionRefiner`,
  :class:`NonLocalRefiner`: the CTF paper's baselines as families (:mod:`~ctflow_gym.refine.replacement`);
- :class:`GaussianPerturbation`: blind search as a family, the baseline to beat;
- :class:`DatasetValueFunction`: V fitted on logged data (verification, bootstrapped feedback);
- :mod:`~ctflow_gym.refine.execution` with :class:`InverseDynamics`: open-loop or tracked execution;
- :mod:`~ctflow_gym.refine.evaluation`: proxy, deviations and the closed-loop truth.
"""

from ctflow_gym.refine.config import RefinerConfig
from ctflow_gym.refine.contract import RefinementResult, Refiner, refiner_checkpoint_path, require_refiner
from ctflow_gym.refine.ensemble import RefinerEnsemble
from ctflow_gym.refine.execution import EXECUTIONS, resolve_execution
from ctflow_gym.refine.ftb import FTBConfig, FTBRefiner
from ctflow_gym.refine.inverse_dynamics import InverseDynamics
from ctflow_gym.refine.neighbours import nearest_neighbours
from ctflow_gym.refine.pairs import PreferencePairs, local_pairs, nonlocal_pairs
from ctflow_gym.refine.perturbation import GaussianPerturbation
from ctflow_gym.refine.refiner import TrajectoryRefiner
from ctflow_gym.refine.registry import REFINERS, load_refiner, refiner_kind, register_refiner
from ctflow_gym.refine.replacement import (
    NearestImprovedRefiner,
    NonLocalRefiner,
    RandomImprovedRefiner,
    ReconstructionRefiner,
)
from ctflow_gym.refine.value_function import DatasetValueFunction, ValueFunctionConfig

__all__ = [
    "EXECUTIONS",
    "DatasetValueFunction",
    "FTBConfig",
    "FTBRefiner",
    "GaussianPerturbation",
    "InverseDynamics",
    "NearestImprovedRefiner",
    "NonLocalRefiner",
    "RandomImprovedRefiner",
    "ReconstructionRefiner",
    "RefinerEnsemble",
    "ValueFunctionConfig",
    "resolve_execution",
    "REFINERS",
    "PreferencePairs",
    "RefinementResult",
    "Refiner",
    "RefinerConfig",
    "TrajectoryRefiner",
    "load_refiner",
    "local_pairs",
    "nearest_neighbours",
    "nonlocal_pairs",
    "refiner_checkpoint_path",
    "refiner_kind",
    "register_refiner",
    "require_refiner",
]
