"""Filtered behaviour cloning's data: the dataset's best episodes ("%BC", Chen et al. 2021).

The Decision Transformer paper's %BC clones "the top X% of timesteps in the dataset,
ordered by episode returns"; its code (``pct_traj``) takes whole episodes, best return
first, while together they hold at most X% of the dataset's timesteps, and always the best
episode. :func:`top_episodes` applies that rule
(:func:`ctflow_gym.data.thinning.best_episodes`, which also writes them as a dataset).
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from agents.bc.config import require_top_fraction
from ctflow_gym.data.thinning import best_episodes
from ctflow_gym.data.transitions import Transitions


def episode_lengths(transitions: Transitions) -> np.ndarray:
    """The number of transitions of each episode, in dataset order."""
    ends = np.flatnonzero(transitions.episode_ends)
    return np.diff(np.concatenate([[-1], ends]))


def top_episodes(transitions: Transitions, fraction: float) -> Transitions:
    """The transitions of the best episodes that together hold at most ``fraction`` of all (at least one episode).

    Episodes are ranked by undiscounted return (ties: the earlier first) and taken best
    first until the next would bring the kept transitions above ``int(fraction * N)``;
    the best episode is kept even when it alone is longer. The kept episodes stay in
    dataset order. Raises ``ValueError`` naming ``top_fraction`` unless ``fraction`` is in (0, 1].
    """
    require_top_fraction(fraction)
    if fraction is None:
        raise ValueError("top_fraction must be a number in (0, 1] here; None means no filtering")
    lengths = episode_lengths(transitions)
    kept = np.zeros(len(lengths), dtype=bool)
    kept[best_episodes(lengths, transitions.episode_returns, fraction)] = True
    rows = np.repeat(kept, lengths)
    return Transitions(**{field.name: getattr(transitions, field.name)[rows] for field in fields(Transitions)})


__all__ = ["episode_lengths", "top_episodes"]
