"""Behaviour cloning's policy: a deterministic MLP squashed into the unit action box."""

from __future__ import annotations

import torch
from torch import nn

from ctflow_gym.models.mlp import MLP


class DeterministicPolicy(nn.Module):
    """pi(s) = tanh(MLP(s)): one action in [-1, 1] per normalised observation.

    The MLP has ``layers`` hidden layers of ``hidden`` ReLU units (FTB: 2 x 256), with
    orthogonal weights and zero biases at initialisation, as FTB's ``DeterministicActor``.
    FTB's code clips the MLP's output to the box; the tanh here keeps the output inside
    without a clip's zero gradient outside it.

    Args:
        obs_dim, act_dim: sizes of observations and of actions.
        hidden, layers: width and number of hidden layers.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.net = MLP(obs_dim, act_dim, hidden, layers, activation=nn.ReLU)
        for module in self.net.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """Actions in [-1, 1] of shape (B, act_dim) for normalised ``observations`` (B, obs_dim)."""
        return torch.tanh(self.net(observations))


__all__ = ["DeterministicPolicy"]
