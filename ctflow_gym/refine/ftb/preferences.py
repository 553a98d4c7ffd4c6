"""Flow to Better's preferences: scripted-teacher labels and preference augmentation by score blocks.

- :func:`scripted_labels` (paper section 4.1; code ``utils/helpers.py``): pairs of
  ``segment``-step segments drawn uniformly from the dataset's episodes, labelled by
  which has the higher true return (ties: the second, as the code does).
- :func:`score_blocks` (paper section 3.2 "preference augmentation"; code
  ``data/ranking_data.py``): 1-D k-means of the trajectories' scores into K blocks,
  which on a line are contiguous score intervals, ordered from worst to best. The
  code runs sklearn's k-means++ with 40 restarts; here Lloyd's algorithm from the
  K evenly spaced quantiles, which is deterministic and needs no sklearn.
- :class:`BlockPairs`: training pairs (block k -> block k + 1), ``pairs_per_block``
  for every k per batch, drawn afresh at each step (code: 3 per block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LabelledPairs:
    """Segment pairs and which one the teacher prefers.

    Attributes:
        first_observations, first_actions, second_observations, second_actions: (M, L, dim).
        labels: (M,) int64, 0 when the first segment has the higher return, 1 otherwise.
    """

    first_observations: np.ndarray
    first_actions: np.ndarray
    second_observations: np.ndarray
    second_actions: np.ndarray
    labels: np.ndarray


def scripted_labels(episodes, n_labels: int, segment: int, rng: np.random.Generator) -> LabelledPairs:
    """``n_labels`` pairs of ``segment``-step segments from ``episodes`` labelled by true return.

    ``episodes``: sequences of (observations, actions, rewards) arrays of one episode each.
    Raises ``ValueError`` naming ``segment`` when no episode is that long.
    """
    long = [e for e in episodes if len(e[1]) >= segment]
    if not long:
        raise ValueError(f"segment: no episode has {segment} steps; choose a shorter segment for the labels")
    lengths = np.array([len(e[1]) - segment + 1 for e in long], dtype=np.float64)
    weights = lengths / lengths.sum()  # a segment start uniform over every admissible start of the dataset

    def draw():
        chosen = rng.choice(len(long), size=n_labels, p=weights)
        starts = [int(rng.integers(lengths[i])) for i in chosen]
        obs = np.stack([long[i][0][s : s + segment] for i, s in zip(chosen, starts)])
        act = np.stack([long[i][1][s : s + segment] for i, s in zip(chosen, starts)])
        ret = np.array([float(np.sum(long[i][2][s : s + segment])) for i, s in zip(chosen, starts)])
        return obs, act, ret

    (o1, a1, r1), (o2, a2, r2) = draw(), draw()
    labels = np.where(r1 > r2, 0, 1).astype(np.int64)
    return LabelledPairs(o1, a1, o2, a2, labels)


def score_blocks(scores: np.ndarray, k: int, iterations: int = 100) -> np.ndarray:
    """Block index (0 = worst) of each score: 1-D k-means into ``k`` contiguous blocks.

    Raises ``ValueError`` naming ``blocks`` when there are fewer distinct scores than blocks.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(np.unique(scores)) < k:
        raise ValueError(
            f"blocks: K = {k} is larger than the number of distinct trajectory scores ({len(np.unique(scores))}); "
            "choose a smaller K or give more data"
        )
    centres = np.quantile(scores, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        assignment = np.argmin(np.abs(scores[:, None] - centres[None, :]), axis=1)
        updated = np.array(
            [scores[assignment == j].mean() if np.any(assignment == j) else centres[j] for j in range(k)]
        )
        if np.allclose(updated, centres):
            break
        centres = np.sort(updated)
    assignment = np.argmin(np.abs(scores[:, None] - centres[None, :]), axis=1)
    # renumber the blocks that are not empty 0..K'-1 in score order
    used = np.unique(assignment)
    return np.searchsorted(used, assignment)


class BlockPairs:
    """Draws (worse, better) index pairs from adjacent blocks, evenly over the K - 1 block pairs (paper Eq. 5)."""

    def __init__(self, blocks: np.ndarray, pairs_per_block: int):
        self.members = [np.flatnonzero(blocks == b) for b in range(int(blocks.max()) + 1)]
        if len(self.members) < 2:
            raise ValueError("blocks: preference augmentation needs at least two non-empty score blocks")
        self.pairs_per_block = pairs_per_block

    def sample(self, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Indices of ``pairs_per_block`` worse trajectories of each block k and better ones of block k + 1."""
        worse, better = [], []
        for low, high in zip(self.members[:-1], self.members[1:]):
            worse.append(low[torch.randint(len(low), (self.pairs_per_block,), generator=generator).numpy()])
            better.append(high[torch.randint(len(high), (self.pairs_per_block,), generator=generator).numpy()])
        return np.concatenate(worse), np.concatenate(better)
