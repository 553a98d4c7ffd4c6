"""Local preference pairs of counterfactual transport flows (CTF paper, section 2.2, appendix A.3).

For each source window i: take its k nearest neighbours in normalised latent space
(Euclidean), excluding itself and every window of the same episode whose start is
fewer than H steps away (a shifted copy shares most of its steps, so "improving" to
it is no counterfactual). Among those k, the candidates are the j with
R_j >= R_i + margin; the nearest candidate is i's target. A window whose k nearest
neighbours hold no candidate gives no pair.

The non-local variant (for the non-local flow matching baseline) draws each source's
target uniformly among *all* windows with R_j >= R_i + margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PreferencePairs:
    """Index pairs (source, target) into a bank of windows, and how they were made."""

    sources: np.ndarray
    targets: np.ndarray
    k: int
    margin: float
    local: bool

    def __len__(self) -> int:
        return len(self.sources)


def _max_overlaps(episode_ids: np.ndarray, start_steps: np.ndarray, window: int) -> int:
    """Largest number of windows (itself included) any window overlaps in its episode."""
    span = int(start_steps.max() - start_steps.min()) + 2 * window + 1
    keys = np.sort(episode_ids.astype(np.int64) * span + (start_steps - start_steps.min()).astype(np.int64))
    hi = np.searchsorted(keys, keys + window - 1, side="right")
    lo = np.searchsorted(keys, keys - window + 1, side="left")
    return int((hi - lo).max())


def nearest_neighbours(
    latents: np.ndarray,
    episode_ids: np.ndarray,
    start_steps: np.ndarray,
    window: int,
    k: int,
    chunk: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest eligible neighbours of every latent: (indices, distances), (N, k).

    Exact search by chunked distance matrices (O(N^2 d) time, O(chunk * N) memory).
    A window overlaps at most ``m`` windows of its own episode (``m`` computed from
    the starts, 2H - 1 at stride 1), so the k nearest eligible ones are among the
    k + m nearest of all: those are found first and the overlapping ones dropped,
    which avoids an N x N overlap mask. Missing neighbours (fewer than k eligible
    windows) have index -1, distance inf.
    """
    z = torch.as_tensor(latents, dtype=torch.float32)
    n = len(z)
    candidates = min(n, k + _max_overlaps(episode_ids, start_steps, window))
    squared_norms = (z * z).sum(1)
    all_indices = np.full((n, k), -1, dtype=np.int64)
    all_distances = np.full((n, k), np.inf, dtype=np.float32)
    for begin in range(0, n, chunk):
        rows = slice(begin, min(begin + chunk, n))
        distances = torch.addmm(squared_norms[None, :], z[rows], z.T, alpha=-2.0).add_(squared_norms[rows, None])
        values, indices = torch.topk(distances, candidates, dim=1, largest=False)
        values, indices = values.clamp_min(0).sqrt().numpy(), indices.numpy()
        own = np.arange(rows.start, rows.stop)[:, None]
        overlapping = (episode_ids[indices] == episode_ids[own]) & (
            np.abs(start_steps[indices] - start_steps[own]) < window
        )
        # Stable sort keeps distance order among the eligible candidates.
        order = np.argsort(overlapping, axis=1, kind="stable")[:, :k]
        kept_values = np.take_along_axis(values, order, 1)
        kept_indices = np.take_along_axis(indices, order, 1)
        eligible = ~np.take_along_axis(overlapping, order, 1)
        width = kept_indices.shape[1]
        all_indices[rows, :width] = np.where(eligible, kept_indices, -1)
        all_distances[rows, :width] = np.where(eligible, kept_values, np.inf)
    return all_indices, all_distances


def local_pairs(
    latents: np.ndarray,
    feedback: np.ndarray,
    episode_ids: np.ndarray,
    start_steps: np.ndarray,
    window: int,
    k: int,
    margin: float,
) -> PreferencePairs:
    """Pairs (i, nearest j among i's k neighbours with R_j >= R_i + margin)."""
    neighbours, _ = nearest_neighbours(latents, episode_ids, start_steps, window, k)
    valid = neighbours >= 0
    neighbour_feedback = np.where(valid, feedback[np.where(valid, neighbours, 0)], -np.inf)
    improves = valid & (neighbour_feedback >= feedback[:, None] + margin)
    has_target = improves.any(axis=1)
    # Neighbours come sorted by distance, so the first improving one is the nearest.
    first = improves.argmax(axis=1)
    sources = np.flatnonzero(has_target)
    targets = neighbours[sources, first[sources]]
    return PreferencePairs(sources=sources, targets=targets, k=k, margin=margin, local=True)


def nonlocal_pairs(feedback: np.ndarray, margin: float, seed: int = 0) -> PreferencePairs:
    """Pairs (i, uniformly random j with R_j >= R_i + margin), no locality constraint."""
    rng = np.random.default_rng(seed)
    order = np.argsort(feedback, kind="stable")
    sorted_feedback = feedback[order]
    # Windows at or above R_i + margin are the tail of the sorted order from `first`.
    first = np.searchsorted(sorted_feedback, feedback + margin, side="left")
    has_target = first < len(feedback)
    sources = np.flatnonzero(has_target)
    picks = first[sources] + (rng.random(len(sources)) * (len(feedback) - first[sources])).astype(np.int64)
    return PreferencePairs(sources=sources, targets=order[picks], k=0, margin=margin, local=False)
