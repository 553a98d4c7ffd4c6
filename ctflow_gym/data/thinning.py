"""Thin a Minari dataset: keep a subset of its episodes, spread evenly over it.

For shipping a replay dataset within a size budget while keeping its whole range of
quality (random-level first episodes to medium-level last ones). The copy is made
with Minari's own ``create_dataset_from_buffers`` and written like a build: in a
hidden scratch folder beside the target, renamed into place at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from minari import MinariDataset

from ctflow_gym import progress
from ctflow_gym.data.derived import write_derived_dataset
from ctflow_gym.data.minari_io import POLICY_FILE, build_record, episode_buffer, load_dataset
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY


def thin_dataset(
    source: MinariDataset | str | os.PathLike,
    keep_every: int | None,
    root: str | os.PathLike,
    dataset_id: str | None = None,
    overwrite: bool = False,
    target_steps: int | None = None,
    progress_bar: bool = True,
) -> Path:
    """Write a copy of ``source`` that keeps a subset of its episodes, spread evenly.

    Either ``keep_every=k`` keeps episodes 0, k, 2k, ..., or ``target_steps=n`` keeps
    the fewest evenly spaced episodes (first and last included) whose steps add up to
    at least n (finer than any k when a size budget is tight). The copy goes to
    ``<root>/<dataset_id>`` (default id: the source's), keeps simulator states and the
    source's build record with a ``"thinned"`` entry added, and carries the
    ``policy.zip`` that lies beside the source's ``data/`` folder, if there is one.
    ``source`` is anything :func:`ctflow_gym.data.load_dataset` accepts.
    ``progress_bar`` shows a bar over the copied episodes (see
    :mod:`ctflow_gym.progress`). Returns the folder written.
    """
    if (keep_every is None) == (target_steps is None):
        raise ValueError("give exactly one of keep_every and target_steps")
    if keep_every is not None and (not isinstance(keep_every, int) or keep_every < 1):
        raise ValueError(f"keep_every must be a positive integer; got {keep_every!r}")
    dataset = load_dataset(source)
    if target_steps is not None and (not isinstance(target_steps, int) or not 0 < target_steps <= dataset.total_steps):
        raise ValueError(
            f"target_steps must be an integer in [1, {dataset.total_steps}] (the source's steps); got {target_steps!r}"
        )
    dataset_id = dataset_id or dataset.id
    root = Path(root)
    final_path = root / dataset_id
    if final_path.exists() and not overwrite:
        raise FileExistsError(
            f"dataset_id: {dataset_id!r} already exists at {final_path}; pass overwrite=True to replace it"
        )
    if keep_every is not None:
        kept = list(range(0, dataset.total_episodes, keep_every))
    else:
        kept = _evenly_spaced_episodes(np.array([len(e.actions) for e in dataset.iterate_episodes()]), target_steps)
    buffers = []
    with progress.progress_bar(total=len(kept), desc="thin", unit="episode", disable=not progress_bar) as bar:
        for episode in dataset.iterate_episodes(kept):
            buffers.append(episode_buffer(len(buffers), episode, SIM_STATE_INFO_KEY))
            bar.update(1)
    record = build_record(dataset) or {}
    record["thinned"] = {
        "source_id": dataset.id,
        "source_episodes": dataset.total_episodes,
        "source_steps": dataset.total_steps,
        "keep_every": keep_every,
        "target_steps": target_steps,
        "kept_episodes": len(kept),
    }
    metadata = dataset.storage.metadata
    kept_note = f"{len(kept)} of {dataset.total_episodes} episodes kept"
    policy = Path(dataset.storage.data_path).parent / POLICY_FILE
    return write_derived_dataset(
        dataset,
        buffers,
        dataset_id,
        root,
        record,
        algorithm_name=metadata.get("algorithm_name", "ctflow_gym") + f", {kept_note}",
        code_permalink="ctflow_gym.data.thinning.thin_dataset",
        description=metadata.get("description", "")
        + f" Thinned: {len(kept)} evenly spaced episodes of {dataset.total_episodes} kept.",
        scratch_prefix=".ctflow-thin-",
        extra_files=[policy] if policy.is_file() else [],
    )


def _evenly_spaced_episodes(lengths: np.ndarray, target_steps: int) -> list[int]:
    """The fewest evenly spaced episode indices whose lengths sum to >= ``target_steps``."""

    def chosen(count: int) -> np.ndarray:
        return np.unique(np.round(np.linspace(0, len(lengths) - 1, count)).astype(int))

    low, high = 1, len(lengths)
    while low < high:  # the step sum grows (almost always) with the count; search the smallest
        middle = (low + high) // 2
        if lengths[chosen(middle)].sum() >= target_steps:
            high = middle
        else:
            low = middle + 1
    while lengths[chosen(low)].sum() < target_steps:  # guard the rare non-monotone step
        low += 1
    return chosen(low).tolist()
