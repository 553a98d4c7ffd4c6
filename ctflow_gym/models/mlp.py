"""The multilayer perceptron every model here is built from, and time features."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Sequential):
    """``in_dim -> hidden x layers -> out_dim`` with SiLU (or ReLU) activations and optional LayerNorm."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int = 256,
        layers: int = 2,
        layer_norm: bool = False,
        activation: type[nn.Module] = nn.SiLU,
    ):
        if layers < 1:
            raise ValueError(f"layers must be >= 1; got {layers}")
        modules: list[nn.Module] = []
        width = in_dim
        for _ in range(layers):
            modules.append(nn.Linear(width, hidden))
            if layer_norm:
                modules.append(nn.LayerNorm(hidden))
            modules.append(activation())
            width = hidden
        modules.append(nn.Linear(width, out_dim))
        super().__init__(*modules)


def sinusoidal_time_features(t: torch.Tensor, dim: int = 16) -> torch.Tensor:
    """Map times ``t`` of shape (B,) or (B, 1) to (B, dim) sin/cos features.

    Frequencies are spaced geometrically from 1 to 100, fit for t in [0, ~1.5].
    """
    t = t.reshape(-1, 1)
    half = dim // 2
    frequencies = torch.exp(torch.linspace(0.0, math.log(100.0), half, device=t.device, dtype=t.dtype))
    angles = t * frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
