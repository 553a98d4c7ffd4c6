"""Flow to Better's preference score model: a per-step reward network r_psi(s, a).

FTB (Zhang et al., ICLR 2024, section 3.2) learns r_psi from preferences between
trajectory segments and scores a whole trajectory by summing per-step terms; the
official code (``models/score_model.py``) sums sigmoid(r_psi) for ranking, which makes
every step count positively. The losses that train it are in
:mod:`ctflow_gym.refine.ftb.losses`.
"""

from __future__ import annotations

import torch
from torch import nn

from ctflow_gym.models.mlp import MLP


class StepReward(nn.Module):
    """MLP on the normalised (s, a) of one step -> a scalar r_psi(s, a).

    Sizes as FTB's (paper Table 4 and code: 3 linear layers, 256 units, ReLU).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.net = MLP(obs_dim + act_dim, 1, hidden, layers, activation=nn.ReLU)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(..., obs_dim), (..., act_dim) -> (...,) per-step rewards."""
        return self.net(torch.cat([observations, actions], dim=-1)).squeeze(-1)

    def window_score(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """S(tau) = sum_t sigmoid(r_psi(s_t, a_t)) over a window's steps (FTB's ranking score); (B, H, .) -> (B,)."""
        return torch.sigmoid(self(observations, actions)).sum(-1)
