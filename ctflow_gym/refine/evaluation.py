"""How good is a refinement? Proxy, deviation, and the closed-loop truth, for any refiner.

- proxy feedback gain: the refiner's own estimate (for :class:`TrajectoryRefiner`, the
  held-out return predictor's P(E(refined)) - P(E(source)), appendix A.5);
- action and latent deviation between refined and source windows;
- closed-loop gain (what the paper could not report): the refined window is
  executed in MuJoCo (open loop or tracked, :mod:`~ctflow_gym.refine.execution`) from
  the source window's recorded start state and the
  realised window return is compared with the source's realised return (the source
  replays bit for bit, so that is its recorded return). A termination inside the
  window ends the replay: the lost reward counts against the refinement
  (:func:`ctflow_gym.replay.closed_loop_returns`);
- dynamics error (the "validity" check of Flow to Better,
  :func:`ctflow_gym.replay.dynamics_error`); the same number for the source windows is
  the reference.

:func:`held_out_windows` picks the windows it is honest to evaluate a fitted refiner on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from minari import MinariDataset

from ctflow_gym.data.windows import Windows, make_windows
from ctflow_gym.refine.contract import Refiner, require_refiner
from ctflow_gym.refine.execution import execution_plans, resolve_execution
from ctflow_gym.replay.closed_loop import closed_loop_returns, dynamics_error
from ctflow_gym.replay.scoring import ValueFn, require_value_fn, window_score
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC
from ctflow_gym.statistics import mean_se
from ctflow_gym.workers import require_workers

HELD_OUT_PARTS = ("all", "validation", "test")


def held_out_windows(refiner: Refiner, dataset: MinariDataset, count: int, seed: int = 0, part: str = "all") -> Windows:
    """Up to ``count`` windows of ``dataset``, drawn with ``seed``, that ``refiner`` never trained on.

    ``part`` splits the held-out episodes in two fixed halves (by a permutation seeded
    with 0, the same for every ``seed``): ``"validation"`` to choose settings such as the
    strength on (:func:`choose_strength`), ``"test"`` to report on, never both from one
    half; ``"all"`` uses every held-out episode.

    On the dataset it was fitted on: windows of the episodes it held out (its
    ``fit_info["held_out_episodes"]``; only those episodes are read). On another dataset
    (a different id): windows of every episode, since none was trained on; a copy of the
    fitting data under another id cannot be told apart and would leak. Raises
    ``ValueError`` when the refiner held out nothing of this dataset. Windows have the
    refiner's length, stride 1 and return feedback.
    """
    if not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer; got {count!r}")
    if part not in HELD_OUT_PARTS:
        raise ValueError(f"part must be one of {HELD_OUT_PARTS}; got {part!r}")
    info = getattr(refiner, "fit_info", {}) or {}
    held_out = np.asarray(info.get("held_out_episodes", []), dtype=np.int64)
    other_dataset = info.get("dataset_id") not in (None, dataset.id)
    if other_dataset:
        held_out = np.asarray(dataset.episode_indices, dtype=np.int64)
    elif len(held_out) == 0:
        raise ValueError(
            f"refiner: it records no held-out episode of {dataset.id!r} (fitted with held_out_fraction=0, or on "
            "windows rather than a dataset): every window may have been trained on; evaluate on "
            "another dataset or refit"
        )
    if part != "all":
        if len(held_out) < 2:
            raise ValueError(f"part={part!r}: at least 2 held-out episodes are needed to split; got {len(held_out)}")
        shuffled = np.random.default_rng(0).permutation(np.sort(held_out))
        half = len(shuffled) // 2
        held_out = np.sort(shuffled[:half] if part == "validation" else shuffled[half:])
    if other_dataset and part == "all":
        windows = make_windows(dataset, refiner.window)
    else:
        windows = make_windows(dataset, refiner.window, episodes=held_out)
    chosen = np.random.default_rng(seed).choice(len(windows), size=min(count, len(windows)), replace=False)
    return windows.subset(np.sort(chosen))


def _scores(returns, ends, terminated, value_fn: ValueFn, gamma: float, horizon: int) -> np.ndarray:
    """Window return + gamma^H V(end), 0 tail after a termination (:func:`window_score`, batched)."""
    return np.array([window_score(r, e, t, value_fn, gamma, horizon) for r, e, t in zip(returns, ends, terminated)])


def _source_scores(windows: Windows, returns: np.ndarray, value_fn: ValueFn, gamma: float) -> np.ndarray:
    if windows.end_observations is None or windows.end_terminated is None:
        raise ValueError("windows: a value_fn score needs each window's end observation (make_windows records it)")
    return _scores(returns, windows.end_observations, windows.end_terminated, value_fn, gamma, windows.window)


def evaluate_refinement(
    refiner: Refiner,
    windows: Windows,
    strength: float = 1.0,
    closed_loop: bool = True,
    validity: bool = True,
    execution: str = "auto",
    value_fn: ValueFn | None = None,
    gamma: float = 0.99,
    workers: int = 1,
    **refine_options: Any,
) -> dict[str, Any]:
    """Refine ``windows`` and measure everything above; returns mean and SE per metric.

    ``windows`` should come from episodes the refiner did not train on (see
    :func:`held_out_windows`). ``execution`` says how refined windows are replayed
    (:mod:`~ctflow_gym.refine.execution`). With ``value_fn`` the report also has
    ``realized_score_gain``: the gain in window return + gamma^H V(end state) (0 after a
    termination), which also charges a refinement for the state it leaves behind.
    ``refine_options`` go to ``refiner.refine`` (for :class:`TrajectoryRefiner`:
    ``steps``, ``seed``, ``noise``); the report records the refiner's family and the execution.
    ``workers`` > 1 spreads the replays over that many processes (same numbers).
    """
    require_refiner(refiner)
    require_workers(workers)
    require_value_fn(value_fn, gamma)
    execution = resolve_execution(refiner, execution)
    env_id = windows.env_id or refiner.env_id
    if (closed_loop or validity) and env_id is None:
        raise ValueError("windows.env_id is unknown; closed-loop and validity checks need the env")
    result = refiner.refine(windows.observations, windows.actions, strength=strength, **refine_options)
    report: dict[str, Any] = {
        "refiner": type(refiner).__name__,
        "strength": strength,
        "execution": execution,
        "windows": len(windows),
    }
    for name in ("action_deviation", "latent_deviation"):
        if getattr(result, name) is not None:
            report[name] = mean_se(getattr(result, name))
    if result.predicted_gain is not None:
        report["proxy_gain"] = mean_se(result.predicted_gain)
    if closed_loop:
        spec = windows.sim_state_spec or REPLAY_STATE_SPEC
        plans = execution_plans(refiner, result.observations, result.actions, execution)
        refined_returns, terminated, ends = closed_loop_returns(
            env_id, windows.sim_states, plans, spec, start_observations=windows.observations[:, 0], workers=workers
        )
        source_returns = windows.rewards.astype(np.float64).sum(axis=1)
        gain = refined_returns - source_returns
        report["realized_gain"] = mean_se(gain)
        report["realized_gain_positive_fraction"] = float(np.mean(gain > 0))
        report["refined_terminated_fraction"] = float(terminated.mean())
        report["source_return"] = mean_se(source_returns)
        if value_fn is not None:
            report["realized_score_gain"] = mean_se(
                _scores(refined_returns, ends, terminated, value_fn, gamma, windows.window)
                - _source_scores(windows, source_returns, value_fn, gamma)
            )
    if validity:
        report["dynamics_error"] = mean_se(dynamics_error(env_id, result.observations, result.actions, workers))
        report["source_dynamics_error"] = mean_se(
            dynamics_error(env_id, windows.observations, windows.actions, workers)
        )
    return report


def choose_strength(
    refiner: Refiner,
    dataset: MinariDataset,
    strengths=(0.25, 0.5, 1.0, 1.5, 2.0),
    windows: int = 300,
    execution: str = "auto",
    value_fn: ValueFn | None = None,
    gamma: float = 0.99,
    seed: int = 0,
) -> tuple[float, dict[str, dict[str, Any]]]:
    """The strength with the highest realised gain on *validation* windows, and every report.

    Honest model selection: the strength is chosen by closed-loop replay (never by the
    proxy) on the ``"validation"`` half of the held-out episodes, so the ``"test"`` half
    stays clean for reporting. With ``value_fn`` the criterion is the score gain (window
    return + gamma^H V(end)), which also charges the state a refinement leaves behind;
    without, the window-return gain. Returns ``(strength, {str(strength): report})``.
    """
    if not len(strengths) or any(not np.isfinite(a) or a < 0 for a in strengths):
        raise ValueError(f"strengths must be a non-empty sequence of numbers >= 0; got {strengths!r}")
    chosen = held_out_windows(refiner, dataset, windows, seed=seed, part="validation")
    reports = {
        str(a): evaluate_refinement(
            refiner, chosen, a, validity=False, execution=execution, value_fn=value_fn, gamma=gamma
        )
        for a in strengths
    }
    key = "realized_score_gain" if value_fn is not None else "realized_gain"
    best = max(strengths, key=lambda a: reports[str(a)][key]["mean"])
    return float(best), reports
