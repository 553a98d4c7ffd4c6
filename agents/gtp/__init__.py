"""GTP (the GTP paper, arXiv 2510.11499): config, schedule, networks, losses and the agent (``"gtp"``)."""

from agents.gtp.agent import GTPAgent
from agents.gtp.config import PAPER_SETTINGS, GTPConfig

__all__ = ["GTPAgent", "GTPConfig", "PAPER_SETTINGS"]
