"""The losses of counterfactual transport flows, one function each.

Reference: "Counterfactual Transport Flows" (the refiner paper; see the README's
references table). Equation numbers are the paper's.
"""

from __future__ import annotations

import torch

from ctflow_gym.models.trajectory_autoencoder import TrajectoryAutoencoder
from ctflow_gym.models.velocity_field import SourceConditionedVelocity


def autoencoder_loss(
    autoencoder: TrajectoryAutoencoder, observations: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """|| D(E(tau)) - tau ||^2 averaged over window entries (appendix A.2), on normalised windows."""
    flat = autoencoder.flatten(observations, actions)
    return (autoencoder.decoder(autoencoder.encoder(flat)) - flat).pow(2).mean()


def flow_matching_loss(velocity: SourceConditionedVelocity, z_src: torch.Tensor, z_tgt: torch.Tensor) -> torch.Tensor:
    """Eq. 2: E_t || v(z_t, t, z_src) - (z_tgt - z_src) ||^2, z_t = (1 - t) z_src + t z_tgt, t ~ U[0, 1].

    The condition z_src is what makes the learned direction instance-specific.
    """
    t = torch.rand(len(z_src), 1, device=z_src.device, dtype=z_src.dtype)
    z_t = (1.0 - t) * z_src + t * z_tgt
    target_velocity = z_tgt - z_src
    return (velocity(z_t, t, z_src) - target_velocity).pow(2).sum(-1).mean()


def feedback_regression_loss(
    model: torch.nn.Module, inputs: torch.Tensor, standardized_feedback: torch.Tensor
) -> torch.Tensor:
    """Mean squared error of a scalar feedback model on standardised targets.

    Used for the start-value baseline V(s_1) of ``feedback="advantage"`` (inputs: the
    windows' first observations) and for the proxy return predictor P(z) of appendix
    A.5 (inputs: latents of held-out windows).
    """
    return (model(inputs).squeeze(-1) - standardized_feedback).pow(2).mean()
