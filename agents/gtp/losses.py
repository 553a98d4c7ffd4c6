"""The losses of GTP, one function each, numbered as in the GTP paper.

All actions here are in [-1, 1] (the env's box mapped linearly) and observations are
normalised. ``weights`` are the advantage weights w(s, a) of Eq. 14, one per sample,
already detached.
"""

from __future__ import annotations

import torch

from agents.gtp.networks import FlowMapActor


def advantage_weights(advantage: torch.Tensor, eta: float, max_weight: float, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 14: w = exp(eta * max(0, A) / (std(A) + eps)), clipped at ``max_weight``.

    The clip is the "clipped weighting" of the paper's appendix B.6 discussion (the
    value is not given there; 100 is AWAC's/IQL's). eta = 0 gives w = 1 (GTP-BC).
    """
    if eta == 0:
        return torch.ones_like(advantage)
    scaled = eta * advantage.clamp(min=0) / (advantage.std() + eps)
    return torch.exp(scaled.clamp(max=torch.log(torch.tensor(max_weight)).item()))


def td_target(
    rewards: torch.Tensor, terminations: torch.Tensor, next_value: torch.Tensor, gamma: float
) -> torch.Tensor:
    """r + gamma * (1 - terminal) * min_j Q_target_j(s', a'), the bracket of Eq. 16."""
    return rewards + gamma * (1.0 - terminations) * next_value


def critic_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 16: squared TD error of both Q heads, Q_j(s, a) of the data, against the shared target.

    Shapes (B,), or (members, B) for an ensemble of critics, each with its own target:
    then the members' losses are summed (each member's gradient is its loss alone).
    """
    return ((q1 - target) ** 2).mean(-1).sum() + ((q2 - target) ** 2).mean(-1).sum()


def consistency_loss(
    actor: FlowMapActor,
    teacher: FlowMapActor,
    obs: torch.Tensor,
    actions: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    tau: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Eq. 17 with the score approximation (Eq. 11): no ODE solver.

    Student Phi_theta(s, a + t z, t, tau) against the EMA teacher
    Phi_ema(s, a + u z, u, tau), the same z for both.
    """
    student = actor(obs, actions + t * noise, t, tau)
    return weighted_squared_error(weights, student, consistency_target(teacher, obs, actions, noise, u, tau))


def flow_loss(
    actor: FlowMapActor,
    obs: torch.Tensor,
    actions: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Eq. 18, the instantaneous flow loss: || a - phi_theta(s, a + t z, t, t) ||^2."""
    estimate = actor.phi(obs, actions + t * noise, t, t)
    return weighted_squared_error(weights, actions, estimate)


def actor_losses(
    actor: FlowMapActor,
    teacher: FlowMapActor,
    obs: torch.Tensor,
    actions: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    tau: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(:func:`consistency_loss`, :func:`flow_loss`), the two terms of Eq. 19, with one network call for both.

    The student of Eq. 17, Phi(s, a_t, t, tau), and the flow estimate of Eq. 18,
    phi(s, a_t, t, t), see the same s, a_t = a + t z and t and differ only in their
    second time; their phi is computed in one batched call of 2B rows (half the kernel
    launches of two calls, what a GPU step is bound by). Same values as the two
    functions, to float rounding (tests/test_gtp_agent.py checks it).
    """
    a_t = actions + t * noise
    both = actor.phi(torch.cat([obs, obs]), torch.cat([a_t, a_t]), torch.cat([t, t]), torch.cat([tau, t]))
    phi_tau, phi_flow = both.chunk(2)
    student = actor.flow_map(phi_tau, a_t, t, tau)
    target = consistency_target(teacher, obs, actions, noise, u, tau)
    return weighted_squared_error(weights, student, target), weighted_squared_error(weights, actions, phi_flow)


@torch.no_grad()
def consistency_target(
    teacher: FlowMapActor,
    obs: torch.Tensor,
    actions: torch.Tensor,
    noise: torch.Tensor,
    u: torch.Tensor,
    tau: torch.Tensor,
) -> torch.Tensor:
    """Eq. 17's target with the score approximation (Eq. 11): Phi_ema(s, a + u z, u, tau), no gradient."""
    return teacher(obs, actions + u * noise, u, tau)


def weighted_squared_error(weights: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """mean_i w_i ||first_i - second_i||^2, the form of Eqs. 17 and 18."""
    return (weights * ((first - second) ** 2).sum(-1)).mean()
