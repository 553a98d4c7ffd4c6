"""Agents with a stable-baselines3-style API, built on ctflow_gym.

- :class:`GTPAgent` / :class:`GTPConfig`: generative trajectory policies (seeds 001 and
  003): a flow-map actor trained with consistency + instantaneous flow losses and
  advantage weights from a double-Q critic.
- :class:`OfflineAgent`: the shared life cycle (learn, predict, evaluate, save, load,
  checkpoints and resume) a new agent subclasses.

This package imports ``ctflow_gym`` and is never imported by it.
"""

from agents.base import NonFiniteLossError, OfflineAgent
from agents.gtp import PAPER_SETTINGS, GTPAgent, GTPConfig

__all__ = ["GTPAgent", "GTPConfig", "NonFiniteLossError", "OfflineAgent", "PAPER_SETTINGS"]
