"""Flow Q-Learning (``"fql"``): a behaviour flow, a one-step policy distilled from it under a critic (ICML 2025)."""

from agents.fql.agent import FQLAgent
from agents.fql.config import FQLConfig

__all__ = ["FQLAgent", "FQLConfig"]
