"""ctflow_gym: offline trajectory refinement and flow-based agents for Gymnasium envs.

``from ctflow_gym import TrajectoryRefiner`` is the main entry point; the data layer
is :mod:`ctflow_gym.data`.
"""

from ctflow_gym.refine import RefinementResult, RefinerConfig, TrajectoryRefiner

__version__ = "0.1.0"

__all__ = ["RefinementResult", "RefinerConfig", "TrajectoryRefiner", "__version__"]
