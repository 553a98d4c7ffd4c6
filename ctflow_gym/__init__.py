"""ctflow_gym: offline trajectory refinement and flow-based agents for Gymnasium envs.

The main names::

    from ctflow_gym import TrajectoryRefiner, FTBRefiner, RefinementWrapper, RefinedPolicy, load_refiner

The data layer is :mod:`ctflow_gym.data`, replay in MuJoCo :mod:`ctflow_gym.replay`,
refiners :mod:`ctflow_gym.refine`, verified dataset improvement
:mod:`ctflow_gym.improve`, env integration :mod:`ctflow_gym.wrappers`.
"""

import ctflow_gym.envs  # noqa: F401  (registers the package's envs with gymnasium)
from ctflow_gym.refine import (
    DatasetValueFunction,
    FTBRefiner,
    GaussianPerturbation,
    RefinementResult,
    Refiner,
    RefinerConfig,
    RefinerEnsemble,
    TrajectoryRefiner,
    load_refiner,
    register_refiner,
)
from ctflow_gym.wrappers import RefinedPolicy, RefinementWrapper

__version__ = "0.1.0"

__all__ = [
    "DatasetValueFunction",
    "FTBRefiner",
    "GaussianPerturbation",
    "RefinedPolicy",
    "RefinementResult",
    "RefinementWrapper",
    "Refiner",
    "RefinerEnsemble",
    "RefinerConfig",
    "TrajectoryRefiner",
    "__version__",
    "load_refiner",
    "register_refiner",
]
