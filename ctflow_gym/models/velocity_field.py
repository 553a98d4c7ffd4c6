"""The source-conditioned velocity field v_theta(z_t, t, z_src) of the CTF paper (section 2.3)."""

from __future__ import annotations

import torch
from torch import nn

from ctflow_gym.models.mlp import MLP, sinusoidal_time_features


class SourceConditionedVelocity(nn.Module):
    """MLP on [z_t, time features of t, z_src] -> velocity in latent space.

    The condition z_src is what makes the direction instance-specific: two windows
    passing through the same z_t at the same t may be sent different ways.
    """

    def __init__(self, latent_dim: int, hidden: int = 256, layers: int = 3, time_features: int = 16):
        super().__init__()
        self.time_features = time_features
        self.net = MLP(2 * latent_dim + time_features, latent_dim, hidden, layers)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, z_src: torch.Tensor) -> torch.Tensor:
        """Velocity at (z_t, t) for sources z_src; t of shape (B,) or (B, 1)."""
        features = sinusoidal_time_features(t.to(z_t.dtype), self.time_features)
        return self.net(torch.cat([z_t, features, z_src], dim=-1))
