"""Several refinements of one window, and choosing among them by replay.

``candidates=n`` makes n refined windows of the same source window: candidate i
(i = 0..n-1) is refined at strength ``strength * (i + 1) / n`` (a ladder up to the
given strength, so that one of them can be mild where a strong refinement would
overshoot) and, for refiners whose ``refine`` takes a ``seed`` (sampling families such
as :class:`~ctflow_gym.refine.perturbation.GaussianPerturbation`), with
``seed = window_index * n + i``, so every window gets fresh, reproducible draws.
With verification each is replayed from the window's start snapshot and scored
(:mod:`ctflow_gym.replay.scoring`); the best one is used when it beats the source's
score. Every replayed step counts toward the simulator budget (n x H per window, plus
the look-ahead of :class:`~ctflow_gym.wrappers.RefinedPolicy`), which is how the
benchmarks compare a learned refiner with Gaussian candidates at equal budget.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ctflow_gym.data.validation import require_int
from ctflow_gym.refine.contract import RefinementResult
from ctflow_gym.refine.execution import execution_plans
from ctflow_gym.replay import EnvSnapshot, ValueFn, WindowReplay, capture_snapshot, replay_window


def require_candidates(candidates: Any, verify: bool, verify_argument: str) -> int:
    """``candidates`` as an int >= 1; more than one needs verification (named by ``verify_argument``)."""
    require_int(candidates, "candidates", numpy_integers=True)
    if candidates > 1 and not verify:
        raise ValueError(
            f"candidates={candidates} needs {verify_argument}=True: without replay nothing chooses among them"
        )
    return int(candidates)


def candidate_strengths(strength: float, candidates: int) -> list[float]:
    """The ladder ``strength * (i + 1) / candidates``; ``[strength]`` for one candidate."""
    return [strength * (i + 1) / candidates for i in range(candidates)]


def _takes_seed(refiner) -> bool:
    try:
        return "seed" in inspect.signature(refiner.refine).parameters
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Candidate:
    """One refined window and how to execute it (``plan``: an action array or an ActionPlan)."""

    strength: float
    result: RefinementResult
    plan: Any


def refine_candidates(
    refiner,
    observations: np.ndarray,
    actions: np.ndarray,
    strength: float,
    candidates: int,
    execution: str,
    options: dict[str, Any],
    window_index: int = 0,
) -> list[Candidate]:
    """Refine one window (1, H, ...) ``candidates`` times (see the module docstring).

    ``execution`` must be resolved (``"open_loop"`` or ``"tracked"``); ``options`` go to
    ``refine``; ``window_index`` (the caller's count of windows so far) seeds sampling families.
    """
    seeded = "seed" not in options and _takes_seed(refiner)
    made = []
    for i, value in enumerate(candidate_strengths(strength, candidates)):
        extra = {"seed": window_index * candidates + i} if seeded else {}
        result = refiner.refine(observations, actions, strength=value, **options, **extra)
        plan = execution_plans(refiner, result.observations, result.actions, execution)[0]
        made.append(Candidate(value, result, plan))
    return made


def replay_candidates(
    env: gym.Env,
    start: EnvSnapshot,
    made: list[Candidate],
    start_observation: np.ndarray,
    value_fn: ValueFn | None,
    gamma: float,
    rescore: Callable[[WindowReplay], float] | None = None,
) -> tuple[int, list[WindowReplay], list[float], list[EnvSnapshot]]:
    """Replay each candidate from ``start``: (index of the best, every replay, every score, every end snapshot).

    A candidate's score is its replay's (window return + gamma^H ``value_fn``), or, when
    ``rescore`` is given, ``rescore(replay)`` called with the env still at the replay's
    end (e.g. to run a continuation; it is not called after a termination). A candidate
    whose replay terminated ranks below every one that did not. The env is left wherever
    the last replay (and rescore) took it; the caller restores it (or restores the best's
    end snapshot to continue from there).
    """
    replays, scores, ends = [], [], []
    for candidate in made:
        replayed = replay_window(env, start, candidate.plan, value_fn, gamma, start_observation)
        ends.append(capture_snapshot(env))
        replays.append(replayed)
        scores.append(replayed.score if rescore is None or replayed.terminated else rescore(replayed))
    best = max(range(len(replays)), key=lambda i: (not replays[i].terminated, scores[i]))
    return best, replays, scores, ends
