"""Noise levels of GTP: the training schedule (GTP paper, appendix C.2, Eq. 76) and the sampling times.

Both use one set of levels, :func:`karras_levels`: Karras et al.'s rho-spacing
(rho = 7) of ``count`` noise levels between ``min_time`` and the largest level T.

Training times live on a discretisation of [0, T] whose resolution grows during
training: at gradient step k it has N(k) points,

    N(k) = min(s0 * 2^floor(k / K'), s1) + 1,   K' = floor(K / (log2(s1 / s0) + 1)),

with K the planned number of gradient steps and s0 = 10, s1 = 1280 in the paper
(``GTPConfig`` defaults to s1 = 40: see its ``schedule_max_steps``). The points are the
levels of :func:`karras_levels`, with 0 added below them so that the last sampling
step (to tau = 0) is a trained input (:func:`time_grid`).

Per sample the consistency loss needs t > u >= tau. We take t and u adjacent on the
grid (u is one solver step below t: the step whose error Theorem 1 bounds by O(h^p),
so a finer grid makes the score approximation more accurate), and tau uniformly among
the grid points at or below u (0 included). tau = u makes the teacher the identity.

K-step sampling (Eq. 15) jumps through ``K + 1`` levels from T down, the smallest
replaced by 0 (:func:`sampling_times`).
"""

from __future__ import annotations

import math

import torch


def karras_levels(count: int, min_time: float, max_time: float, rho: float = 7.0) -> list[float]:
    """``count`` >= 2 noise levels, descending from ``max_time`` to ``min_time``, rho-spaced.

    Level i is ``(hi + i / (count - 1) * (lo - hi)) ** rho`` with ``lo = min_time ** (1 / rho)``
    and ``hi = max_time ** (1 / rho)``, in Python floats (float64): evenly spaced in
    ``time ** (1 / rho)``, so the levels crowd towards ``min_time``.
    """
    if not isinstance(count, int) or count < 2:
        raise ValueError(f"count must be an integer >= 2; got {count!r}")
    lo, hi = min_time ** (1 / rho), max_time ** (1 / rho)
    return [(hi + i / (count - 1) * (lo - hi)) ** rho for i in range(count)]


def sampling_times(steps: int, max_time: float, min_time: float, rho: float = 7.0) -> tuple[float, ...]:
    """``steps + 1`` descending times T = t_0 > ... > t_K = 0 for K-step sampling.

    The ``steps + 1`` levels of :func:`karras_levels` with the smallest (``min_time``)
    replaced by 0, so K = 1 is the one jump T -> 0 and K = 2 stops once near t = 2.5
    (T = 80) before the last jump. Raises ``ValueError`` unless ``steps`` is an integer >= 1.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"sampling_steps must be an integer >= 1; got {steps!r}")
    return (*karras_levels(steps + 1, min_time, max_time, rho)[:-1], 0.0)


def explicit_sampling_times(times, max_time: float) -> tuple[float, ...]:
    """``times`` checked as a K-step sampling plan: T = ``max_time`` > t_1 > ... > t_K = 0.

    For sampling at times other than :func:`sampling_times`' (e.g. where K = 2 stops in
    between). The first time must be T, since a_T is
    drawn from N(0, T^2 I) of the prior; the last must be 0. Raises ``ValueError`` naming
    ``sampling_times`` otherwise.
    """
    try:
        plan = tuple(float(t) for t in times)
    except (TypeError, ValueError):
        raise ValueError(f"sampling_times must be a sequence of numbers; got {times!r}") from None
    if len(plan) < 2 or not all(math.isfinite(t) for t in plan):
        raise ValueError(f"sampling_times needs at least 2 finite times (T ... 0); got {times!r}")
    if not math.isclose(plan[0], max_time, rel_tol=1e-9) or plan[-1] != 0.0:
        raise ValueError(f"sampling_times must start at T = {max_time} and end at 0; got {times!r}")
    if any(later >= earlier for earlier, later in zip(plan, plan[1:])):
        raise ValueError(f"sampling_times must be strictly decreasing; got {times!r}")
    return (float(max_time), *plan[1:])


def discretization_steps(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """N(k) of Eq. 76: the number of grid points at gradient step ``step`` of ``total_steps``."""
    period = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    return min(s0 * 2 ** (step // period), s1) + 1


def time_grid(
    points: int, min_time: float, max_time: float, rho: float = 7.0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Ascending float32 grid [0, t_1 = min_time, ..., t_points = max_time] (``points + 1`` values).

    ``points`` (>= 2) is N(k) of Eq. 76: the levels of :func:`karras_levels` in
    ascending order, with 0 added below.
    """
    levels = karras_levels(points, min_time, max_time, rho)
    return torch.tensor([0.0, *reversed(levels)], dtype=torch.float64).float().to(device)


TAU_SAMPLINGS = ("grid", "time", "grid_zero")
ZERO_SHARE = 0.25
"""Share of samples whose tau is 0 under ``tau_sampling="grid_zero"``."""


def sample_consistency_times(
    batch: int, grid: torch.Tensor, generator: torch.Generator | None = None, tau_sampling: str = "grid"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample (t, u, tau), each of shape (batch, 1), with t > u >= tau.

    u ranges over the grid points from ``min_time`` up (index >= 1), t is the next
    point above u. ``tau_sampling="grid"``: tau is uniform over the grid points 0..u
    (on the rho-spaced grid most of them lie far below u: long jumps toward the data);
    ``"time"``: tau is uniform in the interval [0, u] (more jumps of every length
    between); ``"grid_zero"``: tau = 0 (a jump all the way to the data) for a share
    :data:`ZERO_SHARE` of the samples, uniform over the grid points otherwise. All draw
    the same random numbers.
    """
    if tau_sampling not in TAU_SAMPLINGS:
        raise ValueError(f"tau_sampling must be one of {TAU_SAMPLINGS}; got {tau_sampling!r}")
    n = len(grid)  # grid[0] = 0, grid[1] = min_time, grid[n - 1] = T
    u_index = torch.randint(1, n - 1, (batch,), generator=generator, device=grid.device)
    tau_draw = torch.rand(batch, generator=generator, device=grid.device)
    pick = lambda index: grid[index].unsqueeze(-1)  # noqa: E731
    if tau_sampling == "time":
        return pick(u_index + 1), pick(u_index), tau_draw.unsqueeze(-1) * pick(u_index)
    if tau_sampling == "grid_zero":  # draws below ZERO_SHARE clamp to 0, i.e. grid index 0
        tau_draw = ((tau_draw - ZERO_SHARE) / (1 - ZERO_SHARE)).clamp(min=0.0)
    tau_index = torch.minimum((tau_draw * (u_index + 1)).long(), u_index)
    return pick(u_index + 1), pick(u_index), pick(tau_index)
