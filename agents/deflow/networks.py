"""DeFlow's networks beyond FQL's: the refinement f_phi(s, a) (an FQL actor field without time) and lambda."""

from __future__ import annotations

import torch
from torch import nn


class LagrangeMultiplier(nn.Module):
    """lambda = exp(log_lambda), one learned scalar (the code's ``Scalar`` module holding log alpha).

    Args:
        initial_log_value: log lambda at the start (DeFlow's code: 1.0).
    """

    def __init__(self, initial_log_value: float = 1.0):
        super().__init__()
        self.log_value = nn.Parameter(torch.tensor([float(initial_log_value)]))

    def forward(self) -> torch.Tensor:
        """lambda, shape (1,)."""
        return self.log_value.exp()


__all__ = ["LagrangeMultiplier"]
