"""Refiner families by name, and one loader that dispatches on a checkpoint's kind.

A saved refiner's ``checkpoint.json`` records ``kind = "refiner:<class name>"``;
:func:`load_refiner` reads it and calls that class's ``load``. A new family registers
itself with the :func:`register_refiner` decorator where it is defined.
"""

from __future__ import annotations

import os
from pathlib import Path

from ctflow_gym.checkpoint import CheckpointError, read_checkpoint_meta
from ctflow_gym.refine.contract import Refiner

REFINERS: dict[str, type] = {}
"""Registered refiner classes by class name (the part of the checkpoint kind after ``refiner:``)."""


def refiner_kind(cls: type) -> str:
    """The checkpoint kind of refiner class ``cls``: ``"refiner:<class name>"``."""
    return f"refiner:{cls.__name__}"


def register_refiner(cls: type) -> type:
    """Class decorator: make ``cls`` loadable by :func:`load_refiner`.

    Raises ``ValueError`` when another class already holds the name.
    """
    previous = REFINERS.get(cls.__name__)
    if previous is not None and (previous.__module__, previous.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"a refiner named {cls.__name__!r} is already registered ({previous.__module__})")
    REFINERS[cls.__name__] = cls
    return cls


def load_refiner(path: str | os.PathLike, device: str | None = None) -> Refiner:
    """Load any registered refiner from its checkpoint folder, by the kind it records.

    The returned refiner's ``checkpoint_path`` is the folder's absolute path (the
    contract's optional attribute, recorded by ``RefinementWrapper`` in ``env.spec``).
    """
    meta = read_checkpoint_meta(path, family="refiner")
    name = meta["kind"].split(":", 1)[1]
    cls = REFINERS.get(name)
    if cls is None:
        raise CheckpointError(
            f"{path}: holds a refiner of kind {meta['kind']!r}, which is not registered (known: {sorted(REFINERS)}); "
            "import the module that defines it first"
        )
    refiner = cls.load(path, device=device)
    try:
        refiner.checkpoint_path = str(Path(path).resolve())
    except AttributeError:  # a family whose instances take no new attributes (__slots__)
        pass
    return refiner
