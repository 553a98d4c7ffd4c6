"""Recording refined episodes as a Minari dataset.

Wrapper order, outermost first::

    env = gym.make("Hopper-v5")
    env = RefinementWrapper(env, refiner, replay=True, mode="commit")
    env = SimStateRecorder(env)                       # reads the state after the wrapper is done
    env = minari.DataCollector(env, step_data_callback=RefinementStepData, record_infos=True)

The :class:`~ctflow_gym.replay.SimStateRecorder` sits outside the
:class:`~ctflow_gym.wrappers.RefinementWrapper`, so the ``sim_state`` recorded with each
observation is the simulator state that observation was made in, also after a
committed window moved the episode to the refined end state (a recorder inside the
wrapper works too: the wrapper re-reads ``info["sim_state"]`` when it commits).

What the dataset holds is the wrapped env's episodes as the policy saw them. A step
that commits a refined window is a jump: its transition goes from the policy's last
state of the window to the refined window's end state, and its reward is the step's
own plus the window's realised gain (so an episode's summed reward is what the
committed trajectory earned). :class:`RefinementStepData` marks those steps with
``infos["refinement_committed"]``; every window of H steps that contains none is a
stretch of the plain env and replays bit for bit from its recorded ``sim_state``
(:func:`ctflow_gym.replay.closed_loop_returns`). For data in which every transition is
a plain-env step, record a :class:`~ctflow_gym.wrappers.RefinedPolicy` acting in
``DataCollector(SimStateRecorder(gym.make(env_id)))`` instead: it executes the refined
actions themselves.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from minari import StepDataCallback

from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY

COMMITTED_INFO_KEY = "refinement_committed"
"""Info key :class:`RefinementStepData` records: whether the step committed a refined window."""


class RefinementStepData(StepDataCallback):
    """Minari step data for a ``RefinementWrapper``'d env: the simulator state and a commit flag.

    Minari stores infos as one table, so every reset and step must carry the same keys;
    the wrapper's ``info["refinement"]`` report appears only when a window closes and
    the env's own keys differ between reset and step. The recorded infos are therefore
    ``sim_state`` (when a :class:`~ctflow_gym.replay.SimStateRecorder` puts it in
    ``info``) and ``refinement_committed`` (a bool, True on a step whose window was
    committed; see the module docstring).
    """

    def __call__(self, env: gym.Env, **kwargs: Any):
        """Minari's step data with ``info`` reduced to ``sim_state`` and ``refinement_committed``."""
        step_data = super().__call__(env, **kwargs)
        info = step_data["info"]
        report = info.get("refinement")
        kept = {COMMITTED_INFO_KEY: np.bool_(bool(report is not None and report.get("committed", False)))}
        if SIM_STATE_INFO_KEY in info:
            kept[SIM_STATE_INFO_KEY] = info[SIM_STATE_INFO_KEY]
        step_data["info"] = kept
        return step_data
