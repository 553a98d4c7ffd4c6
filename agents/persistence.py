"""Agents in the shared checkpoint format of :mod:`ctflow_gym.checkpoint`.

A saved agent is a checkpoint folder of kind ``"agent:<class name>"``:

- ``checkpoint.json``: format version and kind, then the agent's metadata
  (:data:`META_KEYS`: config, env id, spaces, normalisation statistics, seed, step
  counts, evaluation history, the minibatch sampler's numpy RNG state), and
  ``acting_state``: what the agent fitted for acting beside its weights (JSON; e.g.
  GTP's fitted sampling times; absent in older checkpoints, which act without it);
- ``weights.safetensors``: every network of ``agent._modules()`` (EMA copies included),
  keyed ``"<module>.<parameter>"``;
- ``training_state.pt``: the optimisers' state and the torch RNG state, read with
  ``torch.load(weights_only=True)``;
- after ``learn_online``: ``online.safetensors``, the transitions gathered online (env
  units; :data:`agents.online_buffer.ONLINE_FIELDS`), and ``online`` in ``checkpoint.json``
  (their number and the online phase's first step, :meth:`agents.online_buffer.OnlineBuffer.meta`).

Nothing in the folder is executed on load, and it is written atomically. Functions
here take the agent (or its class) as an argument, so this module needs nothing from
:mod:`agents.base` at import time; :class:`AgentPersistence` is the ``save`` / ``load``
half of :class:`agents.base.OfflineAgent` (which subclasses it), calling them.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from minari import MinariDataset

from agents.online_buffer import ONLINE_FILE_STEM, restore_online
from agents.resolution import make_env, require_env_matches_checkpoint
from agents.steps import ORDINARY_FORM, has_graph_modes
from ctflow_gym.checkpoint import (
    META_FILE,
    TRAINING_STATE_FILE,
    CheckpointError,
    load_module_tensors,
    load_tensors,
    load_training_state,
    module_tensors,
    read_checkpoint_meta,
    require_meta_keys,
    save_checkpoint,
)
from ctflow_gym.data import NormalizationStats
from ctflow_gym.logging import NULL_LOGGER, RunLogger

if TYPE_CHECKING:
    from agents.base import OfflineAgent

AGENT_FAMILY = "agent"
"""The family part of every agent checkpoint's kind."""

META_KEYS = (
    "config",
    "env_id",
    "observation_shape",
    "action_low",
    "action_high",
    "stats",
    "seed",
    "num_timesteps",
    "target_timesteps",
    "dataset_id",
    "eval_history",
    "batch_rng",
)
"""Keys every agent's ``checkpoint.json`` holds besides ``format_version`` and ``kind``."""


def checkpoint_kind(agent_class: type) -> str:
    """The kind an agent class writes into its checkpoints: ``"agent:<class name>"``."""
    return f"{AGENT_FAMILY}:{agent_class.__name__}"


def save_agent(agent: OfflineAgent, path: str | os.PathLike) -> Path:
    """Write ``agent`` with its whole training state to the checkpoint folder ``path``; returns ``path``."""
    meta = {
        "config": asdict(agent.config),
        "env_id": agent.env_id,
        "observation_shape": [agent.obs_dim],
        "action_low": agent.action_low.tolist(),
        "action_high": agent.action_high.tolist(),
        "stats": agent.stats.to_dict(),
        "seed": agent.seed,
        "num_timesteps": agent.num_timesteps,
        "target_timesteps": agent.target_timesteps,
        "dataset_id": agent.dataset_id,
        "eval_history": agent.eval_history,
        "batch_rng": agent._batch_rng.bit_generator.state,
        "acting_state": agent._acting_state(),
    }
    training_state = {
        "optimizers": {name: portable_state(optimizer) for name, optimizer in agent._optimizers().items()},
        "torch_rng": agent.generator.get_state().cpu(),
    }
    online = None
    if agent._online is not None:
        meta["online"] = agent._online.meta()
        online = {ONLINE_FILE_STEM: agent._online.tensors()}
    return save_checkpoint(
        path,
        checkpoint_kind(type(agent)),
        meta,
        module_tensors(agent._modules()),
        extra_tensors=online,
        training_state=training_state,
    )


def portable_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` in its ordinary form (:data:`agents.steps.ORDINARY_FORM`), step counts on the CPU.

    During ``learn(cuda_graph=True)`` Adam is capturable and fused (:mod:`agents.steps`);
    a checkpoint written then must load and train anywhere, a CPU included.
    """
    state = optimizer.state_dict()
    state["param_groups"] = [{**g, **ORDINARY_FORM} if has_graph_modes(g) else g for g in state["param_groups"]]
    state["state"] = {
        key: {**values, "step": values["step"].cpu()} if isinstance(values.get("step"), torch.Tensor) else values
        for key, values in state["state"].items()
    }
    return state


def read_agent_meta(agent_class: type, path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of the checkpoint at ``path``, checked to be a complete ``agent_class`` one.

    Raises ``FileNotFoundError`` (no checkpoint there, or one of the old layout) and
    :class:`~ctflow_gym.checkpoint.CheckpointError` naming ``checkpoint.json``: damaged,
    another format version, not an agent, an agent of another class, keys missing.
    """
    meta = read_checkpoint_meta(path, family=AGENT_FAMILY)
    if meta["kind"] != checkpoint_kind(agent_class):
        raise CheckpointError(
            f"{Path(path) / META_FILE}: holds a {meta['kind']!r}, not a {agent_class.__name__}; load it with its own "
            f"class, or with agents.load_agent(path), which picks the registered class from the kind"
        )
    require_meta_keys(path, meta, META_KEYS)
    return meta


def config_from_meta(agent_class: type, meta: dict[str, Any], path: str | os.PathLike) -> Any:
    """``agent_class.config_class`` built from the saved config; ``CheckpointError`` for unknown fields."""
    config_class = agent_class.config_class
    unknown = sorted(set(meta["config"]) - {field.name for field in fields(config_class)})
    if unknown:
        raise CheckpointError(
            f"{Path(path) / META_FILE}: config fields {unknown} are not {config_class.__name__} fields"
        )
    return config_class(**saved_config(config_class, meta))


def saved_config(config_class: type, meta: dict[str, Any]) -> dict[str, Any]:
    """The config a checkpoint was made with: its saved fields, and for fields it predates their value then.

    A config class lists in ``BEFORE_RECORDED`` the fields whose default changed after
    checkpoints without them were written (GTP: ``critic_ensemble``, 1 until the default
    became 5); any other missing field takes today's default.
    """
    return {**getattr(config_class, "BEFORE_RECORDED", {}), **meta["config"]}


def restore_generator(agent: OfflineAgent, saved: torch.Tensor, step: int) -> None:
    """Set the agent's torch generator to the saved state, or reseed it if the state is another device's.

    A CPU generator's state (5056 bytes) and a CUDA generator's (seed and offset) do
    not convert: a checkpoint written on one kind of device and loaded on the other
    (e.g. trained on a CPU, loaded with ``device="auto"`` on a GPU machine) gets a
    generator seeded from the agent's seed and step count, with a warning, since a
    resumed run's noise then differs from an uninterrupted one's. Acting with
    ``deterministic=True`` draws from its own fixed seed and is unaffected.
    """
    if saved.numel() == agent.generator.get_state().numel():
        agent.generator.set_state(saved)
        return
    warnings.warn(
        f"the checkpoint's torch random state is another device type's than this agent's ({agent.device}); "
        "its generator is seeded from the seed and step count instead (stochastic sampling and resumed "
        "training draw other noise than on the device that wrote it)",
        RuntimeWarning,
        stacklevel=4,
    )
    agent.generator.manual_seed(agent.seed * 1_000_003 + step)


def restore_agent(agent: OfflineAgent, path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Load networks, optimisers, RNG states and step counts of the checkpoint at ``path`` into ``agent``.

    ``meta`` is what :func:`read_agent_meta` returned for ``path``. A checkpoint without
    ``training_state.pt`` restores the networks and counts only (enough to act). The
    online transitions, if any, follow the dataset's rows when the agent has its
    dataset (:func:`agents.online_buffer.restore_online`).
    """
    load_module_tensors(agent._modules(), load_tensors(path, device=agent.device), path)
    state = load_training_state(path, device=agent.device)
    if state is not None:
        try:
            for name, optimizer in agent._optimizers().items():
                optimizer.load_state_dict(state["optimizers"][name])
            restore_generator(agent, state["torch_rng"].cpu(), int(meta["num_timesteps"]))
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{Path(path) / TRAINING_STATE_FILE}: does not fit this {type(agent).__name__} "
                f"({type(error).__name__}: {error})"
            ) from error
    agent.num_timesteps = int(meta["num_timesteps"])
    agent.target_timesteps = int(meta["target_timesteps"])
    agent.eval_history = list(meta["eval_history"])
    agent._batch_rng = np.random.default_rng()
    agent._batch_rng.bit_generator.state = meta["batch_rng"]
    agent._set_acting_state(meta.get("acting_state", {}))
    restore_online(agent, path, meta)


def require_same_settings(agent: OfflineAgent, path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless the checkpoint ``meta`` (read from ``path``) was made with ``agent``'s settings.

    Config fields in ``agent.predict_time_options`` may differ (they only change acting);
    so may nothing else, nor the observation and action sizes.
    """
    mine = asdict(agent.config)
    saved = saved_config(type(agent.config), meta)
    differing = sorted(k for k, v in saved.items() if k not in agent.predict_time_options and mine.get(k) != v)
    if differing or meta["observation_shape"] != [agent.obs_dim] or len(meta["action_low"]) != agent.act_dim:
        details = ", ".join(f"{k}: checkpoint {saved[k]!r}, now {mine.get(k)!r}" for k in differing)
        details = details or "observation/action sizes"
        raise ValueError(
            f"checkpoint_path: {str(Path(path))!r} was made with other settings ({details}); "
            f"resume with the same ones or use a new checkpoint_path"
        )


def holds_something(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with anything in it (a checkpoint to resume, or a folder not to overwrite)."""
    path = Path(path)
    return path.is_dir() and any(path.iterdir())


class AgentPersistence:
    """``save`` and ``load`` of :class:`~agents.base.OfflineAgent` in the format above."""

    def save(self, path: str | os.PathLike) -> Path:
        """Write the agent, with its whole training state, to the checkpoint folder ``path`` (atomically).

        Returns ``path``. The format is described in :mod:`agents.persistence`.
        """
        return save_agent(self, path)

    @classmethod
    def _read_meta(cls, path: str | os.PathLike) -> dict[str, Any]:
        return read_agent_meta(cls, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        env: gym.Env | str | None = None,
        dataset: MinariDataset | str | os.PathLike | None = None,
        device: str = "auto",
        run_logger: RunLogger = NULL_LOGGER,
    ) -> "OfflineAgent":
        """Read an agent written by :meth:`save` (JSON, safetensors and weights-only tensors only).

        ``env`` defaults to ``gym.make`` of the saved env id; a given env must have the
        saved id and spaces. Pass ``dataset`` to continue training
        (``learn(..., reset_num_timesteps=False)`` or ``learn_online``); the saved
        normalisation is kept, and online transitions saved with the agent follow the
        dataset's rows again.
        Raises ``FileNotFoundError`` when there is no checkpoint at ``path`` and
        :class:`~ctflow_gym.checkpoint.CheckpointError` (a ``ValueError``) naming the
        file when it is damaged, of another version or of another agent class.
        """
        path = Path(path)
        meta = cls._read_meta(path)
        config = config_from_meta(cls, meta, path)
        env = make_env(env if env is not None else meta["env_id"])
        require_env_matches_checkpoint(env, meta, path)
        agent = cls(env, None, config, device=device, seed=meta["seed"], run_logger=run_logger)
        agent.stats = NormalizationStats.from_dict(meta["stats"])
        agent._init_networks()
        if dataset is not None:  # before the restore, which appends the checkpoint's online transitions to it
            agent._attach_dataset(dataset)
        agent._restore(path, meta)
        return agent

    def _restore(self, path: str | os.PathLike, meta: dict[str, Any] | None = None) -> None:
        restore_agent(self, path, meta if meta is not None else self._read_meta(path))
