"""DeFlow (``"deflow"``): FQL's behaviour flow and critic with a residual refinement in a data-derived trust region."""

from agents.deflow.action_variance import intrinsic_action_variance
from agents.deflow.agent import DeFlowAgent
from agents.deflow.config import DeFlowConfig

__all__ = ["DeFlowAgent", "DeFlowConfig", "intrinsic_action_variance"]
