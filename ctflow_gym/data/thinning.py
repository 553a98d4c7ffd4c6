"""Thin a Minari dataset: keep a subset of its episodes, spread evenly over it or the best of them.

Spread evenly: for shipping a replay dataset within a size budget while keeping its whole
range of quality (random-level first episodes to medium-level last ones). The best: the
episodes filtered BC ("%BC") clones (:func:`best_episodes`), as a dataset of their own, so
that they can be improved and extracted from like any dataset. Or episodes chosen
elsewhere (e.g. Flow to Better's top k by score, ``FTBRefiner.top_episodes``). The copy is made
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
from ctflow_gym.data.validation import require_episode_ids, require_int
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY


def thin_dataset(
    source: MinariDataset | str | os.PathLike,
    keep_every: int | None,
    root: str | os.PathLike,
    dataset_id: str | None = None,
    overwrite: bool = False,
    target_steps: int | None = None,
    progress_bar: bool = True,
    top_fraction: float | None = None,
    piece: int | None = None,
    episodes=None,
) -> Path:
    """Write a copy of ``source`` that keeps a subset of its episodes, spread evenly or the best.

    Exactly one of: ``keep_every=k`` keeps episodes 0, k, 2k, ...; ``target_steps=n`` keeps
    the fewest evenly spaced episodes (first and last included) whose steps add up to
    at least n (finer than any k when a size budget is tight); ``top_fraction=f`` keeps
    the best episodes by return that hold at most a fraction f of the steps
    (:func:`best_episodes`, filtered BC's rule); ``episodes=ids`` keeps those episode ids
    (in the dataset's order). With ``target_steps``, ``piece=L`` thins
    pieces instead of whole episodes: every episode is cut into consecutive pieces of L
    steps (its last one shorter) and the fewest evenly spaced pieces over the dataset whose
    steps add up to at least n are kept, each written as an episode of its own (truncated
    where its episode went on). Whole episodes (or windows written as episodes) thinned
    leave holes as long as they are along the data's trajectories; ``piece=1`` leaves
    none, every part of every trajectory kept at a lower density: the equal-size control
    that changes only the size (``benchmarks/distillation.py``). The copy goes to
    ``<root>/<dataset_id>`` (default id: the source's), keeps simulator states and the
    source's build record with a ``"thinned"`` entry added, and carries the
    ``policy.zip`` that lies beside the source's ``data/`` folder, if there is one.
    ``source`` is anything :func:`ctflow_gym.data.load_dataset` accepts.
    ``progress_bar`` shows a bar over the copied episodes (see
    :mod:`ctflow_gym.progress`). Returns the folder written.
    """
    if sum(value is not None for value in (keep_every, target_steps, top_fraction, episodes)) != 1:
        raise ValueError("give exactly one of keep_every, target_steps, top_fraction and episodes")
    if top_fraction is not None and (
        isinstance(top_fraction, bool) or not isinstance(top_fraction, (int, float)) or not 0 < top_fraction <= 1
    ):
        raise ValueError(f"top_fraction must be a number in (0, 1]; got {top_fraction!r}")
    if piece is not None:
        if target_steps is None:
            raise ValueError(
                f"piece: thins pieces to a step target, so it needs target_steps; got piece={piece!r} alone"
            )
        require_int(piece, "piece")
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
    spans: dict[int, list[tuple[int, int]]] = {}  # episode index -> its kept (start, stop) pieces, when thinned so
    if keep_every is not None:
        kept = list(range(0, dataset.total_episodes, keep_every))
    elif episodes is not None:
        kept = require_episode_ids(episodes, dataset).tolist()
    elif top_fraction is not None:
        # one pass keeping two numbers per episode, not every episode's arrays
        ranked = np.array([(np.sum(e.rewards, dtype=np.float64), len(e.actions)) for e in dataset.iterate_episodes()])
        kept = best_episodes(ranked[:, 1].astype(np.int64), ranked[:, 0], top_fraction).tolist()
    else:
        lengths = [len(e.actions) for e in dataset.iterate_episodes()]
        unit = piece or max(lengths)  # one piece per episode: whole episodes
        pieces = [(i, start, min(start + unit, n)) for i, n in enumerate(lengths) for start in range(0, n, unit)]
        chosen = _evenly_spaced(np.array([stop - start for _, start, stop in pieces]), target_steps)
        for i, start, stop in (pieces[k] for k in chosen):
            spans.setdefault(i, []).append((start, stop))
        kept = sorted(spans)
    buffers = []
    with progress.progress_bar(total=len(kept), desc="thin", unit="episode", disable=not progress_bar) as bar:
        for index, episode in zip(kept, dataset.iterate_episodes(kept)):
            for start, stop in spans.get(index, [(0, None)]):
                buffers.append(episode_buffer(len(buffers), episode, SIM_STATE_INFO_KEY, start, stop))
            bar.update(1)
    record = build_record(dataset) or {}
    record["thinned"] = {
        "source_id": dataset.id,
        "source_episodes": dataset.total_episodes,
        "source_steps": dataset.total_steps,
        "keep_every": keep_every,
        "target_steps": target_steps,
        "top_fraction": top_fraction,
        "piece": piece,
        "episodes": kept if episodes is not None else None,
        "kept_episodes": len(kept),
        "written_episodes": len(buffers),
    }
    metadata = dataset.storage.metadata
    kept_note = f"{len(kept)} of {dataset.total_episodes} episodes kept"
    how = "the best by return" if top_fraction is not None else "evenly spaced" if episodes is None else "chosen"
    if piece is not None:
        kept_note += f" in part ({len(buffers)} pieces of up to {piece} steps)"
        how = f"evenly spaced pieces of up to {piece} steps"
    policy = Path(dataset.storage.data_path).parent / POLICY_FILE
    return write_derived_dataset(
        dataset,
        buffers,
        dataset_id,
        root,
        record,
        algorithm_name=metadata.get("algorithm_name", "ctflow_gym") + f", {kept_note}",
        code_permalink="ctflow_gym.data.thinning.thin_dataset",
        description=metadata.get("description", "") + f" Thinned: {kept_note}, {how}.",
        scratch_prefix=".ctflow-thin-",
        extra_files=[policy] if policy.is_file() else [],
    )


def _evenly_spaced(lengths: np.ndarray, target_steps: int) -> list[int]:
    """The fewest evenly spaced indices (of episodes or pieces) whose lengths sum to >= ``target_steps``."""

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


def best_episodes(lengths: np.ndarray, returns: np.ndarray, fraction: float) -> np.ndarray:
    """The indices (ascending) of the best episodes that together hold at most ``fraction`` of all steps.

    Filtered BC's rule ("%BC", the Decision Transformer code's ``pct_traj``): episodes ranked
    by return (ties: the earlier first), taken best first until the next would bring the
    kept steps above ``int(fraction * total)``; the best episode is kept even when it alone
    is longer. ``ValueError`` naming ``fraction`` unless it is in (0, 1], and naming
    ``returns`` unless there is one per episode (at least one episode).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1]; got {fraction!r}")
    lengths, returns = np.asarray(lengths), np.asarray(returns, dtype=np.float64)
    if len(lengths) == 0 or returns.shape != lengths.shape:
        raise ValueError(f"returns: one per episode expected ({len(lengths)} lengths); got shape {returns.shape}")
    best_first = np.argsort(-returns, kind="stable")
    budget = max(int(fraction * int(lengths.sum())), 1)
    count = max(1, int(np.sum(np.cumsum(lengths[best_first]) <= budget)))
    return np.sort(best_first[:count])
