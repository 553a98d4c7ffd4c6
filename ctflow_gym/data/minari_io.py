"""Load Minari datasets by id or by path, including the dataset shipped with the package.

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

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import minari
import numpy as np
from minari import MinariDataset

from ctflow_gym.data.builder import BUILD_METADATA_KEY, POLICY_FILE, minari_root

DEFAULT_DATASET_ID = "ctflow/hopper/medium-replay-v1"
"""Id of the Hopper-v5 medium-replay dataset shipped inside the package."""


def default_dataset_path() -> Path:
    """Folder of the shipped default dataset (``data/`` and ``policy.zip`` inside)."""
    return Path(str(resources.files("ctflow_gym") / "assets" / "hopper-medium-replay-v1"))


def default_policy_path() -> Path:
    """The SB3 SAC checkpoint of the medium policy that made the shipped dataset."""
    return default_dataset_path() / POLICY_FILE


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
            raise FileNotFoundError(f"dataset: {str(path)!r} exists but holds no Minari dataset (no metadata.json in it or in its data/ folder)")
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
        summary["build"] = {key: record[key] for key in ("config", "wall_time_s", "command", "versions") if key in record}
        for key in ("sac_steps", "target_return", "target_reached", "stop_reason", "thinned"):
            if key in record:
                summary["build"][key] = record[key]
    return summary
