"""Agents with a stable-baselines3-style API, built on ctflow_gym.

- :class:`GTPAgent` / :class:`GTPConfig`: generative trajectory policies (the GTP
  paper): a flow-map actor trained with consistency + instantaneous flow losses and
  advantage weights from a double-Q critic. Registered as ``"gtp"``.
- :class:`BCAgent` / :class:`BCConfig`: behaviour cloning with a deterministic MLP,
  Flow to Better's policy extraction and the BC / filtered BC ("%BC") baselines
  (``top_fraction``). Registered as ``"bc"``.
- :class:`FQLAgent` / :class:`FQLConfig`: Flow Q-Learning (Park et al., ICML 2025): a
  behaviour flow, a one-step policy distilled from it under a double-Q critic.
  Registered as ``"fql"``.
- :class:`DeFlowAgent` / :class:`DeFlowConfig`: DeFlow (Mu, 2026): FQL's flow and critic
  with a residual refinement kept in a trust region derived from the data's Intrinsic
  Action Variance (:func:`intrinsic_action_variance`). Registered as ``"deflow"``.
- :class:`KeepBest`: an SB3 callback for ``learn`` that keeps the checkpoint best on
  validation episodes in closed loop (model selection where a simulator is at hand).
- :class:`OfflineAgent`: the shared life cycle (learn, predict, evaluate, save, load,
  checkpoints and resume) a new agent subclasses.
- :data:`AGENTS`, :func:`register_agent`, :func:`agent_class`, :func:`load_agent`: the
  registry. A new agent is one module with an ``OfflineAgent`` subclass decorated with
  ``@register_agent("name")``, imported below.

This package imports ``ctflow_gym`` and is never imported by it (only its command line
imports it, lazily).
"""

from agents.base import NonFiniteLossError, OfflineAgent
from agents.bc import FTB_TRAINING_STEPS, BCAgent, BCConfig
from agents.deflow import DeFlowAgent, DeFlowConfig, intrinsic_action_variance
from agents.fql import FQLAgent, FQLConfig
from agents.gtp import PAPER_SETTINGS, GTPAgent, GTPConfig
from agents.registry import AGENTS, agent_class, load_agent, register_agent
from agents.selection import KeepBest

__all__ = [
    "AGENTS",
    "BCAgent",
    "BCConfig",
    "DeFlowAgent",
    "DeFlowConfig",
    "FQLAgent",
    "FQLConfig",
    "FTB_TRAINING_STEPS",
    "GTPAgent",
    "GTPConfig",
    "KeepBest",
    "NonFiniteLossError",
    "OfflineAgent",
    "PAPER_SETTINGS",
    "agent_class",
    "intrinsic_action_variance",
    "load_agent",
    "register_agent",
]
