"""Noise-level schedule of GTP training (seed 003, appendix C.2, Eq. 76).

Training times live on a discretisation of [0, T] whose resolution grows during
training: at gradient step k it has N(k) points,

    N(k) = min(s0 * 2^floor(k / K'), s1) + 1,   K' = floor(K / (log2(s1 / s0) + 1)),

with K the planned number of gradient steps, s0 = 10, s1 = 1280. The points are
Karras et al.'s rho-spacing between ``min_time`` and T, with 0 added below them so that
the last sampling step (to tau = 0) is a trained input.

Per sample the consistency loss needs t > u >= tau. We take t and u adjacent on the
grid (u is one solver step below t: the step whose error Theorem 1 bounds by O(h^p),
so a finer grid makes the score approximation more accurate), and tau uniformly among
the grid points at or below u (0 included). tau = u makes the teacher the identity.
"""

from __future__ import annotations

import math

import torch


def discretization_steps(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """N(k) of Eq. 76: the number of grid points at gradient step ``step`` of ``total_steps``."""
    period = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    return min(s0 * 2 ** (step // period), s1) + 1


def time_grid(points: int, min_time: float, max_time: float, rho: float = 7.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Ascending grid [0, t_1 = min_time, ..., t_points = max_time] (``points + 1`` values).

    ``points`` is N(k) of Eq. 76 (the Karras levels from min_time to T); 0 is added below.
    """
    lo, hi = min_time ** (1 / rho), max_time ** (1 / rho)
    ramp = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    karras = (lo + ramp * (hi - lo)) ** rho
    return torch.cat([torch.zeros(1, dtype=torch.float64), karras]).float().to(device)


def sample_consistency_times(batch: int, grid: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample (t, u, tau), each of shape (batch, 1), with t > u >= tau on ``grid``.

    u ranges over the grid points from ``min_time`` up (index >= 1), t is the next
    point above u, tau is uniform over the points 0..u.
    """
    n = len(grid)  # grid[0] = 0, grid[1] = min_time, grid[n - 1] = T
    u_index = torch.randint(1, n - 1, (batch,), generator=generator, device=grid.device)
    tau_index = torch.minimum((torch.rand(batch, generator=generator, device=grid.device) * (u_index + 1)).long(), u_index)
    pick = lambda index: grid[index].unsqueeze(-1)  # noqa: E731
    return pick(u_index + 1), pick(u_index), pick(tau_index)
