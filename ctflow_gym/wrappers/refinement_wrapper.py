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

In commit mode the closing step's ``info`` describes the state the episode continues
from: the unwrapped env's keys (Hopper's ``x_position``, ...) are those of the refined
window's last replayed step, and a ``info["sim_state"]`` put there by a
:class:`~ctflow_gym.replay.SimStateRecorder` *inside* this wrapper is re-read after the
commit. The recommended order for recording is the recorder outside
(``SimStateRecorder(RefinementWrapper(env, ...))``), which reads the state after this
wrapper is done in any case.

Env specs (``env.spec``, ``gym.make(env.spec)``, gymnasium's ``check_env``, the env
spec Minari stores with a dataset): the wrapper records its constructor arguments.

- ``refiner``: the checkpoint folder it was last saved to or loaded from (its optional
  ``checkpoint_path``; :func:`ctflow_gym.load_refiner` and ``TrajectoryRefiner.save``
  set it), read when ``env.spec`` is read. ``gym.make(env.spec)`` then loads it with
  :func:`ctflow_gym.load_refiner`; the constructor also takes such a folder in place
  of a refiner. A refiner that exists only in memory (fitted, never saved, or changed
  since) is recorded as a handle ``"<in-memory TrajectoryRefiner 3f2a...>"``: valid
  JSON that says so, which rebuilds the env in the same process while the refiner
  lives (so ``check_env`` passes), and anywhere else makes ``gym.make`` raise a
  ``ValueError`` naming ``refiner`` and saying to save it (see
  :mod:`ctflow_gym.wrappers.spec_args`).
- ``value_fn``: None, or likewise an in-memory handle (a function cannot be written
  to JSON): in another process ``gym.make`` raises naming ``value_fn``; rebuild with
  ``RefinementWrapper(env, refiner_folder, value_fn=...)`` there.
- ``logger`` is not recorded: it changes no step, and an env rebuilt from the spec
  (by ``check_env``, ``gym.make`` or ``dataset.recover_environment()``) logs nowhere
  instead of into the original run; set ``env.logger`` on the rebuilt env to log.
- ``strength``, ``replay``, ``mode``, ``steps``, ``gamma``, ``refine_options`` are
  recorded as given (``refine_options`` must hold JSON values for ``to_json``).

Vector envs: the wrapper works inside ``gymnasium.vector.SyncVectorEnv`` /
``AsyncVectorEnv`` and SB3's ``DummyVecEnv`` / ``SubprocVecEnv``; reports reach the
caller in the vector env's infos (``infos["refinement"]`` with the ``"_refinement"``
mask in gymnasium, ``infos[i]["refinement"]`` in SB3). A fitted ``TrajectoryRefiner``
pickles to worker processes; passing the checkpoint folder instead lets each worker
load its own copy. Start worker processes with ``"spawn"`` or ``"forkserver"``
(``AsyncVectorEnv(..., context="spawn")``; SB3's ``SubprocVecEnv`` uses
``"forkserver"`` by default): with Linux's default ``"fork"``, a worker that refines
deadlocks once the parent process has run torch on more than one thread. With SB3, put
``Monitor`` outside this wrapper so that episode returns include what committed windows
earned (``make_vec_env(wrapper_class=...)`` puts it inside).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from ctflow_gym.data.validation import require_strength
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.refine.contract import refiner_checkpoint_path
from ctflow_gym.refine.execution import resolve_execution
from ctflow_gym.refine.registry import load_refiner
from ctflow_gym.replay import (
    REPLAY_STATE_SPEC,
    SIM_STATE_INFO_KEY,
    EnvSnapshot,
    SimStateRecorder,
    ValueFn,
    WindowReplay,
    capture_snapshot,
    get_sim_state,
    has_simulator,
    require_value_fn,
    restore_snapshot,
    window_score,
)
from ctflow_gym.statistics import mean_se
from ctflow_gym.wrappers.candidates import refine_candidates, replay_candidates, require_candidates
from ctflow_gym.wrappers.checks import require_env_matches_refiner
from ctflow_gym.wrappers.spec_args import in_memory_handle, is_in_memory_handle, resolve_in_memory

WRAPPER_MODES = ("shadow", "commit")


@dataclass
class RefinementTotals:
    """Running totals over all windows the wrapper refined."""

    windows_refined: int = 0
    windows_replayed: int = 0
    windows_committed: int = 0
    predicted_gains: list[float] = field(default_factory=list)
    realized_gains: list[float] = field(default_factory=list)
    source_returns: list[float] = field(default_factory=list)
    """The policy's own return of each replayed window (the baseline of its realised gain)."""

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
        error, the fraction of replayed windows that improved and the mean return of the
        replayed windows, the policy's own and refined (NaN where undefined)."""
        gains, sources = np.asarray(self.realized_gains), np.asarray(self.source_returns)
        return {
            "windows_refined": self.windows_refined,
            "windows_replayed": self.windows_replayed,
            "windows_committed": self.windows_committed,
            "mean_proxy_gain": self.mean_predicted_gain,
            "mean_realized_gain": self.mean_realized_gain,
            "realized_gain_se": mean_se(gains)["se"] if len(gains) else float("nan"),
            "improved_fraction": float(np.mean(gains > 0)) if len(gains) else float("nan"),
            "mean_source_return": float(sources.mean()) if len(sources) else float("nan"),
            "mean_refined_return": float((sources + gains).mean()) if len(sources) else float("nan"),
        }


class RefinementWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Buffers windows of any policy's rollout, refines them, optionally replays them.

    Records its arguments for ``env.spec`` (see the module docstring), so that
    ``gym.make(env.spec)`` rebuilds it and gymnasium's ``check_env`` passes.

    Args:
        env: a gymnasium env with 1-D Box observations and continuous actions whose
            sizes match the refiner's.
        refiner: a fitted refiner (any :class:`ctflow_gym.refine.Refiner`, e.g. a
            :class:`ctflow_gym.TrajectoryRefiner`), or the checkpoint folder of one
            (loaded with :func:`ctflow_gym.load_refiner`).
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
            Not serialisable: ``env.spec`` records it as an in-memory handle.
        gamma: discount of ``value_fn``.
        refine_options: further keyword arguments of ``refiner.refine``.
        candidates: refined windows per window (strength ladder, see
            :mod:`~ctflow_gym.wrappers.candidates`); with replay the best by score is
            reported (and committed in commit mode). More than one needs ``replay=True``.
        execution: how a refined window is replayed: ``"auto"`` (tracked when the
            refiner has an inverse-dynamics model), ``"open_loop"`` or ``"tracked"``
            (:mod:`~ctflow_gym.refine.execution`).
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
        candidates: int = 1,
        execution: str = "auto",
    ):
        gym.Wrapper.__init__(self, env)
        self._handles: dict[str, tuple[Any, str]] = {}  # argument -> (object, its in-memory handle)
        refiner = self._resolve_refiner(refiner)
        if is_in_memory_handle(value_fn):
            handle = value_fn
            value_fn = resolve_in_memory(
                handle, "value_fn", "Rebuild the wrapper there with RefinementWrapper(env, refiner, value_fn=...)."
            )
            self._handles["value_fn"] = (value_fn, handle)
        require_env_matches_refiner(env, refiner)
        require_value_fn(value_fn, gamma)
        if refine_options is not None and not isinstance(refine_options, dict):
            raise TypeError(
                f"refine_options must be a dict of keyword arguments or None; got {type(refine_options).__name__}"
            )
        if mode not in WRAPPER_MODES:
            raise ValueError(f"mode must be one of {WRAPPER_MODES}; got {mode!r}")
        if mode == "commit" and not replay:
            raise ValueError("mode='commit' needs replay=True: only a replayed refinement can be committed")
        if replay and not has_simulator(env):
            raise TypeError(
                "replay=True needs a MuJoCo env with a simulator state to snapshot; "
                f"{type(env.unwrapped).__name__} has none"
            )
        self.candidates = require_candidates(candidates, replay, "replay")
        self.execution = execution
        self._execution = resolve_execution(refiner, execution)
        self.refiner = refiner
        self.strength = require_strength(strength)
        self.replay = replay
        self.mode = mode
        self.steps = steps
        self._refine_options_given = copy.deepcopy(refine_options)
        self.refine_options = dict(refine_options or {})
        if steps is not None:
            self.refine_options["steps"] = steps
        self.logger = logger
        self.value_fn = value_fn
        self.gamma = gamma
        self.window = refiner.window
        self.totals = RefinementTotals()
        self._clear()

    def _resolve_refiner(self, refiner):
        """The refiner object for the ``refiner`` argument: itself, loaded from a folder, or an in-memory handle's."""
        if is_in_memory_handle(refiner):
            handle = refiner
            refiner = resolve_in_memory(
                handle,
                "refiner",
                "Save the refiner (refiner.save(folder)) or load it with ctflow_gym.load_refiner(folder) before "
                "reading env.spec: the spec then records that folder.",
            )
            self._handles["refiner"] = (refiner, handle)
            return refiner
        if isinstance(refiner, (str, os.PathLike)):
            try:
                return load_refiner(refiner)
            except FileNotFoundError as error:
                message = f"refiner: {str(refiner)!r} is not a refiner checkpoint folder ({error})"
                raise FileNotFoundError(message) from error
        return refiner

    # ------------------------------------------------------------------ env spec
    @property
    def _saved_kwargs(self) -> dict[str, Any]:
        """The constructor arguments ``env.spec`` records (gymnasium's ``RecordConstructorArgs`` reads this name).

        Computed when read, so a refiner saved after wrapping is recorded by its folder.
        """
        return {
            "refiner": refiner_checkpoint_path(self.refiner) or self._in_memory("refiner", self.refiner),
            "strength": self.strength,
            "replay": self.replay,
            "mode": self.mode,
            "steps": self.steps,
            "value_fn": None if self.value_fn is None else self._in_memory("value_fn", self.value_fn),
            "gamma": float(self.gamma),
            "refine_options": copy.deepcopy(self._refine_options_given),
            "candidates": self.candidates,
            "execution": self.execution,
        }

    def _in_memory(self, argument: str, obj: Any) -> str:
        """The in-memory handle recorded for ``argument`` (one per object, kept while the object stays the same)."""
        known = self._handles.get(argument)
        if known is None or known[0] is not obj:
            known = self._handles[argument] = (obj, in_memory_handle(obj))
        return known[1]

    @property
    def spec(self):
        """The inner env's spec with this wrapper's ``WrapperSpec`` appended (None when the env has no spec).

        Re-read on every access (gymnasium caches it), so that it names the refiner's
        checkpoint folder once the refiner has been saved.
        """
        self._cached_spec = None
        return super().spec

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
        report, committed = self._close_window()
        self.logger.log(
            {f"wrapper/{k}": float(v) for k, v in report.items() if isinstance(v, (bool, int, float))},
            step=self.totals.windows_refined,
        )
        info = dict(info)
        if committed is not None:
            obs = np.asarray(committed.end_observation)
            reward = float(reward) + report["realized_gain"]
            self._last_obs = obs
            info.update(committed.end_info)
            if SIM_STATE_INFO_KEY in info:
                info[SIM_STATE_INFO_KEY] = get_sim_state(self.env, self._inner_sim_state_spec())
        info["refinement"] = report
        return obs, reward, terminated, truncated, info

    def _inner_sim_state_spec(self) -> int:
        """The state spec of the first :class:`SimStateRecorder` inside this wrapper (default ``REPLAY_STATE_SPEC``)."""
        env = self.env
        while isinstance(env, gym.Wrapper):
            if isinstance(env, SimStateRecorder):
                return env.state_spec
            env = env.env
        return REPLAY_STATE_SPEC

    def _close_window(self) -> tuple[dict[str, Any], WindowReplay | None]:
        """Refine (and replay) the closed window: its report, and its replay when it was committed."""
        observations = np.stack(self._observations)[None]
        actions = np.stack(self._actions)[None]
        source_return = float(np.sum(self._rewards))
        start = self._start
        self._observations, self._actions, self._rewards = [], [], []
        made = refine_candidates(
            self.refiner,
            observations,
            actions,
            self.strength,
            self.candidates,
            self._execution,
            self.refine_options,
            window_index=self.totals.windows_refined,
        )
        report: dict[str, Any] = {
            "source_actions": actions[0],
            "source_return": source_return,
            "committed": False,
        }
        self.totals.windows_refined += 1
        if not self.replay:
            report.update(self._refined_fields(made[0]))
            if report["predicted_gain"] is not None:
                self.totals.predicted_gains.append(report["predicted_gain"])
            return report, None
        end = capture_snapshot(self.env)
        keep_refined = False
        try:
            # The user's window closed without terminating (a terminated window is discarded).
            source_score = window_score(source_return, self._last_obs, False, self.value_fn, self.gamma, self.window)
            best, replays, _, ends = replay_candidates(
                self.env, start, made, observations[0, 0], self.value_fn, self.gamma
            )
            refined = replays[best]
            keep_refined = self.mode == "commit" and not refined.terminated and refined.score > source_score
        finally:
            if keep_refined:
                # The time-limit counters and RNG stay the user's: the window had H steps either way.
                restore_snapshot(self.env, EnvSnapshot(ends[best].sim_state, end.elapsed_steps, end.rng_state))
            else:
                restore_snapshot(self.env, end)
        report.update(self._refined_fields(made[best]))
        if report["predicted_gain"] is not None:
            self.totals.predicted_gains.append(report["predicted_gain"])
        report.update(
            executed_actions=refined.actions,
            realized_return=refined.window_return,
            realized_gain=refined.window_return - source_return,
            refined_terminated=refined.terminated,
            source_score=source_score,
            refined_score=refined.score,
            committed=keep_refined,
        )
        if self.candidates > 1:
            report.update(chosen_candidate=best, candidate_scores=[r.score for r in replays])
        self.totals.windows_replayed += 1
        self.totals.realized_gains.append(report["realized_gain"])
        self.totals.source_returns.append(source_return)
        if keep_refined:
            self.totals.windows_committed += 1
            return report, refined
        return report, None

    @staticmethod
    def _refined_fields(candidate) -> dict[str, Any]:
        """The report's fields describing one refined candidate."""
        result = candidate.result
        return {
            "actions": result.actions[0],
            "observations": result.observations[0],
            "strength": candidate.strength,
            "predicted_gain": None if result.predicted_gain is None else float(result.predicted_gain[0]),
            "action_deviation": None if result.action_deviation is None else float(result.action_deviation[0]),
            "latent_deviation": None if result.latent_deviation is None else float(result.latent_deviation[0]),
        }
