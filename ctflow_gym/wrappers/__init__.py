"""Environment integration: ``RefinementWrapper`` (refine any policy's rollout, check it by
replay), ``RefinedPolicy`` (a refiner attached after any policy) and
``RefinementStepData`` (record a wrapped env's episodes with Minari's ``DataCollector``) and
``select_refiners`` (keep the fitted refiners that help one policy on validation episodes).

Replay itself (snapshots, stepping, window scores, value functions) lives in
:mod:`ctflow_gym.replay`; its public names are re-exported here for convenience.
"""

from ctflow_gym.replay import EnvSnapshot, capture_snapshot, restore_snapshot, sb3_value_function, window_score
from ctflow_gym.wrappers.episodes import EpisodeRecord, record_episodes, run_episodes
from ctflow_gym.wrappers.recording import COMMITTED_INFO_KEY, RefinementStepData
from ctflow_gym.wrappers.refined_policy import RefinedPolicy
from ctflow_gym.wrappers.refinement_wrapper import RefinementTotals, RefinementWrapper
from ctflow_gym.wrappers.selection import RefinerSelection, RefinerValidation, select_refiners

__all__ = [
    "COMMITTED_INFO_KEY",
    "EnvSnapshot",
    "EpisodeRecord",
    "RefinedPolicy",
    "RefinementStepData",
    "RefinementTotals",
    "RefinementWrapper",
    "RefinerSelection",
    "RefinerValidation",
    "capture_snapshot",
    "record_episodes",
    "restore_snapshot",
    "run_episodes",
    "select_refiners",
    "sb3_value_function",
    "window_score",
]
