"""Join datasets of one env into a new Minari dataset (D4RL's medium-expert is such a join).

The episodes of every source, in order, with their recorded simulator states, written
through ``minari.combine_datasets`` into a temporary folder, compacted, and moved into
place with one rename: an interrupted join leaves nothing at the target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import minari

from ctflow_gym.data.derived import write_dataset_atomically
from ctflow_gym.data.minari_io import build_record, load_dataset, minari_root


def combine_datasets(
    sources: Sequence[str | os.PathLike],
    dataset_id: str,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the episodes of ``sources`` (Minari ids or paths, at least two, one env) as ``dataset_id``.

    ``root`` is the datasets folder to write into (default: Minari's root). Raises
    ``ValueError`` naming ``sources`` for fewer than two or for datasets of different
    envs, ``FileExistsError`` if the target exists and ``overwrite`` is false.
    """
    if len(sources) < 2:
        raise ValueError(f"sources: combining needs at least two datasets; got {len(sources)}")
    datasets = [load_dataset(source) for source in sources]
    env_ids = {dataset.env_spec.id if dataset.env_spec else None for dataset in datasets}
    if len(env_ids) != 1:
        raise ValueError(f"sources: the datasets are of different envs {sorted(map(str, env_ids))}")
    root = Path(root) if root else minari_root()
    final_path = root / dataset_id
    if final_path.exists() and not overwrite:
        raise FileExistsError(f"dataset_id: {dataset_id!r} already exists at {final_path}; pass overwrite=True")
    record = {"combined_from": [str(source) for source in sources]}
    specs = {(build_record(dataset) or {}).get("sim_state_spec") for dataset in datasets}
    if len(specs) == 1 and None not in specs:  # the recorded states replay with the sources' spec
        record["sim_state_spec"] = specs.pop()
    return write_dataset_atomically(
        dataset_id,
        root,
        record,
        lambda: minari.combine_datasets(datasets, dataset_id),
        scratch_prefix=".ctflow-combine-",
    )
