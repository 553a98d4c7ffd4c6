"""Choosing refiners for one policy on validation episodes: honest model selection after a policy.

What a fitted refiner does to a policy's whole episodes depends mostly on its fit seed:
of several bootstrapped-advantage fits on the shipped data, most lowered the medium SAC
policy's return and few raised it (the Results page of the documentation has the
numbers). That property of a fit is stable across episodes: each fit's change on
validation episodes was close to its change on other (test) episodes. So fit several refiners,
run each after the policy on validation episodes, paired with the policy alone, and
keep the ones that raise its return; report on episodes the selection did not see.

:func:`select_refiners` does the validation runs; combine what it keeps with
:class:`~ctflow_gym.refine.RefinerEnsemble` when more than one is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from ctflow_gym.refine.contract import require_refiner
from ctflow_gym.statistics import mean_se
from ctflow_gym.wrappers.episodes import run_episodes
from ctflow_gym.wrappers.refined_policy import RefinedPolicy


@dataclass(frozen=True)
class RefinerValidation:
    """One refiner's validation run after the policy (paired with the policy alone).

    Attributes:
        index: position of the refiner in the list given to :func:`select_refiners`.
        returns: episode returns with the refiner attached.
        paired_gain: mean over episodes of (return with refiner - return alone).
        paired_gain_se: its standard error.
        relative_change: mean return with the refiner / mean return alone - 1.
        episodes_better: episodes whose return rose.
    """

    index: int
    returns: list[float]
    paired_gain: float
    paired_gain_se: float
    relative_change: float
    episodes_better: int


@dataclass(frozen=True)
class RefinerSelection:
    """What :func:`select_refiners` measured and kept.

    Attributes:
        base_returns: the policy alone on the validation episodes.
        validations: one :class:`RefinerValidation` per refiner, in the order given.
        kept: indices of the refiners whose ``relative_change`` exceeded ``min_change``,
            best first.
    """

    base_returns: list[float]
    validations: list[RefinerValidation]
    kept: list[int]


def select_refiners(
    policy: Any,
    refiners: Sequence[Any],
    env_id: str,
    episodes: int = 20,
    seed: int = 2000,
    min_change: float = 0.0,
    max_episode_steps: int | None = None,
    **policy_options: Any,
) -> RefinerSelection:
    """Run ``policy`` alone and with each refiner attached on the same validation episodes; keep those that help.

    Args:
        policy: an SB3 model or a callable observation -> action (as for :class:`RefinedPolicy`).
        refiners: fitted refiners (any :class:`~ctflow_gym.refine.Refiner`).
        env_id: the env to run in (a fresh ``gym.make(env_id, max_episode_steps=...)`` per run).
        episodes: validation episodes; episode i starts with ``reset(seed=seed + i)``.
        seed: the first validation reset seed. Report on other seeds (the package's
            benchmarks validate on 2000.. and test on 1000..).
        min_change: keep a refiner when its relative change of the mean return is above
            this (0: any gain). More episodes make a kept refiner less likely to be luck.
        max_episode_steps: cap of the validation episodes (None: the env's own).
        policy_options: keyword arguments of :class:`RefinedPolicy` (``strength``,
            ``verify``, ``candidates``, ``value_fn``, ``continuation``, ...), the same
            for every refiner; use the settings you will deploy.
    """
    refiners = list(refiners)
    if not refiners:
        raise ValueError("refiners: give at least one fitted refiner")
    for i, refiner in enumerate(refiners):
        require_refiner(refiner, f"refiners[{i}]")
    if not np.isfinite(min_change):
        raise ValueError(f"min_change must be a finite number; got {min_change!r}")
    make = lambda: gym.make(env_id, max_episode_steps=max_episode_steps)  # noqa: E731
    base = np.asarray(run_episodes(make(), policy, episodes, seed))
    validations = []
    for i, refiner in enumerate(refiners):
        env = make()
        attached = RefinedPolicy(policy, refiner, env, **policy_options)
        returns = np.asarray(run_episodes(env, attached, episodes, seed))
        gain = mean_se(returns - base)
        validations.append(
            RefinerValidation(
                index=i,
                returns=returns.tolist(),
                paired_gain=gain["mean"],
                paired_gain_se=gain["se"],
                relative_change=float(returns.mean() / base.mean() - 1.0),
                episodes_better=int(np.sum(returns > base)),
            )
        )
    ranked = sorted(validations, key=lambda v: v.relative_change, reverse=True)
    kept = [v.index for v in ranked if v.relative_change > min_change]
    return RefinerSelection(base_returns=base.tolist(), validations=validations, kept=kept)
