"""The transitions an agent gathers online (``learn_online``), kept after its dataset's rows.

- :class:`OnlineBuffer` holds the transitions gathered online, in env units, and writes
  them, normalised with the agent's fixed dataset statistics and with actions in
  [-1, 1], after the dataset's rows of the agent's training tensors ``agent._data``. Its
  room is reserved up front (dataset rows + the steps to come), so appending is O(1).
  ``agent._rows`` counts the rows filled so far; minibatches are drawn from those.
- A checkpoint holds the online transitions as ``online.safetensors`` (the fields of
  :data:`ONLINE_FIELDS`, in env units) and ``"online"`` in ``checkpoint.json``
  (:meth:`OnlineBuffer.meta`); :func:`restore_online` puts them back.

The loop that fills it is :func:`agents.online.learn_online`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ctflow_gym.checkpoint import META_FILE, CheckpointError, load_tensors

if TYPE_CHECKING:
    from agents.base import OfflineAgent

ONLINE_FILE_STEM = "online"
"""The online transitions' file in a checkpoint folder: ``online.safetensors``."""

DATA_FIELDS = ("observations", "actions", "rewards", "next_observations", "terminations")
"""The training tensors of ``agent._data`` an online transition is appended to."""

ONLINE_FIELDS = (*DATA_FIELDS, "episode_ends")
"""What the buffer keeps of each online transition (env units; ``episode_ends``: terminated or truncated, bool)."""

NO_DATASET = (
    "learn_online appends to the agent's dataset, and this agent has none; pass dataset= to the constructor or load()"
)


class OnlineBuffer:
    """The transitions an agent gathered online, appended after its dataset's rows in ``agent._data``.

    Each field of :data:`ONLINE_FIELDS` is kept as gathered (env units, float32;
    ``episode_ends`` bool) in :attr:`raw`, and written, normalised with the agent's
    dataset statistics and with actions mapped to [-1, 1], into device tensors with
    room for ``dataset rows + capacity`` rows; ``agent._data`` holds views of their
    filled rows, and ``agent._rows`` their number, which the minibatch sampler draws
    from.

    Args:
        agent: the agent whose training data grows (its dataset attached, its ``_data``
            holding the dataset rows only).
    """

    def __init__(self, agent: OfflineAgent):
        if agent.transitions is None:
            raise ValueError(NO_DATASET)
        unknown = sorted(set(agent._data) - set(DATA_FIELDS))
        if unknown:
            raise ValueError(
                f"learn_online appends {list(DATA_FIELDS)} to the training data; {type(agent).__name__} trains on "
                f"{unknown} too, which an online transition does not give"
            )
        self.agent = agent
        self.dataset_rows = len(agent.transitions)
        self.size = 0
        self.start_step = agent.num_timesteps
        """The step count the current online phase began at (its ``total_timesteps`` count from there)."""
        self._storage = {name: agent._data[name][: self.dataset_rows] for name in DATA_FIELDS}
        self.raw: dict[str, np.ndarray] = {}
        self._allocate_raw(0)

    def _allocate_raw(self, capacity: int) -> None:
        shapes = {
            "observations": (self.agent.obs_dim,),
            "actions": (self.agent.act_dim,),
            "next_observations": (self.agent.obs_dim,),
        }
        old = self.raw
        self.raw = {
            name: np.zeros((capacity, *shapes.get(name, ())), bool if name == "episode_ends" else np.float32)
            for name in ONLINE_FIELDS
        }
        for name, values in old.items():
            self.raw[name][: self.size] = values[: self.size]

    @property
    def capacity(self) -> int:
        """Online transitions the buffer has room for without growing."""
        return len(self.raw["rewards"])

    def reserve(self, more: int) -> None:
        """Make room for ``more`` online transitions beyond those held (one copy now, none while appending)."""
        needed = self.size + int(more)
        if needed <= self.capacity:
            return
        self._allocate_raw(needed)
        rows = self.dataset_rows + self.size
        storage = {}
        for name, values in self._storage.items():
            grown = torch.empty(
                (self.dataset_rows + needed, *values.shape[1:]), dtype=values.dtype, device=values.device
            )
            grown[:rows] = values[:rows]
            storage[name] = grown
        self._storage = storage
        self._publish()

    def append(
        self,
        observation: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_observation: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Add one transition (env units) as the agent's last training row; grows the room if it is full."""
        if self.size == self.capacity:
            self.reserve(max(self.capacity, 1))
        row, raw = self.size, self.raw
        raw["observations"][row] = observation
        raw["actions"][row] = action
        raw["rewards"][row] = reward
        raw["next_observations"][row] = next_observation
        raw["terminations"][row] = float(terminated)
        raw["episode_ends"][row] = bool(terminated or truncated)
        self._write(row, row + 1)
        self.size += 1
        self._publish()

    def end_episode(self) -> None:
        """Mark the last transition as an episode's end (a new call or a resumed run starts a new episode)."""
        if self.size:
            self.raw["episode_ends"][self.size - 1] = True

    def _write(self, start: int, stop: int) -> None:
        """Normalise online rows ``start:stop`` of :attr:`raw` into the training tensors."""
        rows = self.agent.training_rows(*(self.raw[name][start:stop] for name in DATA_FIELDS))
        at = self.dataset_rows + start
        for name, values in rows.items():
            self._storage[name][at : at + stop - start] = torch.from_numpy(np.ascontiguousarray(values))

    def _publish(self) -> None:
        """Point ``agent._data`` at the filled rows and ``agent._rows`` at their number."""
        rows = self.dataset_rows + self.size
        self.agent._data = {name: values[:rows] for name, values in self._storage.items()}
        self.agent._rows = rows

    def meta(self) -> dict[str, int]:
        """What ``checkpoint.json`` records under ``"online"``: the number of rows and the phase's first step."""
        return {"rows": self.size, "start_step": self.start_step}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The online transitions as CPU tensors, for ``online.safetensors``."""
        return {name: torch.from_numpy(values[: self.size].copy()) for name, values in self.raw.items()}

    def load(self, tensors: dict[str, torch.Tensor], path: str | os.PathLike, meta: dict[str, Any]) -> None:
        """Take the rows of a checkpoint's ``online.safetensors`` (``tensors``), checked against ``meta``.

        Raises :class:`~ctflow_gym.checkpoint.CheckpointError` naming the file when a field is
        missing or of another shape than ``meta`` and the agent's sizes give.
        """
        rows = meta["rows"]
        file = Path(path) / f"{ONLINE_FILE_STEM}.safetensors"
        for name in ONLINE_FIELDS:
            expected = (rows, *self.raw[name].shape[1:])
            found = tuple(tensors[name].shape) if name in tensors else None
            if found != expected:
                raise CheckpointError(f"{file}: {name!r} has shape {found}; expected {expected}")
        self.size = 0
        self.reserve(rows)
        for name in ONLINE_FIELDS:
            self.raw[name][:rows] = tensors[name].cpu().numpy()
        self._write(0, rows)
        self.size = rows
        self.start_step = int(meta["start_step"])
        self._publish()


def drop_online(agent: OfflineAgent) -> None:
    """Forget the agent's online transitions: its training data is its dataset's rows again."""
    buffer = agent._online
    if buffer is None:
        return
    agent._data = {name: values[: buffer.dataset_rows].clone() for name, values in agent._data.items()}
    agent._rows = buffer.dataset_rows
    agent._online = None


def restore_online(agent: OfflineAgent, path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Give ``agent`` the online transitions of the checkpoint at ``path`` (``meta``: its ``checkpoint.json``).

    A checkpoint without them leaves the agent with its dataset's rows only. An agent
    without a dataset cannot hold them (they follow the dataset's rows); loading it with
    ``dataset=`` restores them too.
    """
    if agent.transitions is None:
        return
    drop_online(agent)
    online = meta.get("online")
    if online is None:
        return
    if not (
        isinstance(online, dict) and isinstance(online.get("rows"), int) and isinstance(online.get("start_step"), int)
    ):
        raise CheckpointError(
            f"{Path(path) / META_FILE}: 'online' must hold integer 'rows' and 'start_step'; got {online!r}"
        )
    buffer = OnlineBuffer(agent)
    buffer.load(load_tensors(path, ONLINE_FILE_STEM, device="cpu"), path, online)
    agent._online = buffer


__all__ = [
    "DATA_FIELDS",
    "NO_DATASET",
    "ONLINE_FIELDS",
    "ONLINE_FILE_STEM",
    "OnlineBuffer",
    "drop_online",
    "restore_online",
]
