"""Where :class:`SimStateRecorder` lived when the shipped dataset was recorded.

Datasets store the env spec they were recorded with, and that spec names the
recorder wrapper by its import path, ``ctflow_gym.data.sim_state:SimStateRecorder``
(the shipped ``ctflow/hopper/medium-replay-v1`` does). So that ``minari show`` and
``dataset.recover_environment()`` can still rebuild those envs, the name is kept here;
the code lives in :mod:`ctflow_gym.replay.sim_state`.
"""

from ctflow_gym.replay.sim_state import SimStateRecorder

__all__ = ["SimStateRecorder"]
