"""Write a Minari dataset made from other datasets (thinned, joined, improved) without ever half-writing it.

Every such writer works the same way: Minari is pointed (:func:`minari_root_at`) at a
hidden scratch folder beside the target (:func:`ctflow_gym.atomic.scratch_folder`),
the dataset is written there, its build record stored and its file compacted
(:func:`finish_dataset`), any extra files copied in, and the finished folder renamed
into place (:func:`ctflow_gym.atomic.move_into_place`). :func:`write_dataset_atomically`
is that procedure for any way of writing the dataset (``minari.combine_datasets`` for a
join); :func:`write_derived_dataset` is it for episodes given as Minari buffers, with the
env and reference scores of the dataset they come from.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import minari
from gymnasium.envs.registration import EnvSpec
from minari import MinariDataset
from minari.data_collector import EpisodeBuffer

from ctflow_gym.atomic import move_into_place, scratch_folder
from ctflow_gym.data.minari_io import finish_dataset, minari_root_at


def write_dataset_atomically(
    dataset_id: str,
    root: str | os.PathLike,
    record: dict[str, Any],
    create: Callable[[], MinariDataset],
    *,
    scratch_prefix: str,
    extra_files: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write the dataset ``dataset_id`` that ``create`` makes to ``<root>/<dataset_id>``, in one rename.

    ``create()`` runs with Minari's root (``$MINARI_DATASETS_PATH``) pointed at a fresh
    hidden folder ``<root>/<scratch_prefix>*`` (same filesystem as the target) and must
    write ``dataset_id`` there and return it, e.g. ``minari.combine_datasets(parts,
    dataset_id)``; the parent folders of a namespaced id already exist. ``record`` is
    then stored as the build record and the file compacted (:func:`finish_dataset`),
    each of ``extra_files`` is copied (``shutil.copy2``) into the dataset folder under
    its own name, and the folder is renamed to ``<root>/<dataset_id>``, replacing what
    is there: the caller decides whether the target may be overwritten.

    Nothing half-written is left: the scratch folder is removed whatever happens, and
    the target is touched only by the final move (which removes an existing target just
    before the rename, so a crash between the two leaves no target rather than a broken
    one). Whatever ``create``, ``finish_dataset`` or the copies raise propagates, with
    the target as it was. Returns the folder written.
    """
    root = Path(root)
    with scratch_folder(root, scratch_prefix) as scratch:
        built = scratch / dataset_id
        built.parent.mkdir(parents=True, exist_ok=True)  # Minari's combine_datasets makes only the last folder
        with minari_root_at(scratch):
            finish_dataset(create(), record)
        for extra in extra_files:
            shutil.copy2(extra, built / Path(extra).name)
        return move_into_place(built, root / dataset_id)


def write_derived_dataset(
    source: MinariDataset | EnvSpec,
    buffers: Sequence[EpisodeBuffer],
    dataset_id: str,
    root: str | os.PathLike,
    record: dict[str, Any],
    *,
    algorithm_name: str,
    code_permalink: str,
    description: str,
    scratch_prefix: str,
    extra_files: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write the episodes ``buffers`` as the dataset ``dataset_id`` under ``root``, in the env of ``source``.

    ``source`` is the dataset the episodes come from, or the env's spec for episodes that
    come from no dataset (then without reference scores).

    The dataset is made by ``minari.create_dataset_from_buffers`` with ``source``'s env
    spec as both env and eval env, the ``ref_min_score`` / ``ref_max_score`` of
    ``source``'s metadata (absent there: none), author ``"ctflow_gym"`` and the given
    ``algorithm_name``, ``code_permalink`` and ``description``; Minari's warnings that no
    author e-mail (or code permalink) is given are silenced. ``record`` is stored as its build record, each
    of ``extra_files`` is copied in under its own name, and the folder lands at
    ``<root>/<dataset_id>``, replacing what is there (the caller has checked that the
    target may be written).

    Written as :func:`write_dataset_atomically` writes: in a hidden scratch folder
    ``<root>/<scratch_prefix>*`` renamed into place at the end, so nothing half-written
    is ever left at the target. Whatever Minari raises while writing propagates, with
    the target as it was. Returns the folder written.
    """
    env_spec = source if isinstance(source, EnvSpec) else source.env_spec
    metadata = {} if isinstance(source, EnvSpec) else source.storage.metadata

    def create() -> MinariDataset:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(author_email|code_permalink).*")
            return minari.create_dataset_from_buffers(
                dataset_id,
                buffer=list(buffers),
                env=env_spec,
                eval_env=env_spec.id,
                algorithm_name=algorithm_name,
                code_permalink=code_permalink,
                author="ctflow_gym",
                ref_min_score=metadata.get("ref_min_score"),
                ref_max_score=metadata.get("ref_max_score"),
                description=description,
            )

    return write_dataset_atomically(
        dataset_id, root, record, create, scratch_prefix=scratch_prefix, extra_files=extra_files
    )
