"""``improve_dataset``: a dataset's windows improved by any refiner, verified in MuJoCo, written as a dataset.

The improve step of improve-then-extract: every window of the source dataset (cut at
the refiner's length, tiling each episode by default) is refined, realised from its
recorded start state and kept only if the realised window beats the source
(:mod:`ctflow_gym.improve.verification`); the kept realised windows are written as a
new Minari dataset with their provenance (:mod:`ctflow_gym.improve.writing`). Any
registered refiner family is an improver (CTFlow's ``TrajectoryRefiner`` included);
policies are then extracted from the result like from any dataset (e.g. ``BCAgent``).

An interrupted run leaves nothing at the target (it is written under a scratch name
and renamed at the end) and is restarted from the beginning: the refiner's sampling is
seeded and replays are exact, so a restart writes the same dataset.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from minari import MinariDataset
from minari.dataset.minari_dataset import parse_dataset_id

from ctflow_gym import progress
from ctflow_gym.data.minari_io import build_record, load_dataset, minari_root
from ctflow_gym.data.windows import Windows, make_windows
from ctflow_gym.improve.config import ImprovementConfig
from ctflow_gym.improve.verification import (
    VerifiedWindow,
    committed_steps,
    require_one_per_window,
    require_states,
    verify_proposals,
    verify_windows,
)
from ctflow_gym.improve.writing import write_improved_dataset
from ctflow_gym.refine.config import configured
from ctflow_gym.refine.contract import require_refiner
from ctflow_gym.refine.registry import refiner_kind


@dataclass(frozen=True)
class ImprovementReport:
    """What :func:`improve_dataset` did.

    Attributes:
        dataset_id, path: the improved dataset written.
        source_id: the dataset improved.
        windows: source windows refined and realised.
        accepted: realised windows kept (written as episodes).
        realised_gain_accepted: mean realised score gain of the kept windows.
        realised_gain_all: mean realised score gain over every window (kept or not).
        predicted_gain_accepted: mean of the refiner's own gain estimate over the kept
            windows (NaN when it gives none).
        executions: kept windows per execution (``"open_loop"``, ``"tracked"``).
        value_tail: whether scores had the value tail.
        wall_time_s: seconds from start to the renamed dataset.
        kept_rows: the rows of the windows improved whose realisation was kept, in the
            order they were written (the build record's ``improvement.episodes.row``).
    """

    dataset_id: str
    path: Path
    source_id: str
    windows: int
    accepted: int
    realised_gain_accepted: float
    realised_gain_all: float
    predicted_gain_accepted: float
    executions: dict[str, int] = field(default_factory=dict)
    value_tail: bool = False
    wall_time_s: float = 0.0
    kept_rows: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float:
        """Kept windows / refined windows."""
        return self.accepted / self.windows if self.windows else 0.0

    def summary(self) -> str:
        """Three lines for people (rounded)."""
        return (
            f"improved {self.source_id} -> {self.dataset_id} ({self.path})\n"
            f"kept {self.accepted} of {self.windows} windows ({100 * self.acceptance_rate:.1f}%), "
            f"by execution {self.executions}; score {'return + value tail' if self.value_tail else 'return'}\n"
            f"realised gain: kept {self.realised_gain_accepted:+.2f}, all windows {self.realised_gain_all:+.2f}; "
            f"refiner's predicted gain of the kept {_rounded(self.predicted_gain_accepted)} ({self.wall_time_s:.0f} s)"
        )


def _rounded(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:+.2f}"


def _mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if len(values) else float("nan")


def _checked_target(source: MinariDataset, dataset_id: str, root, overwrite: bool) -> Path:
    if not isinstance(dataset_id, str) or not dataset_id.strip() or dataset_id == source.id:
        raise ValueError(f"dataset_id must be a new dataset id (not the source's {source.id!r}); got {dataset_id!r}")
    try:  # checked before any work: Minari refuses a malformed id only when the dataset is written
        parse_dataset_id(dataset_id)
    except ValueError:
        raise ValueError(
            "dataset_id must be a Minari id, (namespace/)name-v<version> with no '.' (e.g. "
            f"'ctflow/hopper/improved-v0'); got {dataset_id!r}"
        ) from None
    root = Path(root) if root is not None else minari_root()
    if (root / dataset_id).exists() and not overwrite:
        raise FileExistsError(f"dataset_id: {dataset_id!r} already exists at {root / dataset_id}; pass overwrite=True")
    return root


def improve_dataset(
    dataset: MinariDataset | str | os.PathLike,
    refiner: Any,
    dataset_id: str,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
    config: ImprovementConfig | None = None,
    progress_bar: bool = True,
    policy: Any = None,
    **overrides: Any,
) -> ImprovementReport:
    """Improve ``dataset`` with ``refiner``, keep the verified windows, write them as ``dataset_id``.

    ``dataset``: anything :func:`ctflow_gym.data.load_dataset` takes; it must have
    recorded simulator states. ``refiner``: a fitted refiner of any registered family,
    for the dataset's env. ``root``: the datasets folder written into (default Minari's
    root). ``policy``: the policy whose continuation scores windows when
    ``continuation`` > 0 (an SB3 model, or a callable on batches of observations).
    Keywords ``overrides`` set fields of :class:`ImprovementConfig`. Raises
    ``FileExistsError`` naming ``dataset_id`` when it exists and ``overwrite`` is false.
    """
    started = time.time()
    config = configured(config or ImprovementConfig(), overrides, "improve_dataset")
    require_refiner(refiner)
    source = load_dataset(dataset)
    env_id = source.env_spec.id if source.env_spec is not None else None
    if refiner.env_id is not None and env_id is not None and refiner.env_id != env_id:
        raise ValueError(f"refiner: it was fitted for {refiner.env_id!r}, and the dataset is of {env_id!r}")
    root = _checked_target(source, dataset_id, root, overwrite)
    committed_steps(config, refiner.window)  # checked before any work
    windows = make_windows(source, refiner.window, stride=config.stride or refiner.window)
    require_states(windows, source.id)
    starts = _start_observations(source, windows.episode_ids, windows.start_steps)
    value_fn = getattr(refiner, "value_function", None) if config.value_tail else None
    verified = _in_batches(
        len(windows), config.batch_size, "improve", progress_bar,
        lambda index: verify_windows(refiner, windows.subset(index), config, value_fn, starts[index], policy),
    )  # fmt: skip
    return _write(source, windows, verified, refiner, dataset_id, root, config, value_fn is not None, started, policy)


def realise_proposals(
    dataset: MinariDataset | str | os.PathLike,
    windows: Windows,
    observations: np.ndarray,
    actions: np.ndarray,
    improver: Any,
    dataset_id: str,
    predicted_gain: np.ndarray | None = None,
    root: str | os.PathLike | None = None,
    overwrite: bool = False,
    config: ImprovementConfig | None = None,
    progress_bar: bool = True,
    policy: Any = None,
    **overrides: Any,
) -> ImprovementReport:
    """Realise windows proposed elsewhere from their source ``windows``' start states; keep and write the verified.

    For improvers whose proposals are not one refinement per window: Flow to Better's
    iterative improvement keeps windows that descend from dataset windows
    (``windows = make_windows(...).subset(pool.origins)``). ``improver`` is recorded as
    the provenance and supplies the inverse-dynamics model of tracked execution when it
    has one; ``config.strength``, ``samples`` and ``noise`` are not used. Otherwise as :func:`improve_dataset`.
    """
    started = time.time()
    config = configured(config or ImprovementConfig(), overrides, "realise_proposals")
    source = load_dataset(dataset)
    root = _checked_target(source, dataset_id, root, overwrite)
    require_states(windows, source.id)
    require_one_per_window(windows, observations, actions)  # before any batch is realised
    committed_steps(config, windows.window)
    starts = _start_observations(source, windows.episode_ids, windows.start_steps)
    value_fn = getattr(improver, "value_function", None) if config.value_tail else None
    predicted = None if predicted_gain is None else np.asarray(predicted_gain)
    verified = _in_batches(
        len(windows), config.batch_size, "realise", progress_bar,
        lambda index: verify_proposals(
            improver, windows.subset(index), observations[index], actions[index],
            None if predicted is None else predicted[index], config, value_fn, starts[index], policy,
        ),
    )  # fmt: skip
    return _write(source, windows, verified, improver, dataset_id, root, config, value_fn is not None, started, policy)


def _in_batches(n: int, batch_size: int, label: str, progress_bar: bool, verify) -> list[VerifiedWindow]:
    """``verify(slice)`` over consecutive slices of ``range(n)``, with one progress bar over the windows."""
    verified: list[VerifiedWindow] = []
    with progress.progress_bar(total=n, desc=label, unit="window", disable=not progress_bar) as bar:
        for lo in range(0, n, batch_size):
            verified += verify(slice(lo, lo + batch_size))
            bar.update(len(verified) - bar.n)
    return verified


def _write(source, windows, verified, improver, dataset_id, root, config, value_tail: bool, started: float, policy):
    """Write the accepted of ``verified`` with their provenance; the report."""
    kept = [i for i, v in enumerate(verified) if v.accepted]
    commit = committed_steps(config, windows.window)  # the span of the source each kept window replaces
    executions = {name: sum(verified[i].execution == name for i in kept) for name in ("open_loop", "tracked")}
    source_record = build_record(source) or {}
    record = {
        # make_windows and dataset_summary read the state spec here: the realised windows recorded the same one
        "sim_state_spec": source_record.get("sim_state_spec"),
        "source_build": source_record,
        "improver": {
            "kind": refiner_kind(type(improver)),
            "checkpoint": getattr(improver, "checkpoint_path", None),
        },
        "improvement": {
            "source_id": source.id,
            "config": config.to_dict(),
            "value_tail": value_tail,
            # what followed each window in its score (the config's continuation steps of it)
            "continuation_policy": type(policy).__name__ if config.continuation else None,
            "windows": len(windows),
            "accepted": len(kept),
            "executions": executions,
            "episodes": {
                "row": [int(i) for i in kept],
                "source_episode": [int(windows.episode_ids[i]) for i in kept],
                "source_start": [int(windows.start_steps[i]) for i in kept],
                "execution": [verified[i].execution for i in kept],
                "predicted_gain": [_json_number(verified[i].predicted_gain) for i in kept],
                "realised_gain": [verified[i].realised_gain for i in kept],
            },
        },
    }
    path = write_improved_dataset(
        source,
        [verified[i].realised for i in kept],
        dataset_id,
        root,
        record,
        source_steps=config.source_steps,
        replaced=[(e, t, t + commit) for e, t in zip(windows.episode_ids[kept], windows.start_steps[kept])],
        description=f"{len(kept)} windows of {source.id} improved by {record['improver']['kind']} and realised in "
        "MuJoCo from their recorded start states" + _SOURCE_STEPS_WORDS[config.source_steps],
    )
    return ImprovementReport(
        dataset_id=dataset_id,
        path=path,
        source_id=source.id,
        windows=len(windows),
        accepted=len(kept),
        realised_gain_accepted=_mean([verified[i].realised_gain for i in kept]),
        realised_gain_all=_mean([v.realised_gain for v in verified]),
        predicted_gain_accepted=_mean([verified[i].predicted_gain for i in kept]),
        executions=executions,
        value_tail=value_tail,
        wall_time_s=time.time() - started,
        kept_rows=record["improvement"]["episodes"]["row"],
    )


_SOURCE_STEPS_WORDS = {
    "none": "",
    "all": ", after the source's episodes",
    "unimproved": ", after the source's steps that no kept window improved",
}


def _json_number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _start_observations(source: MinariDataset, episode_ids: np.ndarray, start_steps: np.ndarray) -> np.ndarray:
    """Each window's first observation at the dataset's own precision."""
    wanted = np.unique(episode_ids)
    observations = {int(e.id): e.observations for e in source.iterate_episodes(wanted.tolist())}
    return np.stack([observations[int(e)][int(t)] for e, t in zip(episode_ids, start_steps)])
