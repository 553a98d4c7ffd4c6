"""Verified improvement of windows: refine, realise in MuJoCo, keep what really got better.

For each source window (with its recorded start state) the refiner proposes an
improved window; the proposal is realised from the source's start state
(:func:`ctflow_gym.replay.realisation.realise_windows`), open loop and, where the
refiner has an inverse-dynamics model, tracked, and the realisation with the higher
score is the candidate. It is kept when

    score(realised) > score(source) + min_gain,   score = return + gamma^H V(s_end)

(the tail only with a value function, and 0 after a termination), and it does not
terminate where the source did not: a fall is never an improvement. The source's
score uses its recorded rewards, which its replay reproduces bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctflow_gym.data.windows import Windows
from ctflow_gym.improve.config import ImprovementConfig
from ctflow_gym.refine.execution import execution_plans, resolve_execution
from ctflow_gym.replay.realisation import RealisedWindow, realise_windows
from ctflow_gym.replay.scoring import ValueFn, window_score
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC


@dataclass(frozen=True)
class VerifiedWindow:
    """One source window's best realised improvement and the verdict on it.

    Attributes:
        realised: the transitions the chosen execution produced.
        execution: ``"open_loop"`` or ``"tracked"``.
        source_score, realised_score: the scores compared (module docstring).
        predicted_gain: the refiner's own estimate of the gain (NaN when it gives none).
        accepted: whether it is kept.
    """

    realised: RealisedWindow
    execution: str
    source_score: float
    realised_score: float
    predicted_gain: float
    accepted: bool

    @property
    def realised_gain(self) -> float:
        """``realised_score - source_score``."""
        return self.realised_score - self.source_score


def executions_for(refiner, execution: str) -> tuple[str, ...]:
    """The executions to realise with: for ``"best"`` both where the refiner can track (open loop where it
    cannot, or where there is no refiner), else ``execution`` checked by
    :func:`~ctflow_gym.refine.execution.resolve_execution`."""
    if execution == "best":
        return ("open_loop", "tracked") if getattr(refiner, "inverse_dynamics", None) is not None else ("open_loop",)
    return (resolve_execution(refiner, execution),)


def verify_windows(
    refiner,
    windows: Windows,
    config: ImprovementConfig,
    value_fn: ValueFn | None = None,
    start_observations: np.ndarray | None = None,
) -> list[VerifiedWindow]:
    """Refine ``windows``, realise each proposal and judge it (module docstring); one result per window.

    ``start_observations`` (N, obs_dim): each window's first observation as the dataset
    recorded it (full precision, written as the realised episode's first observation);
    default: the windows' own (float32) copies.
    """
    require_states(windows)
    result = refiner.refine(windows.observations, windows.actions, strength=config.strength, seed=config.seed)
    return verify_proposals(
        refiner,
        windows,
        result.observations,
        result.actions,
        result.predicted_gain,
        config,
        value_fn,
        start_observations,
    )


def require_states(windows: Windows, dataset_id: str | None = None) -> None:
    """Raise ``ValueError`` naming the dataset when ``windows`` carry no simulator states to realise from."""
    if windows.sim_states is None:
        name = "it" if dataset_id is None else repr(dataset_id)
        raise ValueError(
            f"dataset: {name} recorded no simulator states, so its improved windows cannot be realised; they can "
            "only be used unverified (rebuild it with ctflow_gym.data.build_dataset to record states)"
        )


def verify_proposals(
    refiner,
    windows: Windows,
    observations: np.ndarray,
    actions: np.ndarray,
    predicted_gain: np.ndarray | None,
    config: ImprovementConfig,
    value_fn: ValueFn | None = None,
    start_observations: np.ndarray | None = None,
) -> list[VerifiedWindow]:
    """Realise proposed windows (N, H, .) from the start states of their source ``windows`` and judge each.

    For proposals made elsewhere (e.g. Flow to Better's iterative improvement, whose
    windows descend from dataset windows); ``refiner`` only supplies the inverse-dynamics
    model for tracked execution (None: open loop only). Arguments otherwise as
    :func:`verify_windows`.
    """
    require_states(windows)
    spec = windows.sim_state_spec or REPLAY_STATE_SPEC
    starts = windows.observations[:, 0] if start_observations is None else start_observations
    tries = {
        name: realise_windows(
            windows.env_id,
            windows.sim_states,
            execution_plans(refiner, observations, actions, name),
            starts,
            spec,
            workers=config.workers,
        )
        for name in executions_for(refiner, config.execution)
    }
    # summed in step order, as the realised windows are, so an exact replay compares equal
    source_returns = [float(sum(row.tolist())) for row in windows.rewards.astype(np.float64)]
    predicted = np.full(len(windows), np.nan) if predicted_gain is None else np.asarray(predicted_gain, float)
    verified = []
    for i in range(len(windows)):
        source_terminated = bool(windows.end_terminated[i]) if windows.end_terminated is not None else False
        end = windows.end_observations[i] if windows.end_observations is not None else None
        source_score = window_score(
            source_returns[i],
            end,
            source_terminated,
            value_fn if end is not None else None,
            config.gamma,
            windows.window,
        )
        scored = [
            (_score(realised[i], value_fn, config.gamma, windows.window), name, realised[i])
            for name, realised in tries.items()
        ]
        score, name, realised = max(scored, key=lambda item: item[0])
        fell = realised.terminated and not source_terminated
        accepted = bool(score > source_score + config.min_gain and not fell)
        verified.append(VerifiedWindow(realised, name, source_score, score, float(predicted[i]), accepted))
    return verified


def _score(realised: RealisedWindow, value_fn: ValueFn | None, gamma: float, horizon: int) -> float:
    return window_score(
        realised.window_return, realised.observations[-1], realised.terminated, value_fn, gamma, horizon
    )
