"""``RefinedPolicy``: a refiner attached after any policy, with SB3's ``predict``.

At the start of each window it looks ahead in a snapshot of the simulator: the base
policy is rolled forward H steps from the current state, that window is refined, and,
with ``verify=True``, the refined actions are replayed from the same snapshot and kept
only if their realised return is higher (otherwise the base window is kept). The env
is then restored exactly and the chosen H actions are executed one per ``predict``.
If the look-ahead episode ends inside the window there is no full window to refine
and the base actions are used.

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

from ctflow_gym.data.validation import require_strength
from ctflow_gym.replay import (
    ValueFn,
    capture_snapshot,
    has_simulator,
    replay_window,
    require_value_fn,
    restore_snapshot,
    sb3_value_function,
    window_score,
)
from ctflow_gym.wrappers.checks import require_env_matches_refiner
from ctflow_gym.wrappers.episodes import policy_action_fn

__all__ = ["RefinedPolicy", "sb3_value_function"]


class RefinedPolicy:
    """Base policy + refiner, executed window by window.

    Args:
        policy: an SB3 model (anything with ``predict(obs, deterministic=...)``) or a
            callable from an observation to an action.
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
    ):
        require_value_fn(value_fn, gamma)
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
        self.base: Callable[[np.ndarray], np.ndarray] = policy_action_fn(policy, deterministic)
        self.refiner = refiner
        self.env = env
        self.strength = require_strength(strength)
        self.verify = verify
        self.value_fn = value_fn
        self.gamma = gamma
        self.window = refiner.window
        self._plan: list[np.ndarray] = []
        self.history: list[dict[str, Any]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3-style ``predict``: returns ``(action, state)``; batched input of one env works."""
        observation = np.asarray(observation)
        batched = observation.ndim == 2
        if batched and observation.shape[0] != 1:
            raise ValueError(f"observation: RefinedPolicy drives one env; got a batch of {observation.shape[0]}")
        if episode_start is not None and np.any(episode_start):
            self._plan = []
        if not self._plan:
            self._plan = self._plan_window(observation[0] if batched else observation)
        action = self._plan.pop(0)
        return (action[None] if batched else action), state

    def _plan_window(self, observation: np.ndarray) -> list[np.ndarray]:
        if self._snapshots:
            base, start = self.env.unwrapped, capture_snapshot(self.env)
        else:
            base, start = copy.deepcopy(self.env.unwrapped), None
        try:
            observations, actions, rewards = [], [], []
            obs = observation
            for _ in range(self.window):
                action = np.asarray(self.base(obs), dtype=np.float32)
                observations.append(obs)
                actions.append(action)
                obs, reward, terminated, _, _ = base.step(action)
                rewards.append(float(reward))
                if terminated:
                    break
            if len(actions) < self.window:
                self.history.append({"refined": False, "reason": "episode ends inside the look-ahead"})
                return actions
            result = self.refiner.refine(np.stack(observations)[None], np.stack(actions)[None], strength=self.strength)
            refined = list(result.actions[0])
            record: dict[str, Any] = {
                "refined": True,
                "source_return": float(np.sum(rewards)),
                "predicted_gain": None if result.predicted_gain is None else float(result.predicted_gain[0]),
            }
            if self.verify:
                source_score = window_score(
                    record["source_return"], obs, terminated, self.value_fn, self.gamma, self.window
                )
                replayed = replay_window(self.env, start, refined, self.value_fn, self.gamma)
                record["refined_return"] = replayed.window_return
                if replayed.score <= source_score:
                    record["refined"] = False
                    record["reason"] = "verification kept the base window"
                    refined = actions
            self.history.append(record)
            return refined
        finally:
            if start is not None:
                restore_snapshot(self.env, start)
