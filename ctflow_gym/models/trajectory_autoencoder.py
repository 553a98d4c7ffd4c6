"""Trajectory autoencoder of counterfactual transport flows (appendix A.2): MLPs on flattened windows.

Its training loss is :func:`ctflow_gym.refine.losses.autoencoder_loss`.
"""

from __future__ import annotations

import torch
from torch import nn

from ctflow_gym.models.mlp import MLP


class TrajectoryAutoencoder(nn.Module):
    """E(tau) -> z in R^latent_dim and D(z) -> tau, on normalised flattened windows.

    A window of H steps of (state, action) is flattened to H * (obs_dim + act_dim)
    numbers, states first then actions (see :meth:`flatten`).
    """

    def __init__(
        self, window: int, obs_dim: int, act_dim: int, latent_dim: int = 16, hidden: int = 512, layers: int = 2
    ):
        super().__init__()
        self.window, self.obs_dim, self.act_dim = window, obs_dim, act_dim
        flat = window * (obs_dim + act_dim)
        self.encoder = MLP(flat, latent_dim, hidden, layers)
        self.decoder = MLP(latent_dim, flat, hidden, layers)

    def flatten(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B, H, obs_dim), (B, H, act_dim) -> (B, H * (obs_dim + act_dim))."""
        return torch.cat([observations.flatten(1), actions.flatten(1)], dim=1)

    def unflatten(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse of :meth:`flatten`."""
        split = self.window * self.obs_dim
        observations = flat[:, :split].reshape(-1, self.window, self.obs_dim)
        actions = flat[:, split:].reshape(-1, self.window, self.act_dim)
        return observations, actions

    def encode(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """E(tau): normalised window -> latent."""
        return self.encoder(self.flatten(observations, actions))

    def decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """D(z): latent -> normalised (observations, actions)."""
        return self.unflatten(self.decoder(latents))
