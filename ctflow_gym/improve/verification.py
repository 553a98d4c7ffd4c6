"""Verified improvement of windows: refine, realise in MuJoCo, keep what really got better.

For each source window (with its recorded start state) the refiner proposes improved
windows (one per strength and sample, :class:`~ctflow_gym.improve.ImprovementConfig`);
each proposal is realised from the source's start state
(:func:`ctflow_gym.replay.realisation.realise_windows`), open loop and, where the
refiner has an inverse-dynamics model, tracked, and the realisation with the highest
score is the candidate. It is kept when

    score(realised) > score(source) + min_gain,
    score = return + [policy's continuation return] + gamma^T V(s_end)

(the tail only with a value function, and 0 after a termination), and it does not
terminate where the source did not: a fall is never an improvement. Without a
continuation the source's score uses its recorded rewards, which its replay reproduces
bit for bit. With one (``continuation`` > 0 and the policy that will act after the
window), both windows are followed by ``continuation`` steps of that policy from their
end states (:mod:`ctflow_gym.replay.continuation`), so a window is judged by what it is
worth to that policy: keeping it is then a verified step of policy improvement over the
policy, window by window, and the value tail (if any) is taken where the continuation ends.
With ``commit_steps`` = k < H only each proposal's first k actions are realised (and
the source's first k steps replayed) before the continuation: what is verified is then
"these k actions, then the policy", a decision a reactive policy can take.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ctflow_gym.data.windows import Windows
from ctflow_gym.improve.config import ImprovementConfig
from ctflow_gym.refine.execution import execution_plans, resolve_execution
from ctflow_gym.replay.continuation import policy_continuations
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
    policy: Any = None,
) -> list[VerifiedWindow]:
    """Refine ``windows``, realise each proposal and judge it (module docstring); one result per window.

    Every strength of ``config.strengths()`` makes ``config.samples`` proposals per window
    (the first as ``refine`` gives it, the others drawn with ``config.noise``), and the best
    realised of them all is the candidate. ``start_observations`` (N, obs_dim): each
    window's first observation as the dataset recorded it (full precision, written as the
    realised episode's first observation); default: the windows' own (float32) copies.
    ``policy``: the policy whose ``config.continuation`` steps after each window count in
    its score (needed when that is > 0).
    """
    require_states(windows)
    takes_noise = "noise" in inspect.signature(refiner.refine).parameters
    proposals = []
    for strength in config.strengths():
        for sample in range(config.samples):
            # the first sample is refine's own; extra ones differ by seed, and by noise where refine takes it
            options = {"noise": config.noise} if sample and takes_noise else {}
            result = refiner.refine(
                windows.observations, windows.actions, strength=strength, seed=config.seed + sample, **options
            )
            proposals.append((result.observations, result.actions, result.predicted_gain))
    return judge_proposals(refiner, windows, proposals, config, value_fn, start_observations, policy)


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
    policy: Any = None,
) -> list[VerifiedWindow]:
    """Realise proposed windows (N, H, .) from the start states of their source ``windows`` and judge each.

    For proposals made elsewhere (e.g. Flow to Better's iterative improvement, whose
    windows descend from dataset windows); ``refiner`` only supplies the inverse-dynamics
    model for tracked execution (None: open loop only). Arguments otherwise as
    :func:`verify_windows`.
    """
    return judge_proposals(
        refiner, windows, [(observations, actions, predicted_gain)], config, value_fn, start_observations, policy
    )


def judge_proposals(
    refiner,
    windows: Windows,
    proposals: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    config: ImprovementConfig,
    value_fn: ValueFn | None = None,
    start_observations: np.ndarray | None = None,
    policy: Any = None,
) -> list[VerifiedWindow]:
    """Realise every ``(observations, actions, predicted_gain)`` proposal for ``windows``; judge the best per window.

    Each proposal is realised with every execution of ``config.execution``; per window the
    realisation with the highest score is the candidate, compared with the source's score
    (module docstring). With ``config.continuation`` > 0 both scores include ``policy``'s
    continuation from the window's end state (:mod:`ctflow_gym.replay.continuation`; the
    source's end state comes from replaying it, which is exact).
    """
    require_states(windows)
    if config.continuation and policy is None:
        raise ValueError(f"policy: continuation={config.continuation} scores windows by what a policy does after "
                         "them; pass the policy (an SB3 model or a batch callable)")  # fmt: skip
    spec = windows.sim_state_spec or REPLAY_STATE_SPEC
    starts = windows.observations[:, 0] if start_observations is None else start_observations
    commit = committed_steps(config, windows.window)
    tries = []  # (realised windows, execution, predicted gains) per proposal and execution
    for observations, actions, predicted_gain in proposals:
        require_one_per_window(windows, observations, actions)
        predicted = np.full(len(windows), np.nan) if predicted_gain is None else np.asarray(predicted_gain, float)
        for name in executions_for(refiner, config.execution):
            # a tracked plan keeps every planned state (step k's correction steers toward state k + 1)
            plans = execution_plans(refiner, observations, np.asarray(actions)[:, :commit], name)
            realised = realise_windows(windows.env_id, windows.sim_states, plans, starts, spec, workers=config.workers)
            tries.append((realised, name, predicted))
    source_scores, source_terminated = _source_scores(windows, starts, spec, config, value_fn, policy, commit)
    scores = _realised_scores([realised for realised, _, _ in tries], windows, spec, config, value_fn, policy)
    verified = []
    for i in range(len(windows)):
        best = int(np.argmax(scores[:, i]))
        realised, name, predicted = tries[best]
        fell = realised[i].terminated and not source_terminated[i]
        accepted = bool(scores[best, i] > source_scores[i] + config.min_gain and not fell)
        verified.append(
            VerifiedWindow(realised[i], name, source_scores[i], scores[best, i], float(predicted[i]), accepted)
        )
    return verified


def require_one_per_window(windows: Windows, observations, actions) -> None:
    """Raise ``ValueError`` naming ``observations`` and ``actions`` unless they hold one proposal per window."""
    if np.shape(observations)[:2] != windows.observations.shape[:2] or len(actions) != len(windows):
        raise ValueError(
            f"observations and actions must hold one proposal per window {windows.observations.shape[:2]}; "
            f"got {np.shape(observations)} and {np.shape(actions)}"
        )


def committed_steps(config: ImprovementConfig, window: int) -> int:
    """The steps of each proposal realised: ``config.commit_steps`` (checked against ``window``) or all of them."""
    if config.commit_steps is None:
        return window
    if config.commit_steps > window:
        raise ValueError(f"commit_steps must be at most the refiner's window ({window}); got {config.commit_steps}")
    return config.commit_steps


def _source_scores(
    windows: Windows, starts, spec: int, config: ImprovementConfig, value_fn, policy, commit: int
) -> tuple[np.ndarray, np.ndarray]:
    """The source windows' scores and whether each terminated: from the recorded steps (return + tail), or, with
    a continuation or fewer steps committed than the window, from an exact replay of its first ``commit`` steps."""
    terminated = np.zeros(len(windows), dtype=bool)
    if windows.end_terminated is not None:
        terminated[:] = windows.end_terminated
    if config.continuation or commit < windows.window:
        replayed = realise_windows(
            windows.env_id, windows.sim_states, windows.actions[:, :commit], starts, spec, workers=config.workers
        )
        scores = _realised_scores([replayed], windows, spec, config, value_fn, policy)[0]
        return scores, np.array([r.terminated for r in replayed])
    # summed in step order, as the realised windows are, so an exact replay compares equal
    source_returns = [float(sum(row.tolist())) for row in windows.rewards.astype(np.float64)]
    scores = np.empty(len(windows))
    for i in range(len(windows)):
        end = windows.end_observations[i] if windows.end_observations is not None else None
        scores[i] = window_score(
            source_returns[i], end, bool(terminated[i]), value_fn if end is not None else None, config.gamma,
            windows.window,
        )  # fmt: skip
    return scores, terminated


def _realised_scores(tries: list[list[RealisedWindow]], windows: Windows, spec: int, config, value_fn, policy):
    """(tries, N) scores of realised windows: return [+ the policy's continuation] [+ the value tail]."""
    flat = [realised for realised_windows in tries for realised in realised_windows]
    if not config.continuation:
        return np.array([_score(r, value_fn, config.gamma, len(r)) for r in flat]).reshape(len(tries), -1)
    going = [k for k, r in enumerate(flat) if not r.terminated]
    after = policy_continuations(
        windows.env_id,
        np.array([flat[k].sim_states[-1] for k in going]),
        np.array([flat[k].observations[-1] for k in going]),
        policy,
        config.continuation,
        spec,
    )
    scores = np.array([r.window_return for r in flat])
    for j, k in enumerate(going):
        scores[k] = window_score(
            flat[k].window_return + after.returns[j], after.end_observations[j], bool(after.terminated[j]),
            value_fn, config.gamma, len(flat[k]) + int(after.steps[j]),
        )  # fmt: skip
    return scores.reshape(len(tries), -1)


def _score(realised: RealisedWindow, value_fn: ValueFn | None, gamma: float, horizon: int) -> float:
    return window_score(
        realised.window_return, realised.observations[-1], realised.terminated, value_fn, gamma, horizon
    )
