"""Constructor arguments that an env spec can record, including objects that exist only in memory.

gymnasium rebuilds a wrapped env from ``env.spec`` by calling each wrapper with the
keyword arguments its :class:`~gymnasium.envs.registration.WrapperSpec` recorded, and
``EnvSpec.to_json`` writes those arguments as JSON (Minari stores that JSON with every
dataset). A refiner saved to or loaded from a checkpoint folder is recorded as that
folder. An object that exists only in memory (a refiner fitted and never saved, a
value function) cannot be written down; gymnasium itself records such arguments, e.g.
the ``func`` of ``TransformObservation``, as the live object, which rebuilds in the
same process but makes ``to_json`` fail. Here it is recorded as a handle string
instead, ``"<in-memory TrajectoryRefiner 3f2a...>"``:

- the spec says, readably and in valid JSON, that the argument lived only in memory;
- in the process that recorded it, while the object is alive, the handle resolves to
  that object, so ``gym.make(env.spec)`` and gymnasium's ``check_env`` (which rebuilds
  the env from its spec) work;
- anywhere else (another process, a dataset's spec read later, the object collected)
  resolving it raises ``ValueError`` naming the argument and saying how to make the
  spec rebuildable.

The registry holds weak references where the object allows them, so recording a spec
keeps nothing alive.
"""

from __future__ import annotations

import re
import uuid
import weakref
from typing import Any

_HANDLE = re.compile(r"^<in-memory (?P<what>[^ <>]+) (?P<key>[0-9a-f]{32})>$")
_WEAK: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_STRONG: dict[str, Any] = {}  # objects that cannot be weakly referenced (e.g. builtin functions)


def in_memory_handle(obj: Any) -> str:
    """Register ``obj`` and return a handle string that :func:`resolve_in_memory` maps back to it."""
    key = uuid.uuid4().hex
    try:
        _WEAK[key] = obj
    except TypeError:
        _STRONG[key] = obj
    return f"<in-memory {type(obj).__name__} {key}>"


def is_in_memory_handle(value: Any) -> bool:
    """Whether ``value`` is a handle string made by :func:`in_memory_handle`."""
    return isinstance(value, str) and _HANDLE.match(value) is not None


def resolve_in_memory(handle: str, argument: str, remedy: str) -> Any:
    """The object ``handle`` names, if it is alive in this process.

    Raises ``ValueError`` naming ``argument``, saying the object existed only in the
    memory of the process that recorded the spec, followed by ``remedy``.
    """
    match = _HANDLE.match(handle)
    if match is None:
        raise ValueError(f"{argument}: {handle!r} is not an in-memory handle")
    key = match["key"]
    obj = _WEAK.get(key, _STRONG.get(key))
    if obj is None:
        raise ValueError(
            f"{argument}: the env spec records {handle}, a {match['what']} that existed only in the memory of the "
            f"process that recorded the spec (or has since been deleted), so gym.make cannot rebuild it here. {remedy}"
        )
    return obj
