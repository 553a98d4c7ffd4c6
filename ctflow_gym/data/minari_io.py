"""Where Minari datasets live on disk, and how to open them by id or by path.

Storage layout, shared by everything that reads or writes datasets:

- Minari's root (:func:`minari_root`) is ``$MINARI_DATASETS_PATH`` or
  ``~/.minari/datasets``; a dataset ``<namespace>/<name>-v<N>`` lives in
  ``<root>/<namespace>/<name>-v<N>/`` with Minari's ``data/`` folder inside.
- A policy saved with a dataset sits beside ``data/`` as :data:`POLICY_FILE`.
  Minari only looks for the ``data/`` folder, so the extra file does not disturb
  ``minari.load_dataset``, ``minari list local`` or ``minari show``.
- How ctflow_gym made a dataset is a JSON record in the Minari metadata under
  :data:`BUILD_METADATA_KEY` (read it with :func:`build_record`).
- The dataset shipped with the package lies in that same layout under
  :func:`shipped_datasets_root` (``ctflow_gym/assets/datasets``), so Minari itself
  can read it: set ``MINARI_DATASETS_PATH`` to that folder and
  ``minari.load_dataset("ctflow/hopper/medium-replay-v1")``, ``minari list local``
  and ``minari show ctflow/hopper/medium-replay-v1`` find it. Minari only reads
  there (no lock or cache files are written), so a read-only install works.

``load_dataset`` accepts, in this order:

1. a path: a dataset folder (with ``data/`` inside, as :func:`build_dataset` writes)
   or the ``data/`` folder itself;
2. the id of the shipped default dataset, :data:`DEFAULT_DATASET_ID`;
3. any Minari id present under Minari's root (``$MINARI_DATASETS_PATH`` or
   ``~/.minari/datasets``), e.g. one made by ``ctflow dataset build``;
4. with ``download=True``, a remote Minari id such as ``mujoco/hopper/medium-v0``,
   fetched by Minari itself (this needs a network; the project's own machines have
   none, which is why the package builds and ships its own data).
"""

from __future__ import annotations

import contextlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import h5py
import minari
import numpy as np
from minari import MinariDataset
from minari.data_collector import EpisodeBuffer

DEFAULT_DATASET_ID = "ctflow/hopper/medium-replay-v1"
"""Id of the Hopper-v5 medium-replay dataset shipped inside the package."""
BUILD_METADATA_KEY = "ctflow_build"
"""Key of the JSON record of how a dataset was made, in the Minari metadata."""
POLICY_FILE = "policy.zip"
"""File name of the SB3 policy saved beside a dataset's ``data/`` folder."""


def minari_root() -> Path:
    """Minari's datasets folder: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``, as an absolute path.

    Absolute because Minari mishandles relative roots (see :func:`minari_root_at`).
    """
    env_root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env_root).absolute() if env_root else Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def minari_root_at(path: str | os.PathLike) -> Iterator[None]:
    """Point Minari at ``path`` (``$MINARI_DATASETS_PATH``) for the duration of the block.

    Writers use it so that Minari's collectors and ``create_dataset*`` functions work
    inside a scratch folder; the previous value (or its absence) is restored after.
    ``path`` is made absolute first: Minari's ``MinariStorage.get_size`` joins a
    dataset's folder onto the results of globbing it, which repeats a relative folder
    (``root/x/root/x/main_data.hdf5``), so every write under a relative root failed.
    """
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def shipped_datasets_root() -> Path:
    """The Minari root of the datasets shipped in the package (``ctflow_gym/assets/datasets``).

    Set ``MINARI_DATASETS_PATH`` to this folder to read the shipped datasets with
    Minari's own API and CLI (``minari.load_dataset(DEFAULT_DATASET_ID)``,
    ``minari list local``). Minari only reads there.
    """
    return Path(str(resources.files("ctflow_gym") / "assets" / "datasets"))


def default_dataset_path() -> Path:
    """Folder of the shipped default dataset (``data/`` and ``policy.zip`` inside)."""
    return shipped_datasets_root() / DEFAULT_DATASET_ID


SHIPPED_POLICIES = {"final": POLICY_FILE, "medium": "medium_policy.zip"}
"""Policies shipped beside the default dataset, by name -> file in its folder.

- ``"final"``: the SB3 SAC model at the end of the training run that recorded the
  dataset (near-expert on Hopper-v5, deterministic return about 3000);
- ``"medium"``: an SB3 SAC checkpoint at medium level (deterministic return about
  1000-1600, every episode ends in a fall), from a separate run with the recording
  run's settings (``scripts/train_medium_policy.py`` says how it was made and chosen).
"""


def default_policy_path() -> Path:
    """The SB3 SAC checkpoint of the training run that recorded the shipped dataset (``"final"``)."""
    return default_dataset_path() / POLICY_FILE


def shipped_policy_path(name: str = "final") -> Path:
    """The SB3 checkpoint of the shipped policy ``name`` (see :data:`SHIPPED_POLICIES`).

    Raises ``ValueError`` naming ``name`` and the known names for any other name.
    """
    if name not in SHIPPED_POLICIES:
        raise ValueError(
            f"name: no shipped policy called {name!r}; the shipped policies are {sorted(SHIPPED_POLICIES)}"
        )
    return default_dataset_path() / SHIPPED_POLICIES[name]


def _data_folder(path: Path) -> Path | None:
    if (path / "data" / "metadata.json").is_file():
        return path / "data"
    if (path / "metadata.json").is_file():
        return path
    return None


def load_dataset(dataset: MinariDataset | str | os.PathLike, download: bool = False) -> MinariDataset:
    """Return the Minari dataset named by ``dataset`` (see the module docstring).

    A ``MinariDataset`` is returned as it is. Raises ``FileNotFoundError`` naming the
    argument, the places looked at and the local ids, when nothing matches.
    """
    if isinstance(dataset, MinariDataset):
        return dataset
    if not isinstance(dataset, (str, os.PathLike)):
        raise TypeError(f"dataset must be a MinariDataset, a Minari id or a path; got {type(dataset).__name__}")
    path = Path(dataset).expanduser()
    if path.exists():
        folder = _data_folder(path)
        if folder is None:
            raise FileNotFoundError(
                (
                    f"dataset: {str(path)!r} exists but holds no Minari dataset (no metadata.json in it or in "
                    "its data/ folder)"
                )
            )
        return MinariDataset(folder)
    name = str(dataset)
    if name == DEFAULT_DATASET_ID:
        return MinariDataset(default_dataset_path() / "data")
    local_folder = _data_folder(minari_root() / name)
    if local_folder is not None:
        return MinariDataset(local_folder)
    if download:
        return minari.load_dataset(name, download=True)
    local = sorted(minari.list_local_datasets().keys())
    raise FileNotFoundError(
        f"dataset: no Minari dataset {name!r}: not a path, not the shipped "
        f"{DEFAULT_DATASET_ID!r}, and not under Minari's root {minari_root()} "
        f"(local ids: {local or 'none'}). Build one with `ctflow dataset build`, or pass "
        "download=True where a network can reach Minari's remote datasets."
    )


def build_record(dataset: MinariDataset) -> dict[str, Any] | None:
    """How ``dataset`` was made (config, steps, wall time), if ctflow_gym built it."""
    raw = dataset.storage.metadata.get(BUILD_METADATA_KEY)
    return json.loads(raw) if raw else None


def dataset_summary(dataset: MinariDataset) -> dict[str, Any]:
    """Id, env, size, episode-return statistics and build record of ``dataset``."""
    returns = np.array([float(np.sum(episode.rewards)) for episode in dataset.iterate_episodes()])
    record = build_record(dataset)
    summary = {
        "dataset_id": dataset.id,
        "env_id": dataset.env_spec.id if dataset.env_spec is not None else None,
        "episodes": int(dataset.total_episodes),
        "steps": int(dataset.total_steps),
        "return_min": float(returns.min()),
        "return_mean": float(returns.mean()),
        "return_max": float(returns.max()),
        "has_sim_states": record is not None and "sim_state_spec" in record,
    }
    if record is not None:
        summary["build"] = {
            key: record[key] for key in ("config", "wall_time_s", "command", "versions") if key in record
        }
        for key in ("sac_steps", "target_return", "target_reached", "stop_reason", "thinned"):
            if key in record:
                summary["build"][key] = record[key]
    return summary


def finish_dataset(dataset: MinariDataset, record: dict[str, Any]) -> None:
    """Store ``record`` (how ``dataset`` was made) in its metadata under :data:`BUILD_METADATA_KEY`
    and compact its HDF5 file (:func:`compact_hdf5`): the last step of every writer."""
    dataset.storage.update_metadata({BUILD_METADATA_KEY: json.dumps(record)})
    compact_hdf5(Path(dataset.storage.data_path) / "main_data.hdf5")


def compact_hdf5(path: str | os.PathLike) -> None:
    """Rewrite a Minari HDF5 file compressed (gzip + shuffle), one chunk per array.

    Minari writes every array chunked and growable, which costs a few kB per array and
    so dominates datasets of many short episodes (random-level Hopper episodes are
    ~20 steps). The rewritten file keeps Minari's exact group/dataset layout and
    attributes; HDF5 decompresses transparently, so Minari reads it unchanged. It
    is no longer appendable, which a finished dataset need not be. The new file is
    written beside ``path`` and renamed over it, so ``path`` is never half-written.
    """
    path = Path(path)

    def copy(source, target) -> None:
        for key, value in source.attrs.items():
            target.attrs[key] = value
        for name, item in source.items():
            if isinstance(item, h5py.Group):
                copy(item, target.create_group(name))
                continue
            values = item[()]
            if item.shape == () or values.size == 0:
                copied = target.create_dataset(name, data=values)
            else:
                copied = target.create_dataset(
                    name, data=values, chunks=values.shape, compression="gzip", compression_opts=9, shuffle=True
                )
            for key, value in item.attrs.items():
                copied.attrs[key] = value

    staging = path.with_suffix(".compact.tmp")
    try:
        with h5py.File(path, "r") as source, h5py.File(staging, "w", libver="latest") as target:
            copy(source, target)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def episode_buffer(episode_id: int, episode, state_key: str, start: int = 0, stop: int | None = None) -> EpisodeBuffer:
    """A Minari ``EpisodeBuffer`` copy of a recorded ``episode`` (an ``EpisodeData``) with its simulator states
    (the ``infos`` entry ``state_key``); steps ``start`` to ``stop`` (default: all of them).

    For writers that copy episodes into a new dataset (thinning, augmented improvement). A
    part that ends before the episode does is truncated there (steps ``start..stop-1``,
    observations and states ``start..stop``); one that reaches the end keeps the episode's
    own termination and truncation.
    """
    n = len(episode.actions)
    stop = n if stop is None else stop
    if not 0 <= start < stop <= n:
        raise ValueError(f"start, stop: need 0 <= start < stop <= {n} (the episode's steps); got {start}, {stop}")
    terminations = list(episode.terminations[start:stop])
    truncations = list(episode.truncations[start:stop])
    if stop < n:
        terminations[-1], truncations[-1] = False, True
    return EpisodeBuffer(
        id=episode_id,
        observations=list(episode.observations[start : stop + 1]),
        actions=list(episode.actions[start:stop]),
        rewards=list(episode.rewards[start:stop]),
        terminations=terminations,
        truncations=truncations,
        infos={state_key: list(episode.infos[state_key][start : stop + 1])},
    )
