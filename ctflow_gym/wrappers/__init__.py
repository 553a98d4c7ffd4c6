"""Environment integration: the RefinementWrapper and exact MuJoCo snapshots."""

from ctflow_gym.wrappers.refined_policy import RefinedPolicy, sb3_value_function
from ctflow_gym.wrappers.refinement_wrapper import RefinementTotals, RefinementWrapper
from ctflow_gym.wrappers.snapshot import EnvSnapshot, capture_snapshot, restore_snapshot

__all__ = ["EnvSnapshot", "RefinedPolicy", "RefinementTotals", "RefinementWrapper", "capture_snapshot", "restore_snapshot", "sb3_value_function"]
