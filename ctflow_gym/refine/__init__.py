"""Counterfactual transport flows (seed 000): pairs, flow matching, the refiner, evaluation."""

from ctflow_gym.refine.config import METHODS, RefinerConfig
from ctflow_gym.refine.pairs import PreferencePairs, local_pairs, nearest_neighbours, nonlocal_pairs
from ctflow_gym.refine.refiner import RefinementResult, TrajectoryRefiner

__all__ = [
    "METHODS",
    "PreferencePairs",
    "RefinementResult",
    "RefinerConfig",
    "TrajectoryRefiner",
    "local_pairs",
    "nearest_neighbours",
    "nonlocal_pairs",
]
