"""Write realised improved windows as a Minari dataset, with where each came from.

Each kept window becomes one episode of its realised length (truncated at its end,
terminated only where the simulator terminated), with the simulator state at every
observation, so any of its windows replays exactly like those of a built dataset. The
build record (:func:`ctflow_gym.data.minari_io.build_record`) holds the improvement's
provenance: source dataset, improver and checkpoint, settings, counts, and per written
episode its source episode and step, execution, predicted and realised gain. Written in
a scratch folder and renamed into place, like every dataset the package writes.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import minari
from minari import MinariDataset
from minari.data_collector import EpisodeBuffer

from ctflow_gym.atomic import move_into_place, scratch_folder
from ctflow_gym.data.minari_io import finish_dataset, minari_root_at
from ctflow_gym.replay.realisation import RealisedWindow
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY


def _realised_buffer(episode_id: int, realised: RealisedWindow) -> EpisodeBuffer:
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


def _source_buffer(episode_id: int, episode) -> EpisodeBuffer:
    return EpisodeBuffer(
        id=episode_id,
        observations=list(episode.observations),
        actions=list(episode.actions),
        rewards=list(episode.rewards),
        terminations=list(episode.terminations),
        truncations=list(episode.truncations),
        infos={SIM_STATE_INFO_KEY: list(episode.infos[SIM_STATE_INFO_KEY])},
    )


def write_improved_dataset(
    source: MinariDataset,
    realised: Sequence[RealisedWindow],
    dataset_id: str,
    root: Path,
    record: dict[str, Any],
    include_source: bool = False,
    description: str = "",
) -> Path:
    """Write ``realised`` (after ``source``'s own episodes if ``include_source``) as ``dataset_id`` under ``root``.

    ``record`` is stored as the build record. The caller has checked that the target may
    be written. Returns the folder written.
    """
    buffers = []
    if include_source:
        for episode in source.iterate_episodes():
            buffers.append(_source_buffer(len(buffers), episode))
    for window in realised:
        buffers.append(_realised_buffer(len(buffers), window))
    if not buffers:
        raise ValueError("no window was improved, so there is nothing to write (see the improvement summary)")
    metadata = source.storage.metadata
    with scratch_folder(root, ".ctflow-improve-") as scratch:
        (scratch / dataset_id).parent.mkdir(parents=True, exist_ok=True)  # Minari makes only the last folder
        with minari_root_at(scratch), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(author_email|code_permalink).*")
            written = minari.create_dataset_from_buffers(
                dataset_id,
                buffer=buffers,
                env=source.env_spec,
                eval_env=source.env_spec.id,
                algorithm_name=f"ctflow_gym improve ({record['improver']['kind']})",
                code_permalink="ctflow_gym.improve.improve_dataset",
                author="ctflow_gym",
                ref_min_score=metadata.get("ref_min_score"),
                ref_max_score=metadata.get("ref_max_score"),
                description=description,
            )
            finish_dataset(written, record)
        return move_into_place(scratch / dataset_id, root / dataset_id)
