"""A condition-aware velocity field over whole windows: 1-D temporal convolutions.

Flow to Better's generator is a DDPM temporal U-Net over 1000-step episodes that
attends to the worse trajectory (official code ``models/temporal.py``); ~40 GPU hours
are out of reach on 2 CPU cores. This network keeps what matters for the method (a
field over the whole (state, action) sequence, built from FTB's own blocks:
Conv1d(k=5)-GroupNorm-Mish with the time embedding added, conditioned on the worse
window at every block) at a size that trains in minutes. The condition is aligned in
time with the generated window, so it enters as extra input channels (not by
attention), with a mask channel saying whether it is present (classifier-free
guidance trains with the condition dropped).
"""

from __future__ import annotations

import torch
from torch import nn

from ctflow_gym.models.mlp import sinusoidal_time_features


class _ResidualTemporalBlock(nn.Module):
    """Two Conv1d(k=5)-GroupNorm-Mish layers, the time embedding added after the first (FTB/Diffuser's block)."""

    def __init__(self, channels: int, time_dim: int, groups: int = 8):
        super().__init__()
        self.first = nn.Sequential(
            nn.Conv1d(channels, channels, 5, padding=2), nn.GroupNorm(groups, channels), nn.Mish()
        )
        self.second = nn.Sequential(
            nn.Conv1d(channels, channels, 5, padding=2), nn.GroupNorm(groups, channels), nn.Mish()
        )
        self.time = nn.Sequential(nn.Mish(), nn.Linear(time_dim, channels))

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        h = self.first(x) + self.time(time_embedding).unsqueeze(-1)
        return x + self.second(h)


class ConditionalTemporalVelocity(nn.Module):
    """v(x_t, t | c) for windows x of shape (B, H, dim), conditioned on windows c of the same shape.

    ``c=None`` (or a batch whose ``has_condition`` is 0) is the unconditional field of
    classifier-free guidance.
    """

    def __init__(self, dim: int, hidden: int = 64, blocks: int = 4, time_features: int = 32):
        super().__init__()
        self.dim = dim
        self.time_features = time_features
        self.time_mlp = nn.Sequential(nn.Linear(time_features, 4 * hidden), nn.Mish(), nn.Linear(4 * hidden, hidden))
        self.inp = nn.Conv1d(2 * dim + 1, hidden, 5, padding=2)
        self.blocks = nn.ModuleList(_ResidualTemporalBlock(hidden, hidden) for _ in range(blocks))
        self.out = nn.Conv1d(hidden, dim, 1)

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        condition: torch.Tensor | None,
        has_condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Velocity (B, H, dim) at windows ``x_t`` (B, H, dim), times ``t`` (B,), for ``condition`` (B, H, dim)."""
        batch, horizon, _ = x_t.shape
        if condition is None:
            condition = torch.zeros_like(x_t)
            has_condition = torch.zeros(batch, device=x_t.device, dtype=x_t.dtype)
        elif has_condition is None:
            has_condition = torch.ones(batch, device=x_t.device, dtype=x_t.dtype)
        mask = has_condition.to(x_t.dtype).view(batch, 1, 1)
        inputs = torch.cat([x_t, condition * mask, mask.expand(batch, horizon, 1)], dim=-1).transpose(1, 2)
        embedding = self.time_mlp(sinusoidal_time_features(t.to(x_t.dtype), self.time_features))
        h = self.inp(inputs)
        for block in self.blocks:
            h = block(h, embedding)
        return self.out(h).transpose(1, 2)
