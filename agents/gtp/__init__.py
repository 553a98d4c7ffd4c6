"""GTP (seed 003): config, noise schedule, losses and the agent."""

from agents.gtp.agent import GTPAgent
from agents.gtp.config import PAPER_SETTINGS, GTPConfig

__all__ = ["GTPAgent", "GTPConfig", "PAPER_SETTINGS"]
