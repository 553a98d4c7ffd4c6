"""Behaviour cloning's one loss: the mean squared error between the policy's actions and the data's."""

from __future__ import annotations

import torch

from agents.bc.networks import DeterministicPolicy


def bc_loss(policy: DeterministicPolicy, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """mean over the batch and the action dimensions of (pi(s) - a)^2 (FTB's ``F.mse_loss``).

    ``observations`` normalised, ``actions`` the data's in [-1, 1] (the env's box mapped linearly).
    """
    return torch.nn.functional.mse_loss(policy(observations), actions)


__all__ = ["bc_loss"]
