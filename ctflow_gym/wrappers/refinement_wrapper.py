"""``RefinementWrapper``: refine every window of any policy's rollout, and check it in MuJoCo.

Three lines::

    env = gym.make("Hopper-v5")
    env = RefinementWrapper(env, TrajectoryRefiner.load("refiner/"), strength=0.5, replay=True)
    obs, info = env.reset(seed=0)   # then run any policy on env

Windows are consecutive and non-overlapping: steps [0, H), [H, 2H), ... of each
episode. The step that closes a window carries ``info["refinement"]``: the refined
actions and states, the predicted (proxy) gain, action and latent deviation and, with
``replay=True``, the realised returns of the source and refined windows replayed
from the window's start snapshot. An episode that ends inside a window discards the
partial window (there is nothing of length H to refine); ``reset`` starts afresh.

Modes:

- ``"shadow"`` (default): the user's episode is bit for bit what it would have been
  without the wrapper. After replay the env is restored to the snapshot taken at the
  end of the user's window (simulator state, time-limit counters, env RNG).
- ``"commit"`` (needs ``replay=True``): when the refined window's score beats the
  source's and the refined replay did not terminate, the episode continues
  from the refined window's end state. The closing step then returns: the
  observation of the refined end state; as reward, the step's own reward plus
  (refined window return - source window return), so that the episode's summed
  reward is what the committed trajectory earned; ``terminated`` False (a refined
  window that terminates is never committed); ``truncated`` as the user's step had it
  (the refined window has the same H steps, so time-limit counters do not jump).
  ``info["refinement"]["committed"]`` says whether it happened. The score is the
  window's realised return, plus gamma^H x ``value_fn`` of its end state when a
  ``value_fn`` is given (see :mod:`ctflow_gym.replay.scoring`: the return alone
  is myopic, and committing by it can lead to falls later).

If refinement or replay raises, the env is first restored to where the user's
episode was (``try/finally``) and the exception propagates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ctflow_gym.data.validation import require_strength
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.replay import (
    EnvSnapshot,
    ValueFn,
    capture_snapshot,
    has_simulator,
    replay_window,
    require_value_fn,
    restore_snapshot,
    window_score,
)
from ctflow_gym.wrappers.checks import require_env_matches_refiner

WRAPPER_MODES = ("shadow", "commit")


@dataclass
class RefinementTotals:
    """Running totals over all windows the wrapper refined."""

    windows_refined: int = 0
    windows_replayed: int = 0
    windows_committed: int = 0
    predicted_gains: list[float] = field(default_factory=list)
    realized_gains: list[float] = field(default_factory=list)

    @property
    def mean_predicted_gain(self) -> float:
        """Mean proxy gain (NaN when the refiner has no return predictor)."""
        return float(np.mean(self.predicted_gains)) if self.predicted_gains else float("nan")

    @property
    def mean_realized_gain(self) -> float:
        """Mean replayed gain, refined minus source window return (NaN without replay)."""
        return float(np.mean(self.realized_gains)) if self.realized_gains else float("nan")

    def summary(self) -> dict[str, float | int]:
        """Counts, mean proxy and realised gains per window, the realised gain's standard
        error and the fraction of replayed windows that improved (NaN where undefined)."""
        gains = np.asarray(self.realized_gains)
        return {
            "windows_refined": self.windows_refined,
            "windows_replayed": self.windows_replayed,
            "windows_committed": self.windows_committed,
            "mean_proxy_gain": self.mean_predicted_gain,
            "mean_realized_gain": self.mean_realized_gain,
            "realized_gain_se": float(gains.std(ddof=1) / np.sqrt(len(gains))) if len(gains) > 1 else float("nan"),
            "improved_fraction": float(np.mean(gains > 0)) if len(gains) else float("nan"),
        }


class RefinementWrapper(gym.Wrapper):
    """Buffers windows of any policy's rollout, refines them, optionally replays them.

    Args:
        env: a gymnasium env with 1-D Box observations and continuous actions whose
            sizes match the refiner's.
        refiner: a fitted refiner (any :class:`ctflow_gym.refine.Refiner`, e.g. a
            :class:`ctflow_gym.TrajectoryRefiner`).
        strength: refinement strength alpha >= 0.
        replay: replay each refined window in MuJoCo from its start snapshot.
        mode: ``"shadow"`` or ``"commit"`` (see the module docstring).
        steps: Euler steps of refinement (default: the refiner's); shorthand for
            ``refine_options={"steps": steps}`` (TrajectoryRefiner).
        logger: gets ``wrapper/*`` metrics of every closed window (proxy gain,
            deviations and, with replay, source/refined returns and realised gain).
        value_fn: optional V(observation) -> float; with replay, each window is also
            scored as return + gamma^H * V(end state) (``source_score`` and
            ``refined_score`` in the report), and commit mode commits by that score.
        gamma: discount of ``value_fn``.
        refine_options: further keyword arguments of ``refiner.refine``.
    """

    def __init__(
        self,
        env: gym.Env,
        refiner,
        strength: float = 1.0,
        replay: bool = False,
        mode: str = "shadow",
        steps: int | None = None,
        logger: RunLogger = NULL_LOGGER,
        value_fn: ValueFn | None = None,
        gamma: float = 0.99,
        refine_options: dict[str, Any] | None = None,
    ):
        super().__init__(env)
        require_env_matches_refiner(env, refiner)
        require_value_fn(value_fn, gamma)
        if mode not in WRAPPER_MODES:
            raise ValueError(f"mode must be one of {WRAPPER_MODES}; got {mode!r}")
        if mode == "commit" and not replay:
            raise ValueError("mode='commit' needs replay=True: only a replayed refinement can be committed")
        if replay and not has_simulator(env):
            raise TypeError(
                "replay=True needs a MuJoCo env with a simulator state to snapshot; "
                f"{type(env.unwrapped).__name__} has none"
            )
        self.refiner = refiner
        self.strength = require_strength(strength)
        self.replay = replay
        self.mode = mode
        self.steps = steps
        self.refine_options = dict(refine_options or {})
        if steps is not None:
            self.refine_options["steps"] = steps
        self.logger = logger
        self.value_fn = value_fn
        self.gamma = gamma
        self.window = refiner.window
        self.totals = RefinementTotals()
        self._clear()

    def _clear(self) -> None:
        self._observations: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._start: EnvSnapshot | None = None
        self._last_obs: np.ndarray | None = None

    def reset(self, **kwargs):
        """Reset the env and start an empty window."""
        obs, info = self.env.reset(**kwargs)
        self._clear()
        self._last_obs = np.asarray(obs)
        return obs, info

    def step(self, action):
        """Step the env; when a window closes, add ``info["refinement"]`` (see module docstring)."""
        if self._last_obs is None:
            raise RuntimeError("call reset() before step()")
        if self.replay and not self._actions:
            self._start = capture_snapshot(self.env)
        self._observations.append(self._last_obs)
        self._actions.append(np.asarray(action, dtype=np.float32))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._rewards.append(float(reward))
        self._last_obs = np.asarray(obs)
        if terminated or truncated:
            self._clear()
            return obs, reward, terminated, truncated, info
        if len(self._actions) < self.window:
            return obs, reward, terminated, truncated, info
        report, committed_obs = self._close_window()
        self.logger.log(
            {f"wrapper/{k}": float(v) for k, v in report.items() if isinstance(v, (bool, int, float))},
            step=self.totals.windows_refined,
        )
        info = dict(info)
        info["refinement"] = report
        if committed_obs is not None:
            obs = committed_obs
            reward = float(reward) + report["realized_gain"]
            self._last_obs = np.asarray(obs)
        return obs, reward, terminated, truncated, info

    def _close_window(self) -> tuple[dict[str, Any], np.ndarray | None]:
        observations = np.stack(self._observations)[None]
        actions = np.stack(self._actions)[None]
        source_return = float(np.sum(self._rewards))
        start = self._start
        self._observations, self._actions, self._rewards = [], [], []
        result = self.refiner.refine(observations, actions, strength=self.strength, **self.refine_options)
        report: dict[str, Any] = {
            "source_actions": actions[0],
            "actions": result.actions[0],
            "observations": result.observations[0],
            "predicted_gain": None if result.predicted_gain is None else float(result.predicted_gain[0]),
            "action_deviation": None if result.action_deviation is None else float(result.action_deviation[0]),
            "latent_deviation": None if result.latent_deviation is None else float(result.latent_deviation[0]),
            "source_return": source_return,
            "committed": False,
        }
        self.totals.windows_refined += 1
        if report["predicted_gain"] is not None:
            self.totals.predicted_gains.append(report["predicted_gain"])
        if not self.replay:
            return report, None
        end = capture_snapshot(self.env)
        keep_refined = False
        try:
            # The user's window closed without terminating (a terminated window is discarded).
            source_score = window_score(source_return, self._last_obs, False, self.value_fn, self.gamma, self.window)
            refined = replay_window(self.env, start, result.actions[0], self.value_fn, self.gamma)
            keep_refined = self.mode == "commit" and not refined.terminated and refined.score > source_score
        finally:
            if keep_refined:
                # The time-limit counters and RNG stay the user's: the window had H steps either way.
                restore_snapshot(
                    self.env, EnvSnapshot(capture_snapshot(self.env).sim_state, end.elapsed_steps, end.rng_state)
                )
            else:
                restore_snapshot(self.env, end)
        report.update(
            realized_return=refined.window_return,
            realized_gain=refined.window_return - source_return,
            refined_terminated=refined.terminated,
            source_score=source_score,
            refined_score=refined.score,
            committed=keep_refined,
        )
        self.totals.windows_replayed += 1
        self.totals.realized_gains.append(report["realized_gain"])
        if keep_refined:
            self.totals.windows_committed += 1
            return report, np.asarray(refined.end_observation)
        return report, None
