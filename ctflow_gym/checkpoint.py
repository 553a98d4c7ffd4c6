"""One checkpoint format for everything the package saves: refiners and agents.

A checkpoint is a folder::

    checkpoint.json        format version, kind ("refiner:TrajectoryRefiner", "agent:GTPAgent", ...)
                           and the object's own JSON metadata (config, statistics, step counts)
    weights.safetensors    every network's tensors, keyed "<module>.<parameter>"
    <name>.safetensors     optional further tensor files (e.g. a refiner's training bank)
    training_state.pt      optional: optimiser moments and RNG states, read with
                           ``torch.load(weights_only=True)``

Loading never executes code from the folder: JSON, safetensors and weights-only
tensors are all that is read. The folder is written under a temporary name beside its
final path and renamed into place (:mod:`ctflow_gym.atomic`), so an interrupted save
leaves the previous checkpoint or none, never half of one. Every problem found while
reading raises :class:`CheckpointError` (a ``ValueError``) naming the file and what is
wrong with it; a missing folder or file is a ``FileNotFoundError`` naming the path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ctflow_gym.atomic import move_into_place, scratch_folder

CHECKPOINT_FORMAT_VERSION = 2
"""Version of the folder layout above. Version 1 was two layouts (``config.json`` for
refiners, ``agent.json`` for agents) written before the format was shared."""

META_FILE = "checkpoint.json"
WEIGHTS_FILE = "weights.safetensors"
TRAINING_STATE_FILE = "training_state.pt"


class CheckpointError(ValueError):
    """A checkpoint folder exists but a file in it is unreadable, of another version or kind."""


def module_tensors(modules: Mapping[str, torch.nn.Module | None]) -> dict[str, torch.Tensor]:
    """Every module's state dict, keyed ``"<module>.<parameter>"``, on the CPU and contiguous."""
    return {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in modules.items()
        if module is not None
        for key, value in module.state_dict().items()
    }


def load_module_tensors(
    modules: Mapping[str, torch.nn.Module | None], tensors: Mapping[str, torch.Tensor], path: str | os.PathLike
) -> None:
    """Load each module's state dict from ``tensors`` (as :func:`module_tensors` keyed them).

    Raises :class:`CheckpointError` naming the weights file of ``path`` when a module's
    tensors are missing or do not fit it.
    """
    for name, module in modules.items():
        if module is None:
            continue
        prefix = name + "."
        own = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
        try:
            module.load_state_dict(own)
        except RuntimeError as error:
            raise CheckpointError(
                f"{Path(path) / WEIGHTS_FILE}: the tensors of {name!r} do not fit the network ({error})"
            ) from error


def save_checkpoint(
    path: str | os.PathLike,
    kind: str,
    meta: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor],
    extra_tensors: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    training_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint folder at ``path`` atomically and return ``path``.

    Args:
        kind: what the folder holds, ``"<family>:<class name>"`` (the loaders dispatch on it).
        meta: JSON-ready metadata of the object; stored beside ``format_version`` and ``kind``.
        tensors: the weights (see :func:`module_tensors`).
        extra_tensors: further tensor files, ``{file stem: tensors}`` (``"bank"`` -> bank.safetensors).
        training_state: tensors and plain containers for ``torch.save`` (optimisers, RNG states).
    """
    if not isinstance(kind, str) or ":" not in kind:
        raise ValueError(f"kind must be a string '<family>:<class name>'; got {kind!r}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"path: {str(path)!r} is a file; a checkpoint is a folder")
    document = {"format_version": CHECKPOINT_FORMAT_VERSION, "kind": kind, **dict(meta)}
    text = json.dumps(document, indent=2)  # fails here, before anything is written, if meta is not JSON-ready
    with scratch_folder(path.parent, f".{path.name}-") as staging:
        save_file(dict(tensors), str(staging / WEIGHTS_FILE))
        for stem, values in (extra_tensors or {}).items():
            save_file(dict(values), str(staging / f"{stem}.safetensors"))
        if training_state is not None:
            torch.save(dict(training_state), staging / TRAINING_STATE_FILE)
        (staging / META_FILE).write_text(text)
        move_into_place(staging, path)
    return path


def read_checkpoint_meta(
    path: str | os.PathLike, family: str | None = None, kinds: Iterable[str] | None = None
) -> dict[str, Any]:
    """The metadata of the checkpoint at ``path``, checked.

    Args:
        family: when given, the kind must start with ``"<family>:"`` (``"refiner"``, ``"agent"``).
        kinds: when given, the kind must be one of these.

    Raises ``FileNotFoundError`` (no folder, or no ``checkpoint.json`` / weights in it)
    and :class:`CheckpointError` (not JSON, another format version, another kind).
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"path: no checkpoint folder at {str(path)!r}")
    meta_file = path / META_FILE
    if not meta_file.is_file():
        old = [name for name in ("config.json", "agent.json") if (path / name).is_file()]
        hint = (
            f" (it has {old[0]}: saved by an older ctflow_gym in format version 1; refit or retrain to save it again)"
            if old
            else ""
        )
        raise FileNotFoundError(f"path: {str(path)!r} holds no {META_FILE}{hint}")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{meta_file}: not valid JSON ({error}); the checkpoint is damaged") from error
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_file}: expected a JSON object; got {type(meta).__name__}")
    version = meta.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_file}: format version {version!r}; this ctflow_gym reads version {CHECKPOINT_FORMAT_VERSION}"
        )
    kind = meta.get("kind")
    if not isinstance(kind, str) or ":" not in kind:
        raise CheckpointError(f"{meta_file}: 'kind' must be '<family>:<class name>'; got {kind!r}")
    if family is not None and not kind.startswith(family + ":"):
        raise CheckpointError(f"{meta_file}: holds {kind!r}; expected a kind '{family}:<class name>'")
    if kinds is not None and kind not in set(kinds):
        raise CheckpointError(f"{meta_file}: holds a {kind!r}; expected one of {sorted(set(kinds))}")
    if not (path / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"path: {str(path)!r} has {META_FILE} but no {WEIGHTS_FILE}")
    return meta


def require_meta_keys(path: str | os.PathLike, meta: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Raise :class:`CheckpointError` naming ``checkpoint.json`` of ``path`` if a key is missing."""
    missing = [key for key in keys if key not in meta]
    if missing:
        raise CheckpointError(f"{Path(path) / META_FILE}: missing {missing}; the checkpoint is damaged")


def load_tensors(
    path: str | os.PathLike, stem: str = "weights", device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Tensors of ``<stem>.safetensors`` in the checkpoint at ``path``."""
    file = Path(path) / f"{stem}.safetensors"
    if not file.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} has no {file.name}")
    try:
        return load_file(str(file), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{file}: not a readable safetensors file ({error})") from error


def load_training_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any] | None:
    """``training_state.pt`` of the checkpoint at ``path`` (weights only), or None if absent."""
    file = Path(path) / TRAINING_STATE_FILE
    if not file.is_file():
        return None
    try:
        return torch.load(file, map_location=device, weights_only=True)
    except Exception as error:  # torch raises several types for damaged or unsafe files
        raise CheckpointError(
            f"{file}: cannot be read as weights-only tensors ({type(error).__name__}: {error})"
        ) from error
