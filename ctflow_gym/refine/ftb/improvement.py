"""Flow to Better's iterative improvement (paper Algorithm 4; code ``utils/filter.py``), with our exact validity check.

Start from the ``top_n`` windows by score (``keep="top"``, our window adaptation) or from
every window given (``keep="each"``: windows that tile the top k episodes by score, see
:meth:`~ctflow_gym.refine.ftb.FTBRefiner.top_episodes`, the paper's trajectory-level
extraction on CPU); in each round generate one window per current window (conditioned
on it), accept a sample when it is valid and

    score_norm(new) / score_norm(current) > sigma                        (sigma = 1.05)

and let accepted samples replace their condition (so they are improved further). Stop
after the paper's t_flow = K - i rounds (i the 1-based block of the worst start window;
the code runs one more) or after a round accepting fewer than ``min_accept`` (5%), the
code's early stop. With ``keep="top"`` the pool, the start windows and every accepted
sample, is rescored and its ``top_n`` best kept (the paper's "top k of D_improved", over
windows). With ``keep="each"`` every start window is kept in its final version (its last
accepted sample, or itself): the paper keeps the top k trajectories of the pool, which
are the latest versions of its k start trajectories unless two versions of one outrank
another's; one version per window keeps every part of every start episode, the start
states a policy begins from included, which the windows' top scores would drop (in
locomotion an episode's first steps score low: the body has not yet got going).

Validity: the code's check (every normalised entry below ``magnitude_limit``, 30), and
ours, which is exact: the mean one-step dynamics error of the generated states and
actions measured by MuJoCo (:func:`ctflow_gym.replay.dynamics_error`), filtered at
``dynamics_tolerance`` when it is set and always recorded. Each kept window remembers
the dataset window it descends from (``origins``), whose recorded start state it can be
realised from (:mod:`ctflow_gym.improve`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctflow_gym import progress
from ctflow_gym.data.windows import Windows
from ctflow_gym.replay.closed_loop import dynamics_error


@dataclass(frozen=True)
class ImprovedPool:
    """The windows iterative improvement keeps, and how it went.

    Attributes:
        observations, actions: (N, H, .) the kept windows (plans: generated states need
            not be what the actions produce; realise them to know).
        scores: (N,) normalised FTB scores.
        origins: (N,) row of the input ``windows`` each descends from.
        generated: (N,) False for a start window kept as it was.
        dynamics_error: (N,) mean one-step MuJoCo dynamics error (NaN where not measurable).
        rounds: per round: ``accepted`` fraction, ``invalid_magnitude`` and
            ``invalid_dynamics`` counts, ``mean_score`` of the current windows after it.
        start_mean_score: mean score of the start windows.
    """

    observations: np.ndarray
    actions: np.ndarray
    scores: np.ndarray
    origins: np.ndarray
    generated: np.ndarray
    dynamics_error: np.ndarray
    rounds: list[dict] = field(default_factory=list)
    start_mean_score: float = float("nan")


def _dynamics_errors(env_id: str | None, observations: np.ndarray, actions: np.ndarray, workers: int) -> np.ndarray:
    if env_id is None:
        return np.full(len(observations), np.nan)
    try:
        return dynamics_error(env_id, observations, actions, workers)
    except ValueError:  # an env whose observation does not determine its simulator state
        return np.full(len(observations), np.nan)


def _better(new: np.ndarray, current: np.ndarray, sigma: float) -> np.ndarray:
    """The ratio test; for a score at or below 0 (the dataset's worst), any strict rise by sigma - 1 of the range."""
    positive = current > 0
    ratio_ok = new > sigma * np.where(positive, current, 0.0)
    return np.where(positive, ratio_ok, new > current + (sigma - 1.0))


KEEP_MODES = ("top", "each")


def iterative_improvement(
    refiner, windows: Windows, seed: int = 0, progress_bar: bool = True, workers: int = 1, keep: str = "top"
):
    """Algorithm 4 on ``windows`` with a fitted :class:`~ctflow_gym.refine.ftb.FTBRefiner` (module docstring)."""
    cfg = refiner.config
    if keep not in KEEP_MODES:
        raise ValueError(f"keep must be one of {KEEP_MODES}; got {keep!r}")
    if keep == "top" and cfg.top_n > len(windows):
        raise ValueError(f"top_n: {cfg.top_n} start windows asked for and windows holds {len(windows)}")
    if cfg.dynamics_tolerance is not None and windows.env_id is None:
        raise ValueError("dynamics_tolerance: the dynamics check needs the windows' env_id")
    scores = refiner.scores(windows.observations, windows.actions)
    start = np.argsort(-scores, kind="stable")[: cfg.top_n] if keep == "top" else np.arange(len(windows))
    current = refiner._normalised_windows(windows.observations[start], windows.actions[start])
    current_scores = scores[start]  # a copy (fancy indexing); it changes as samples are accepted
    rounds = cfg.max_rounds or max(1, cfg.blocks - (refiner.block_of(float(current_scores.min())) + 1))
    # keep="top": the pool, one entry per part: the start windows, then each round's accepted samples
    pool = (
        [
            _pool_part(
                windows.observations[start], windows.actions[start], current_scores, start, False, np.zeros(len(start))
            )
        ]
        if keep == "top"
        else []
    )
    generated, current_errors = np.zeros(len(start), bool), np.zeros(len(start))  # keep="each": each final version
    history = []
    for r in progress.progress_bar(range(rounds), desc="ftb improve", disable=not progress_bar):
        sample = refiner._generate_normalised(current, seed + r)
        obs, act = refiner._split(sample)
        new_scores = refiner.scores(obs, act)
        magnitude_ok = np.abs(sample).reshape(len(sample), -1).max(axis=1) < cfg.magnitude_limit
        errors = _dynamics_errors(windows.env_id, obs, act, workers)
        dynamics_ok = np.ones(len(sample), bool) if cfg.dynamics_tolerance is None else errors <= cfg.dynamics_tolerance
        accepted = magnitude_ok & dynamics_ok & _better(new_scores, current_scores, cfg.sigma)
        if keep == "top":
            pool.append(_pool_part(obs, act, new_scores, start, True, errors, accepted))
        current[accepted] = sample[accepted]
        current_scores[accepted] = new_scores[accepted]
        generated[accepted], current_errors[accepted] = True, errors[accepted]
        history.append(
            {
                "round": r + 1,
                "accepted": float(accepted.mean()),
                "invalid_magnitude": int((~magnitude_ok).sum()),
                "invalid_dynamics": int((~dynamics_ok).sum()),
                "mean_dynamics_error": float(np.nanmean(errors)) if np.isfinite(errors).any() else None,
                "mean_score": float(current_scores.mean()),
            }
        )
        if accepted.mean() < cfg.min_accept:
            break
    if keep == "each":  # the final version of each start window; its originals exactly as recorded
        obs, act = refiner._split(current)
        original = ~generated
        obs[original], act[original] = windows.observations[start][original], windows.actions[start][original]
        return ImprovedPool(
            obs, act, current_scores, start, generated, current_errors, history, float(scores[start].mean())
        )
    kept = {name: np.concatenate([part[name] for part in pool]) for name in pool[0]}
    best = np.argsort(-kept["scores"], kind="stable")[: cfg.top_n]
    return ImprovedPool(
        **{name: values[best] for name, values in kept.items()},
        rounds=history,
        start_mean_score=float(scores[start].mean()),
    )


def _pool_part(observations, actions, scores, origins, generated: bool, errors, rows=slice(None)) -> dict:
    """The ``rows`` of one part of the pool, as :class:`ImprovedPool`'s per-window fields (``origins``: each row's
    start window, which an accepted sample keeps for life)."""
    count = len(scores[rows])
    return {
        "observations": observations[rows],
        "actions": actions[rows],
        "scores": scores[rows].copy(),  # the start part's are the current scores, which change
        "origins": origins[rows],
        "generated": np.full(count, generated),
        "dynamics_error": errors[rows],
    }
