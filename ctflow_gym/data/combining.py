"""Join datasets of one env into a new Minari dataset (D4RL's medium-expert is such a join).

The episodes of every source, in order, with their recorded simulator states, written
through ``minari.combine_datasets`` into a temporary folder, compacted, and moved into
place with one rename: an interrupted join leaves nothing at the target.

Minari joins only datasets with equal env specs. The wrapper that records simulator states
(``SimStateRecorder``) is in the specs of the datasets the builder records and absent from
those ``distill`` and ``ctflow improve`` write, though it never changes the env; sources
that differ by it alone are joined episode by episode (``write_derived_dataset``) in the
env without it, keeping each step's simulator state (their other per-step infos are not
carried: nothing in this package reads them).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import minari

from ctflow_gym.data.derived import write_dataset_atomically, write_derived_dataset
from ctflow_gym.data.minari_io import build_record, episode_buffer, load_dataset, minari_root
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY

RECORDING_WRAPPERS = ("SimStateRecorder",)
"""Wrappers that only record (never change the env): specs that differ by these alone are of the same env."""


def combine_datasets(
    sources: Sequence[str | os.PathLike],
    dataset_id: str,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the episodes of ``sources`` (Minari ids or paths, at least two, one env) as ``dataset_id``.

    ``root`` is the datasets folder to write into (default: Minari's root). Sources whose
    env specs differ only by the state-recording wrapper are joined in the env without it
    (see the module docstring). Raises ``ValueError`` naming ``sources`` for fewer than two,
    for datasets of different envs, or for specs that differ otherwise (naming the fields),
    ``FileExistsError`` if the target exists and ``overwrite`` is false.
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
    plain = _spec_without_recording_wrappers(datasets)
    if plain is None:
        return write_dataset_atomically(
            dataset_id,
            root,
            record,
            lambda: minari.combine_datasets(datasets, dataset_id),
            scratch_prefix=".ctflow-combine-",
        )
    buffers = []
    for dataset in datasets:
        for episode in dataset.iterate_episodes():
            if SIM_STATE_INFO_KEY not in episode.infos:
                raise ValueError(f"sources: {dataset.id} has no simulator states; join datasets of equal env specs")
            buffers.append(episode_buffer(len(buffers), episode, SIM_STATE_INFO_KEY))
    return write_derived_dataset(
        plain,
        buffers,
        dataset_id,
        root,
        record,
        algorithm_name="ctflow_gym combine_datasets",
        code_permalink="ctflow_gym.data.combining.combine_datasets",
        description=f"The episodes of {', '.join(str(source) for source in sources)}, in order.",
        scratch_prefix=".ctflow-combine-",
    )


def _spec_without_recording_wrappers(datasets: list):
    """None where Minari can join ``datasets`` as they are; else their common env spec without recording wrappers.

    Raises ``ValueError`` naming ``sources`` and the fields where the specs differ otherwise.
    """
    specs = [dataset.env_spec for dataset in datasets]
    if None in specs or not _differing_fields(specs):  # Minari joins these (time limits: the largest) or names
        return None  # the mix of datasets with and without a spec
    plain = [
        dataclasses.replace(
            spec, additional_wrappers=tuple(w for w in spec.additional_wrappers if w.name not in RECORDING_WRAPPERS)
        )
        for spec in specs
    ]
    differ = _differing_fields(plain)
    if differ:
        raise ValueError(f"sources: the datasets' env specs differ in {differ}; Minari joins only equal specs")
    limits = [spec.max_episode_steps for spec in plain]
    return dataclasses.replace(plain[0], max_episode_steps=None if None in limits else max(limits))


def _differing_fields(specs: list) -> list[str]:
    """The env spec fields on which ``specs`` differ, the time limit aside (joined as Minari joins it)."""
    return sorted(
        field.name
        for field in dataclasses.fields(specs[0])
        if field.name != "max_episode_steps"
        and any(getattr(s, field.name) != getattr(specs[0], field.name) for s in specs)
    )
