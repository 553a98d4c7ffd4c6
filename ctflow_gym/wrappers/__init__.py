"""Environment integration: the RefinementWrapper, RefinedPolicy, window verification and exact MuJoCo snapshots."""

from ctflow_gym.wrappers.refined_policy import RefinedPolicy
from ctflow_gym.wrappers.refinement_wrapper import RefinementTotals, RefinementWrapper
from ctflow_gym.wrappers.snapshot import EnvSnapshot, capture_snapshot, restore_snapshot
from ctflow_gym.wrappers.verification import sb3_value_function, window_score

__all__ = ["EnvSnapshot", "RefinedPolicy", "RefinementTotals", "RefinementWrapper", "capture_snapshot", "restore_snapshot", "sb3_value_function", "window_score"]
