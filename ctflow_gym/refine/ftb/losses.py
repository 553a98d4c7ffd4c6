"""The losses of Flow to Better, one function each (paper section 3; official code where it differs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctflow_gym.models.step_reward import StepReward
from ctflow_gym.models.temporal_velocity import ConditionalTemporalVelocity


def bradley_terry_loss(
    reward: StepReward,
    first: tuple[torch.Tensor, torch.Tensor],
    second: tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
) -> torch.Tensor:
    """Paper Eq. 4: -E[log softmax(s(tau^0), s(tau^1))[y]], s(tau) = sum_h r_psi(s_h, a_h).

    ``first``/``second``: (observations, actions) of the segments (B, L, .); ``labels``
    (B,) 0 when the first segment is preferred, 1 when the second.
    """
    logits = torch.stack([reward(*first).sum(-1), reward(*second).sum(-1)], dim=-1)
    return F.cross_entropy(logits, labels)


def segment_bce_loss(
    reward: StepReward,
    first: tuple[torch.Tensor, torch.Tensor],
    second: tuple[torch.Tensor, torch.Tensor],
    labels: torch.Tensor,
) -> torch.Tensor:
    """The official code's loss (``utils/trainer.py``): BCE of sigmoid(mean_h r_psi) per segment against one-hot labels.

    Each segment is classified on its own (preferred -> 1, other -> 0), unlike Eq. 4.
    """
    p = torch.sigmoid(torch.stack([reward(*first).mean(-1), reward(*second).mean(-1)], dim=-1))
    target = F.one_hot(labels, 2).to(p.dtype)
    return F.binary_cross_entropy(p, target)


def conditional_flow_matching_loss(
    velocity: ConditionalTemporalVelocity,
    better: torch.Tensor,
    worse: torch.Tensor,
    condition_dropout: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Paper Eq. 5 with flow matching in place of DDPM: E || v(x_t, t | c) - (x_1 - x_0) ||^2.

    x_1 = the better window (block k + 1), c = the worse one (block k), x_0 ~ N(0, I),
    x_t = (1 - t) x_0 + t x_1, t ~ U[0, 1]; each pair drops its condition with
    probability ``condition_dropout`` (classifier-free guidance trains both fields in one
    network, as the paper's diffuser does).
    """
    batch = len(better)
    noise = torch.randn(better.shape, generator=generator, device=better.device, dtype=better.dtype)
    t = torch.rand(batch, generator=generator, device=better.device, dtype=better.dtype)
    keep = (torch.rand(batch, generator=generator, device=better.device) >= condition_dropout).to(better.dtype)
    x_t = (1 - t).view(-1, 1, 1) * noise + t.view(-1, 1, 1) * better
    return (velocity(x_t, t, worse, keep) - (better - noise)).pow(2).mean()
