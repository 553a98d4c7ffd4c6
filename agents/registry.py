"""The agents by name, as d3rlpy and fql keep theirs: one decorator line registers a new agent.

A new agent is one module with an :class:`~agents.base.OfflineAgent` subclass decorated
with ``@register_agent("name")``, imported from :mod:`agents` (so that importing the
package registers it). Registered agents are then

- choices of ``ctflow agent train --agent NAME``,
- loaded by :func:`load_agent`, which reads a checkpoint's kind and picks the class,
- checked by the shared contract tests (``tests/test_agent_contract.py``), which run
  over every name in :data:`AGENTS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from agents.base import OfflineAgent
from agents.persistence import AGENT_FAMILY, checkpoint_kind
from ctflow_gym.checkpoint import META_FILE, CheckpointError, read_checkpoint_meta

AGENTS: dict[str, type[OfflineAgent]] = {}
"""Every registered agent class by its name (``"gtp"`` -> :class:`~agents.GTPAgent`)."""

AgentClass = TypeVar("AgentClass", bound=type)


def register_agent(name: str) -> Callable[[AgentClass], AgentClass]:
    """Class decorator: register an :class:`~agents.base.OfflineAgent` subclass under ``name``.

    Returns the class unchanged. Raises ``ValueError`` when ``name`` is empty or already
    registered, or when another registered class has the same class name (checkpoints
    record the class name, so it must identify one class), and ``TypeError`` when the
    decorated object is not an ``OfflineAgent`` subclass.
    """
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"agent name must be a non-empty string without surrounding spaces; got {name!r}")

    def register(cls: AgentClass) -> AgentClass:
        if not (isinstance(cls, type) and issubclass(cls, OfflineAgent)):
            raise TypeError(f"register_agent({name!r}) decorates OfflineAgent subclasses; got {cls!r}")
        if name in AGENTS:
            raise ValueError(
                f"agent name {name!r} is already registered to {AGENTS[name].__module__}.{AGENTS[name].__qualname__}"
            )
        clashing = [other for other, known in AGENTS.items() if checkpoint_kind(known) == checkpoint_kind(cls)]
        if clashing:
            raise ValueError(
                f"agent {name!r}: the class name {cls.__name__!r} is already registered as {clashing[0]!r}; "
                f"checkpoints record the class name, so registered agent classes need distinct names"
            )
        AGENTS[name] = cls
        return cls

    return register


def agent_class(name: str) -> type[OfflineAgent]:
    """The agent class registered under ``name``; ``ValueError`` listing the registered names otherwise."""
    try:
        return AGENTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown agent {name!r}; registered agents: {', '.join(sorted(AGENTS)) or 'none'}") from None


def load_agent(path: str | os.PathLike, **kwargs: Any) -> OfflineAgent:
    """Load the agent saved at ``path``, whatever its registered class.

    Reads the checkpoint's kind (``"agent:<class name>"``) and calls that registered
    class's ``load(path, **kwargs)`` (``env``, ``dataset``, ``device``, ``run_logger``).
    Raises ``FileNotFoundError`` when there is no checkpoint at ``path`` and
    :class:`~ctflow_gym.checkpoint.CheckpointError` (a ``ValueError``) naming
    ``checkpoint.json`` when it is damaged, not an agent, or of a class no registered
    agent has.
    """
    meta = read_checkpoint_meta(path, family=AGENT_FAMILY)
    for cls in AGENTS.values():
        if checkpoint_kind(cls) == meta["kind"]:
            return cls.load(path, **kwargs)
    known = ", ".join(f"{name} ({cls.__name__})" for name, cls in sorted(AGENTS.items())) or "none"
    raise CheckpointError(
        f"{Path(path) / META_FILE}: holds a {meta['kind']!r}, which no registered agent is; registered: {known} "
        f"(import the module that registers its class first)"
    )
