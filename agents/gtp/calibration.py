"""Where K-step sampling stops in between: intermediate times fitted offline to the finest trained path.

K-step sampling (Eq. 15) jumps T = t_0 > t_1 > ... > t_K = 0. A flow map that were
exactly consistent would give the same action for every choice of the t_i; a trained
one is not, so some stops are better than others. The paper fixes them (EDM's Karras
spacing, :func:`~agents.gtp.schedule.sampling_times`); here they can be fitted, per
trained actor, with no environment interaction:

    t_1..t_{K-1} = argmin  E_{s, a_T} || Phi_K(s, a_T; t) - Phi_grid(s, a_T) ||^2

over the levels the actor was trained on (the final grid of Eq. 76), where
``Phi_grid`` chains one map step per adjacent grid level, T -> ... -> min_time -> 0:
the path of the short jumps the consistency loss trains one solver step at a time,
the most accurate one the trained map offers. Each t_i is picked by coordinate
descent (every level strictly between its neighbours), starting from Karras'
times, on dataset states s and start noises a_T ~ N(0, T^2 I) drawn with a fixed seed.

Why: at s1 = 40, 200k steps on the shipped data, every trained actor measured put
K = 2's best stop far below Karras' t = 2.5, where its actions come about as close to
the fine path as K = 5's, and K = 2 acting there closed most of its gap to K = 5 in
closed loop in four of the five seeds measured (section 8 of the GTP diagnostics
analysis, linked from the Results page of the documentation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.gtp.networks import FlowMapActor


@dataclass(frozen=True)
class FittedTimes:
    """The outcome of :func:`fit_sampling_times` for one K.

    Attributes:
        times: T = t_0 > ... > t_K = 0, the fitted plan.
        start_times: the plan the descent started from (Karras' times).
        distance: RMS distance (in [-1, 1] action units) of the fitted plan's actions
            to the fine path's.
        start_distance: the same for ``start_times``.
    """

    times: tuple[float, ...]
    start_times: tuple[float, ...]
    distance: float
    start_distance: float


def rms_distance(first: torch.Tensor, second: torch.Tensor) -> float:
    """Root mean over rows of the squared Euclidean distance between two action batches."""
    return float((first - second).pow(2).sum(-1).mean().sqrt())


@torch.no_grad()
def clipped_actions(
    actor: FlowMapActor, observations: torch.Tensor, noise: torch.Tensor, times: tuple[float, ...]
) -> torch.Tensor:
    """The actions of the plan ``times`` from start noises ``noise``, clipped to [-1, 1] as the policy acts."""
    return actor.sample(observations, times, noise).clamp(-1.0, 1.0)


def fine_path(levels: list[float]) -> tuple[float, ...]:
    """The plan of one map step per trained level, T ... min_time, then 0: the reference of every fit."""
    return (*levels, 0.0)


@torch.no_grad()
def fit_sampling_times(
    actor: FlowMapActor,
    observations: torch.Tensor,
    noise: torch.Tensor,
    start_times: tuple[float, ...],
    levels: list[float],
    sweeps: int = 3,
) -> FittedTimes:
    """Fit the intermediate stops of ``start_times`` to the fine path through ``levels``.

    Args:
        actor: the flow map that acts (the EMA actor).
        observations: normalised states, shape (B, obs_dim).
        noise: N(0, I) draws of shape (B, act_dim) (scaled by T inside ``actor.sample``).
        start_times: T > t_1 > ... > 0, where the descent starts (its ends stay).
        levels: the trained noise levels in descending order from T, min_time last
            (0 is added below them: the fine path's last jump).
        sweeps: at most this many passes over t_1..t_{K-1}; stops early when a pass
            changes nothing.

    Actions are clipped to [-1, 1] before distances are taken, as the policy acts.
    """
    sample = lambda times: clipped_actions(actor, observations, noise, times)  # noqa: E731
    reference = sample(fine_path(levels))
    times = list(start_times)
    start_distance = best = rms_distance(sample(tuple(times)), reference)
    for _ in range(sweeps):
        changed = False
        for i in range(1, len(times) - 1):
            for level in (lvl for lvl in levels if times[i + 1] < lvl < times[i - 1] and lvl != times[i]):
                trial = (*times[:i], level, *times[i + 1 :])
                distance = rms_distance(sample(trial), reference)
                if distance < best:
                    best, times[i], changed = distance, level, True
        if not changed:
            break
    return FittedTimes(tuple(times), tuple(start_times), best, start_distance)
