"""Write realised improved windows as a Minari dataset, with where each came from.

Each kept window becomes one episode of its realised length (truncated at its end,
terminated only where the simulator terminated), with the simulator state at every
observation, so any of its windows replays exactly like those of a built dataset. The
build record (:func:`ctflow_gym.data.minari_io.build_record`) holds the improvement's
provenance: source dataset, improver and checkpoint, settings, counts, and per written
episode its row among the windows improved, source episode and step, execution,
predicted and realised gain. Written in
a scratch folder and renamed into place, like every dataset the package writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from minari import MinariDataset
from minari.data_collector import EpisodeBuffer

from ctflow_gym.data.derived import write_derived_dataset
from ctflow_gym.data.minari_io import episode_buffer
from ctflow_gym.replay.realisation import RealisedWindow
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY


class NothingImprovedError(ValueError):
    """No window was kept, so no dataset was written (the report of the attempt says why)."""


def realised_buffer(episode_id: int, realised: RealisedWindow) -> EpisodeBuffer:
    """``realised`` as the Minari episode ``episode_id`` (truncated unless it terminated; with its simulator states)."""
    n = len(realised)
    return EpisodeBuffer(
        id=episode_id,
        observations=list(realised.observations),
        actions=list(realised.actions),
        rewards=list(realised.rewards),
        terminations=[False] * (n - 1) + [realised.terminated],
        truncations=[False] * (n - 1) + [not realised.terminated],
        infos={SIM_STATE_INFO_KEY: list(realised.sim_states)},
    )


def _write_buffers(
    source: MinariDataset, buffers: list, dataset_id: str, root: Path, record: dict[str, Any], description: str
) -> Path:
    """Write ``buffers`` as ``dataset_id`` under ``root`` (:func:`ctflow_gym.data.derived.write_derived_dataset`)."""
    return write_derived_dataset(
        source,
        buffers,
        dataset_id,
        root,
        record,
        algorithm_name=f"ctflow_gym improve ({record['improver']['kind']})",
        code_permalink="ctflow_gym.improve.improve_dataset",
        description=description,
        scratch_prefix=".ctflow-improve-",
    )


def write_improved_dataset(
    source: MinariDataset,
    realised: Sequence[RealisedWindow],
    dataset_id: str,
    root: Path,
    record: dict[str, Any],
    source_steps: str = "none",
    replaced: Sequence[tuple[int, int, int]] = (),
    description: str = "",
) -> Path:
    """Write ``realised`` as ``dataset_id`` under ``root``, after the ``source`` steps ``source_steps`` names.

    ``source_steps`` as :attr:`ctflow_gym.improve.ImprovementConfig.source_steps`:
    ``"none"``, ``"all"`` (every source episode first), or ``"unimproved"`` (the source
    episodes without the spans ``replaced`` lists as ``(episode id, start step, stop
    step)``, each remaining run of steps an episode of its own). ``record`` is stored as
    the build record. The caller has checked that the target may be written. Returns the
    folder written.
    """
    buffers = []
    if source_steps != "none":
        cut: dict[int, list[tuple[int, int]]] = {}
        if source_steps == "unimproved":
            for episode_id, start, stop in replaced:
                cut.setdefault(int(episode_id), []).append((int(start), int(stop)))
        for episode in source.iterate_episodes():
            for start, stop in _kept_spans(len(episode.actions), cut.get(int(episode.id), [])):
                buffers.append(episode_buffer(len(buffers), episode, SIM_STATE_INFO_KEY, start, stop))
    for window in realised:
        buffers.append(realised_buffer(len(buffers), window))
    if not buffers:
        raise NothingImprovedError("no window was improved, so there is nothing to write")
    return _write_buffers(source, buffers, dataset_id, root, record, description)


def _kept_spans(length: int, removed: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The runs of steps ``0..length-1`` left once the ``removed`` ``(start, stop)`` spans are taken out."""
    spans, at = [], 0
    for start, stop in sorted(removed):
        if start > at:
            spans.append((at, start))
        at = max(at, stop)
    if at < length:
        spans.append((at, length))
    return spans


def write_unverified_dataset(
    source: MinariDataset,
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    dataset_id: str,
    root: Path,
    record: dict[str, Any],
    description: str = "",
) -> Path:
    """Write generated windows (N, H, .) as they are, unrealised: the control "train on generated data".

    What GTA / SynthER-style augmentation and Flow to Better's own extraction train on:
    plans whose states the actions need not produce. Each window is an episode of H - 1
    steps (its H states are the episode's H observations), truncated, without simulator
    states (nothing here can be replayed). ``rewards`` (N, H) are whatever the caller
    says they are; ``record`` must say what (e.g. a score model's per-step terms).
    """
    buffers = [
        EpisodeBuffer(
            id=i,
            observations=list(np.asarray(obs, np.float64)),
            actions=list(np.asarray(act[:-1], np.float32)),
            rewards=list(np.asarray(rew[:-1], np.float64)),
            terminations=[False] * (len(act) - 1),
            truncations=[False] * (len(act) - 2) + [True],
            infos={},
        )
        for i, (obs, act, rew) in enumerate(zip(observations, actions, rewards))
    ]
    if not buffers:
        raise ValueError("observations: no window to write")
    return _write_buffers(source, buffers, dataset_id, root, record, description)
