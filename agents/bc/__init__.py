"""Behaviour cloning (``"bc"``): Flow to Better's policy extraction (ICLR 2024) and the BC / %BC baselines."""

from agents.bc.agent import BCAgent
from agents.bc.config import FTB_TRAINING_STEPS, BCConfig

__all__ = ["BCAgent", "BCConfig", "FTB_TRAINING_STEPS"]
