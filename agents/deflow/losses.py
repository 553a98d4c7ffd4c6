"""DeFlow's losses, one function each, as in the DeFlow paper (its method section) and ``agents/deflow.py``.

The policy is a = sg[mu_psi(s, z)] + f_phi(s, sg[mu_psi(s, z)]): the behaviour flow's
action (FQL's flow, trained by FQL's :func:`~agents.fql.losses.flow_matching_loss`)
shifted by a residual. The residual network is trained by :func:`refinement_loss`
inside a trust region mean(delta_a^2) <= delta kept by a Lagrange multiplier lambda,
which :func:`multiplier_loss` adjusts (SAC's temperature rule). Both are summed with the
flow's and the critic's losses and minimised by one Adam, as in the code; the critic and
the flow get no gradient from them (the critic is evaluated with detached weights,
:func:`~agents.fql.losses.frozen_q_values`; the base action is computed without gradient).
"""

from __future__ import annotations

import torch

from agents.fql.losses import q_loss
from agents.fql.networks import QEnsemble


def residual_square_mean(residual: torch.Tensor) -> torch.Tensor:
    """mean(delta_a^2) over batch and action dimensions, what the trust region bounds (``raw_distill_loss``)."""
    return (residual**2).mean()


def refinement_loss(
    critic: QEnsemble,
    observations: torch.Tensor,
    base_actions: torch.Tensor,
    residual: torch.Tensor,
    multiplier: torch.Tensor,
    normalize: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_Refine(phi) = E[-Q(s, clip(sg[a_flow] + delta_a)) / sg(mean|Q|) + sg(lambda) delta_a^2].

    ``base_actions`` carry no gradient; ``multiplier`` is lambda (detached here: the
    refinement does not move it). Returns the loss and its Q term (for logging).
    """
    q_term = q_loss(critic, observations, base_actions.detach() + residual, normalize)
    return q_term + multiplier.detach() * residual_square_mean(residual), q_term


def multiplier_loss(log_multiplier: torch.Tensor, residual_square: torch.Tensor, trust_region: float) -> torch.Tensor:
    """L(lambda) = -log(lambda) sg(mean(delta_a^2) - delta): lambda grows while the residual exceeds the trust region.

    The paper writes -lambda sg(...); the code descends on log lambda (lambda stays > 0),
    which is followed here. ``residual_square`` is :func:`residual_square_mean`'s value.
    """
    return -(log_multiplier * (residual_square.detach() - trust_region)).sum()


__all__ = ["multiplier_loss", "refinement_loss", "residual_square_mean"]
