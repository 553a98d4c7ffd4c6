"""How a refined window is executed in the env: open loop, or tracked (closed loop).

- ``"open_loop"``: the refined actions a^_1..a^_H are applied as they are;
- ``"tracked"``: each action is the refined one corrected toward the next planned state
  by the refiner's inverse-dynamics model (Eq. T1 of
  :mod:`~ctflow_gym.refine.inverse_dynamics`), from the state actually reached;
- ``"auto"`` (the default everywhere): ``"tracked"`` when the refiner has an
  inverse-dynamics model, else ``"open_loop"``. Tracked is the default because it
  realised more of the planned gain than open loop on held-out windows of the shipped
  data at every strength measured (the Results page of the documentation), and it
  replays an unrefined window exactly, as open loop does.

A refiner offers tracking through an optional ``inverse_dynamics`` attribute (an object
with ``tracked_action(observation, plan_observations, plan_actions, t)``; see the
:class:`~ctflow_gym.refine.Refiner` contract).
"""

from __future__ import annotations

from typing import Any

import numpy as np

EXECUTIONS = ("auto", "open_loop", "tracked")


def resolve_execution(refiner: Any, execution: str, argument: str = "execution") -> str:
    """``"open_loop"`` or ``"tracked"`` for ``refiner``; raises naming ``argument`` on a bad value.

    ``"tracked"`` with a refiner that has no inverse-dynamics model is an error (fit one
    with ``inverse_dynamics_steps > 0``); ``"auto"`` picks tracked when it can.
    """
    if execution not in EXECUTIONS:
        raise ValueError(f"{argument} must be one of {EXECUTIONS}; got {execution!r}")
    has_model = getattr(refiner, "inverse_dynamics", None) is not None
    if execution == "tracked" and not has_model:
        raise ValueError(
            f"{argument}='tracked' needs an inverse-dynamics model, and this {type(refiner).__name__} was fitted "
            "without one (TrajectoryRefiner: inverse_dynamics_steps > 0); use 'open_loop' or refit"
        )
    if execution == "auto":
        return "tracked" if has_model else "open_loop"
    return execution


class TrackedPlan:
    """A refined window executed by Eq. T1 (an :class:`~ctflow_gym.replay.stepping.ActionPlan`).

    Args:
        inverse_dynamics: the refiner's model (with ``tracked_action``).
        observations, actions: (H, obs_dim), (H, act_dim) the refined window (the plan).
    """

    def __init__(self, inverse_dynamics, observations: np.ndarray, actions: np.ndarray):
        self.inverse_dynamics = inverse_dynamics
        self.observations = np.asarray(observations, dtype=np.float32)
        self.actions = np.asarray(actions, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.actions)

    def action(self, observation: np.ndarray, t: int) -> np.ndarray:
        """The tracked action at step ``t`` from the observation reached."""
        return self.inverse_dynamics.tracked_action(observation, self.observations, self.actions, t)


def execution_plans(refiner: Any, observations: np.ndarray, actions: np.ndarray, execution: str) -> list:
    """One executable window per refined window (N, H, ...): action arrays (open loop) or :class:`TrackedPlan`.

    ``execution`` must be resolved already (:func:`resolve_execution`).
    """
    if execution == "open_loop":
        return list(np.asarray(actions, dtype=np.float32))
    return [TrackedPlan(refiner.inverse_dynamics, o, a) for o, a in zip(observations, actions)]
