"""The losses of Flow Q-Learning, one function each, named as in the FQL paper and found in ``agents/fql.py``.

Actions are in [-1, 1] and observations normalised. The total loss of one step is
``critic_loss + actor_loss`` minimised by one Adam over every network, as the official
code does; their gradients do not mix because of how each network enters:

- the TD target is computed without gradient (target critic, next actions);
- the distillation target ODE(v, z) is computed without gradient
  (:func:`~agents.fql.networks.euler_flow_actions`): in JAX the flow is called there
  without ``grad_params``, so the flow is trained by its flow-matching loss alone;
- the actor's Q term evaluates the critic with detached weights
  (:func:`frozen_q_values`): the critic is not trained by the actor's loss, while the
  gradient still flows through the action into the one-step policy.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from agents.fql.networks import ActorVectorField, QEnsemble


def td_target(rewards: torch.Tensor, terminations: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    """r + gamma (1 - terminal) Q_target(s', a'), a' from the policy being learned (computed without gradient)."""
    return rewards + gamma * (1.0 - terminations) * next_q


def aggregate_heads(q_values: torch.Tensor, how: str) -> torch.Tensor:
    """The target critic's heads (members, B) combined as FQL's ``q_agg``: their ``"mean"`` or ``"min"``."""
    return q_values.min(0).values if how == "min" else q_values.mean(0)


def critic_loss(q_values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared TD error of every head against the shared target, averaged over heads and batch (as FQL's code)."""
    return ((q_values - target) ** 2).mean()


def flow_matching_loss(
    flow: ActorVectorField, observations: torch.Tensor, actions: torch.Tensor, x0: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """FQL's L_Flow(theta), the behaviour flow's BC loss: ||v(s, x_t, t) - (a - x_0)||^2, x_t = (1 - t) x_0 + t a.

    ``x0`` ~ N(0, I) like ``actions``; ``t`` ~ U[0, 1] of shape (B, 1). Mean over batch and action dimensions.
    """
    x_t = (1.0 - t) * x0 + t * actions
    return ((flow(observations, x_t, t) - (actions - x0)) ** 2).mean()


def distillation_loss(policy_actions: torch.Tensor, flow_actions: torch.Tensor) -> torch.Tensor:
    """the distillation term of FQL's L_pi(omega), ||mu(s, z) - ODE(v, z)||^2, mean over batch and dimensions.

    ``flow_actions`` must carry no gradient (:func:`~agents.fql.networks.euler_flow_actions`).
    """
    return ((policy_actions - flow_actions) ** 2).mean()


def frozen_q_values(critic: QEnsemble, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The critic's heads (members, B) at ``actions`` with its weights detached: gradient reaches ``actions`` only."""
    weights = {name: value.detach() for name, value in critic.named_parameters()}
    weights.update(critic.named_buffers())
    return functional_call(critic, weights, (observations, actions))


def q_loss(critic: QEnsemble, observations: torch.Tensor, actions: torch.Tensor, normalize: bool) -> torch.Tensor:
    """The -Q term of FQL's L_pi(omega): -mean over batch of the heads' mean Q(s, clip(a)).

    ``actions`` are clipped to [-1, 1] first (FQL clips the one-step policy's output
    before the critic sees it). With ``normalize`` the term is divided by the batch's
    mean |Q|, taken without gradient (FQL's ``normalize_q_loss``; DeFlow's Q-normalisation).
    """
    q = frozen_q_values(critic, observations, actions.clamp(-1.0, 1.0)).mean(0)
    loss = -q.mean()
    if normalize:
        loss = loss / q.abs().mean().detach()
    return loss


__all__ = [
    "aggregate_heads",
    "critic_loss",
    "distillation_loss",
    "flow_matching_loss",
    "frozen_q_values",
    "q_loss",
    "td_target",
]
