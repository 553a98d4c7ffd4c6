"""``RefinedPolicy``: a refiner attached after any policy, with SB3's ``predict``.

At the start of each window it looks ahead in a snapshot of the simulator: the base
policy is rolled forward H steps from the current state, that window is refined
(``candidates`` times, :mod:`~ctflow_gym.wrappers.candidates`), and, with
``verify=True``, each refined window is replayed from the same snapshot and the best
is kept only if its score (return, plus a value tail with ``value_fn``) beats the base
window's (otherwise the base window is kept). The env is then restored exactly and the
chosen window is executed one step per ``predict``: open loop, or tracked toward its
planned states (``execution``, :mod:`~ctflow_gym.refine.execution`), exactly as it was
replayed. If the look-ahead episode ends inside the window there is no full window to
refine and the base actions are used. ``simulator_steps`` counts every look-ahead and
replayed step (the verification budget).

On a MuJoCo env the look-ahead runs in the env itself between an exact snapshot and
its restore. Any other env gets refinement without replay: ``verify`` must be False,
and the look-ahead runs in a ``copy.deepcopy`` of the unwrapped env (so the env must
be deep-copyable, as pure-Python envs such as Pendulum are). Works with
``stable_baselines3.common.evaluation.evaluate_policy`` on the same env object (one
env; ``episode_start`` drops the current plan).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from ctflow_gym.data.actor_policies import policy_action_fn
from ctflow_gym.data.validation import require_int, require_observation, require_strength
from ctflow_gym.refine.execution import resolve_execution
from ctflow_gym.replay import (
    ValueFn,
    capture_snapshot,
    has_simulator,
    require_value_fn,
    restore_snapshot,
    sb3_value_function,
    window_score,
)
from ctflow_gym.replay.stepping import ActionPlan
from ctflow_gym.wrappers.candidates import refine_candidates, replay_candidates, require_candidates
from ctflow_gym.wrappers.checks import (
    require_action_shape,
    require_env_at,
    require_env_matches_refiner,
    require_policy_matches_env,
)

__all__ = ["RefinedPolicy", "sb3_value_function"]


class RefinedPolicy:
    """Base policy + refiner, executed window by window.

    Args:
        policy: an SB3 model (anything with ``predict(obs, deterministic=...)``) or a
            callable from an observation to an action. A policy that declares its
            spaces (an SB3 model, an agent of this package) is checked against ``env``
            here, a callable at its first action: a ``ValueError`` naming ``policy``
            rather than an error deep inside its first ``predict``.
        refiner: a fitted refiner with the env's sizes (any :class:`ctflow_gym.refine.Refiner`).
        env: the MuJoCo env the policy acts in (the same object the caller steps).
        strength: refinement strength alpha >= 0.
        verify: replay the refined window and keep the better of base and refined.
        deterministic: passed to the base policy's ``predict``.
        value_fn: optional V(observation) -> float. With it, verification compares
            window return + gamma^H * V(end observation) (0 after a termination)
            instead of the window return alone, which is myopic (see
            :mod:`ctflow_gym.replay.scoring`; recommended).
            :func:`sb3_value_function` makes one from an SB3 SAC/TD3 critic.
        gamma: discount of ``value_fn``.
        candidates: refined windows per window (strength ladder; see
            :mod:`~ctflow_gym.wrappers.candidates`); more than one needs ``verify=True``.
        execution: ``"auto"`` (tracked when the refiner has an inverse-dynamics
            model), ``"open_loop"`` or ``"tracked"``.
        refine_options: further keyword arguments of ``refiner.refine``.
        continuation: steps of the base policy run after each replayed window (the
            base window and every candidate alike) before it is scored: score =
            return of the H + ``continuation`` steps + gamma^(H + continuation) V(end).
            A window that leaves the policy in a state it falls from soon after is then
            charged for the fall, which a value function fitted on other data may not
            foresee. Costs ``continuation`` simulator steps per scored window.
        replan_every: receding horizon: execute only the first m steps of each chosen
            window, then look ahead, refine (and verify) again from the state actually
            reached. None (default) executes whole windows (m = H). A smaller m plans
            from where the system is more often, at H/m times the look-ahead (and
            replay) cost; refined windows are still planned and scored over H steps.
    """

    def __init__(
        self,
        policy,
        refiner,
        env: gym.Env,
        strength: float = 1.0,
        verify: bool = True,
        deterministic: bool = True,
        value_fn: ValueFn | None = None,
        gamma: float = 0.99,
        candidates: int = 1,
        execution: str = "auto",
        refine_options: dict[str, Any] | None = None,
        continuation: int = 0,
        replan_every: int | None = None,
    ):
        require_value_fn(value_fn, gamma)
        require_int(continuation, "continuation", least=0, numpy_integers=True)
        if continuation and not verify:
            raise ValueError(f"continuation={continuation} needs verify=True: it lengthens the verification replay")
        self.continuation = int(continuation)
        self.candidates = require_candidates(candidates, verify, "verify")
        self._snapshots = has_simulator(env)
        if not self._snapshots:
            if verify:
                raise TypeError(
                    f"env: verify=True replays from a MuJoCo snapshot; {type(env.unwrapped).__name__} has none. "
                    "Pass verify=False for refinement without replay (the look-ahead then runs in a deep copy "
                    "of the env)"
                )
            try:
                copy.deepcopy(env.unwrapped)
            except Exception as error:
                raise TypeError(
                    (
                        f"env: {type(env.unwrapped).__name__} has no MuJoCo state and cannot be deep-copied for the "
                        f"look-ahead ({error})"
                    )
                ) from error
        require_env_matches_refiner(env, refiner)
        require_policy_matches_env(policy, env)
        self.base: Callable[[np.ndarray], np.ndarray] = policy_action_fn(policy, deterministic)
        self.refiner = refiner
        self.env = env
        self.strength = require_strength(strength)
        self.verify = verify
        self.value_fn = value_fn
        self.gamma = gamma
        self.execution = resolve_execution(refiner, execution)
        self.refine_options = dict(refine_options or {})
        self.window = refiner.window
        if replan_every is None:
            replan_every = self.window
        if (
            isinstance(replan_every, bool)
            or not isinstance(replan_every, (int, np.integer))
            or not 1 <= replan_every <= self.window
        ):
            raise ValueError(f"replan_every must be None or an integer in [1, {self.window}]; got {replan_every!r}")
        self.replan_every = int(replan_every)
        self._plan: Any = None
        self._step = 0
        self.simulator_steps = 0
        self.history: list[dict[str, Any]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3-style ``predict``: returns ``(action, state)``; batched input of one env works.

        An observation of another shape than the env's, or holding NaN or inf, is a
        ``ValueError`` naming ``observation``: a NaN would otherwise reach the policy
        and the refiner and come back as NaN actions.
        """
        observation = require_observation(observation, self.refiner.obs_dim)
        batched = observation.ndim == 2
        if batched and observation.shape[0] != 1:
            raise ValueError(f"observation: RefinedPolicy drives one env; got a batch of {observation.shape[0]}")
        obs = observation[0] if batched else observation
        if episode_start is not None and np.any(episode_start):
            self._plan = None
        if self._plan is None or self._step >= min(len(self._plan), self.replan_every):
            self._plan, self._step = self.plan(obs), 0
        plan, t = self._plan, self._step
        action = plan.action(obs, t) if isinstance(plan, ActionPlan) else plan[t]
        self._step += 1
        return (action[None] if batched else action), state

    def _base_action(self, observation: np.ndarray) -> np.ndarray:
        """The base policy's action, checked to have the env's shape (a callable's first chance to be checked)."""
        return require_action_shape(np.asarray(self.base(observation), dtype=np.float32), self.env)

    def _score(self, window_return: float, observation, terminated: bool) -> float:
        """Score a replayed window whose env is left at its end: run the continuation, add the value tail."""
        total, steps = window_return, self.window
        base = self.env.unwrapped
        for _ in range(0 if terminated else self.continuation):
            observation, reward, terminated, _, _ = base.step(self._base_action(observation))
            total, steps = total + float(reward), steps + 1
            self.simulator_steps += 1
            if terminated:
                break
        return window_score(total, observation, terminated, self.value_fn, self.gamma, steps)

    def plan(self, observation: np.ndarray):
        """The window ``predict`` executes from the env's current state, whose observation is ``observation``.

        Looks ahead, refines and (with ``verify``) replays and chooses, as described in the
        class docstring, and leaves the env exactly where it was. Returns the chosen
        window's actions, (H, act_dim), or an :class:`~ctflow_gym.replay.stepping.ActionPlan`
        for tracked execution; the base policy's actions (fewer than H where the look-ahead
        episode ends inside the window) when the base window is kept. Appends its record
        to ``history``. What :func:`ctflow_gym.improve.distill` asks of a teacher.
        """
        require_env_at(self.env, observation)
        if self._snapshots:
            base, start = self.env.unwrapped, capture_snapshot(self.env)
        else:
            base, start = copy.deepcopy(self.env.unwrapped), None
        try:
            observations, actions, rewards = [], [], []
            obs = observation
            for _ in range(self.window):
                action = self._base_action(obs)
                observations.append(obs)
                actions.append(action)
                obs, reward, terminated, _, _ = base.step(action)
                rewards.append(float(reward))
                if terminated:
                    break
            if self._snapshots:
                self.simulator_steps += len(actions)
            if len(actions) < self.window:
                self.history.append({"refined": False, "reason": "episode ends inside the look-ahead"})
                return actions
            made = refine_candidates(
                self.refiner,
                np.stack(observations)[None],
                np.stack(actions)[None],
                self.strength,
                self.candidates,
                self.execution,
                self.refine_options,
                window_index=len(self.history),
            )
            chosen = made[0]
            # summed in step order, as every replay sums its window: an identical window scores exactly the same
            record: dict[str, Any] = {"refined": True, "source_return": float(sum(rewards))}
            if not self.verify and getattr(chosen.result, "gated", None) is not None and chosen.result.gated[0]:
                record.update(refined=False, reason="the refiner's agreement gate kept the base window")
                self.history.append(record)
                return actions
            if self.verify:
                source_score = self._score(record["source_return"], obs, terminated)
                best, replays, scores, _ = replay_candidates(
                    self.env,
                    start,
                    made,
                    observation,
                    None,
                    self.gamma,
                    rescore=lambda r: self._score(r.window_return, r.end_observation, False),
                )
                self.simulator_steps += sum(len(r.actions) for r in replays)
                chosen = made[best]
                record.update(refined_return=replays[best].window_return, strength=chosen.strength)
                if replays[best].terminated or scores[best] <= source_score:
                    record.update(refined=False, reason="verification kept the base window")
                    self.history.append(record)
                    return actions
            gain = chosen.result.predicted_gain
            record["predicted_gain"] = None if gain is None else float(gain[0])
            self.history.append(record)
            return chosen.plan
        finally:
            if start is not None:
                restore_snapshot(self.env, start)
