"""Offline-to-online fine-tuning: the loop behind :meth:`agents.base.OfflineAgent.learn_online`.

Flow Q-Learning's official code (seohongpark/fql, ``main.py``) fine-tunes an
offline-trained agent by acting in its env and training on a replay buffer made of the
offline dataset with every new transition appended to it: one env step, then one
gradient step on a minibatch drawn uniformly from the union (an update-to-data ratio of
1), with ``masks = 1 - terminated`` (a time-limit truncation bootstraps). This module is
that loop for every :class:`~agents.base.OfflineAgent`:

- :class:`OnlineBuffer` holds the transitions gathered online, in env units, and writes
  them, normalised with the agent's fixed dataset statistics and with actions in
  [-1, 1], after the dataset's rows of the agent's training tensors ``agent._data``. Its
  room is reserved up front (dataset rows + the steps to come), so appending is O(1).
  ``agent._rows`` counts the rows filled so far; minibatches are drawn from those.
- :func:`learn_online` is the loop: act with ``predict`` (stochastic by default: the
  policy's own sampling noise is its exploration, as in FQL), step the env, append,
  then one gradient step through the steps ``learn`` uses (:class:`agents.steps.EagerSteps`),
  and log, evaluate, checkpoint and call back as ``learn`` does.

Conventions:

- ``num_timesteps`` counts one per env step and continues from the offline count; an
  env step is followed by a gradient step once the buffer holds ``learning_starts``
  online transitions.
- Every episode's reset is seeded from the agent's seed and the step count
  (:func:`reset_seed`), so a run is reproducible, and a run resumed from a checkpoint
  written at the end of an episode continues exactly as the uninterrupted one.
- A checkpoint holds the online transitions as ``online.safetensors`` (the fields of
  :data:`ONLINE_FIELDS`, in env units) and ``"online"`` in ``checkpoint.json``
  (:meth:`OnlineBuffer.meta`); :func:`restore_online` puts them back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from agents.evaluation import require_vectorization, return_summary
from agents.resolution import env_id_of, make_env
from agents.steps import training_steps
from ctflow_gym.checkpoint import META_FILE, CheckpointError, load_tensors
from ctflow_gym.data.validation import require_int
from ctflow_gym.logging import RunLogger
from ctflow_gym.progress import progress_bar as make_progress_bar

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


def reset_seed(seed: int, step: int) -> int:
    """The seed of the online episode that starts after ``step`` steps of an agent seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed) % 2**64, int(step), 0x0E11]).generate_state(1)[0])


def online_env(agent: OfflineAgent, env: gym.Env | str | None) -> tuple[gym.Env, bool]:
    """The env to act in and whether it was made here (to close): ``env``, or the agent's env id made fresh.

    Raises ``ValueError`` naming ``env`` when its spaces are not the dataset's, or when
    ``env`` is None and the agent's env has no id to make one from.
    """
    if env is None:
        if agent.env_id is None:
            raise ValueError("env: this agent's env has no registered id to make a fresh one from; pass env=")
        return make_env(agent.env_id), True
    made = isinstance(env, str)
    env = make_env(env)
    space = env.action_space
    if (
        env.observation_space.shape != (agent.obs_dim,)
        or space.shape != (agent.act_dim,)
        or not np.allclose(space.low, agent.action_low)
        or not np.allclose(space.high, agent.action_high)
    ):
        if made:
            env.close()
        raise ValueError(
            f"env: observations {env.observation_space.shape} and actions {space}; expected those of the dataset "
            f"{agent.dataset_id!r}: observations ({agent.obs_dim},) and actions ({agent.act_dim},) in "
            f"[{agent.action_low.tolist()}, {agent.action_high.tolist()}]"
        )
    return env, made


def episode_metrics(episode_return: float, length: int, env_id: str | None) -> dict[str, float]:
    """``online/episode_return``, ``online/episode_length`` and, for D4RL envs, ``online/normalized_score``."""
    summary = return_summary([episode_return], env_id)
    metrics = {"online/episode_return": summary["mean_return"], "online/episode_length": float(length)}
    if summary["normalized_score"] is not None:
        metrics["online/normalized_score"] = summary["normalized_score"]
    return metrics


def learn_online(
    agent: OfflineAgent,
    env: gym.Env | str | None = None,
    total_timesteps: int = 100_000,
    callback: Any = None,
    log_interval: int = 1000,
    progress_bar: bool = False,
    eval_freq: int = 0,
    n_eval_episodes: int = 10,
    n_eval_envs: int = 1,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_freq: int = 0,
    resume: bool = False,
    run_logger: RunLogger | None = None,
    learning_starts: int = 0,
    deterministic_acting: bool = False,
) -> OfflineAgent:
    """The online phase of :meth:`agents.base.OfflineAgent.learn_online` (see there for the arguments)."""
    if agent.transitions is None:
        raise ValueError(NO_DATASET)
    require_int(total_timesteps, "total_timesteps", numpy_integers=True)
    require_int(learning_starts, "learning_starts", least=0, numpy_integers=True)
    require_vectorization(n_eval_envs, "sync", "n_eval_envs")
    if eval_freq and env is agent.env:
        raise ValueError("env: the agent's own env serves its evaluations (eval_freq); act in another one (default)")
    logger = run_logger or agent.run_logger
    env, made_here = online_env(agent, env)
    steps = bar = None
    try:
        restored = agent._resume_from(checkpoint_path, resume)
        if agent._online is None:
            agent._online = OnlineBuffer(agent)
        buffer = agent._online
        if restored is None or restored.get("online") is None:
            buffer.start_step = agent.num_timesteps  # a new phase (or one resumed from an offline checkpoint)
        agent.target_timesteps = buffer.start_step + int(total_timesteps)
        buffer.reserve(max(agent.target_timesteps - agent.num_timesteps, 0))
        buffer.end_episode()  # whatever episode the last rows were in, this run starts a new one
        env_id = env_id_of(env) or agent.env_id
        callback = agent._init_callback(callback)
        callback.on_training_start({**locals(), "self": agent}, globals())
        steps = training_steps(agent, cuda_graph=False)
        bar = make_progress_bar(
            total=int(total_timesteps),
            initial=min(agent.num_timesteps - buffer.start_step, int(total_timesteps)),
            desc=f"{type(agent).__name__} online",
            disable=not progress_bar,
            unit="step",
        )
        settings = (logger, log_interval, eval_freq, n_eval_episodes, n_eval_envs, checkpoint_path, checkpoint_freq)
        observation, episode_return, episode_length = None, 0.0, 0
        while agent.num_timesteps < agent.target_timesteps:
            if observation is None:
                observation, _ = env.reset(seed=reset_seed(agent.seed, agent.num_timesteps))
                episode_return, episode_length = 0.0, 0
            action, _ = agent.predict(observation, deterministic=deterministic_acting)
            next_observation, reward, terminated, truncated, info = env.step(action)
            buffer.append(observation, action, float(reward), next_observation, terminated, truncated)
            episode_return, episode_length = episode_return + float(reward), episode_length + 1
            if buffer.size >= learning_starts:
                agent._gradient_step(steps, checkpoint_path)
            agent.num_timesteps += 1
            bar.update(1)
            done = bool(terminated or truncated)
            if done:
                agent._record(logger, episode_metrics(episode_return, episode_length, env_id))
            # SB3's names for what a callback may read of the step (one env)
            new_obs, rewards, dones, infos = next_observation[None], np.array([reward]), np.array([done]), [info]
            observation = None if done else next_observation
            if not agent._after_step(steps, callback, {**locals(), "self": agent}, *settings):
                break
    finally:
        for resource in (bar, steps):
            if resource is not None:
                resource.close()
        if made_here:
            env.close()
    agent._refresh_acting_state()
    if checkpoint_path is not None:
        agent.save(checkpoint_path)
    callback.on_training_end()
    return agent
