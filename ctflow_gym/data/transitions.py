"""A Minari dataset as flat (s, a, r, s', terminal) transitions for offline agents.

Minari stores every episode with its final observation, so the next observation of
the last step of a truncated (time-limit) episode is real: such a step bootstraps
(``terminations`` is 0) and only true terminations stop the TD target. This is the
D4RL "timeouts" convention without losing the last transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from minari import MinariDataset

from ctflow_gym.data.minari_io import load_dataset
from ctflow_gym.data.validation import (
    require_continuous_actions,
    require_episode_ids,
    require_finite,
    require_flat_observations,
)


@dataclass(frozen=True)
class Transitions:
    """N transitions, arrays aligned on the first axis.

    Attributes:
        observations: (N, obs_dim) float32.
        actions: (N, act_dim) float32, as recorded (environment units).
        rewards: (N,) float32.
        next_observations: (N, obs_dim) float32.
        terminations: (N,) float32, 1 where the episode ended in a terminal state.
        episode_ends: (N,) bool, True at the last step of each episode (terminal or
            truncated); for cutting episodes back out, e.g. for peer libraries.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminations: np.ndarray
    episode_ends: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, in dataset order."""
        ends = np.flatnonzero(self.episode_ends)
        starts = np.concatenate([[0], ends[:-1] + 1])
        return np.array([self.rewards[s : e + 1].sum(dtype=np.float64) for s, e in zip(starts, ends)])


def load_transitions(dataset: MinariDataset | str, episodes: Sequence[int] | None = None) -> Transitions:
    """Every transition of ``dataset`` (a Minari dataset, id or path), checked.

    ``episodes`` limits them to those episode ids (e.g. a refiner's training episodes).

    Raises ``TypeError`` for a discrete action space or non-flat observations and
    ``ValueError`` naming the episode for NaN or inf values.
    """
    dataset = load_dataset(dataset)
    require_continuous_actions(dataset.action_space, "dataset")
    require_flat_observations(dataset.observation_space, "dataset")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "end")}
    if episodes is not None:
        episodes = [int(e) for e in require_episode_ids(episodes, dataset)]
    for episode in dataset.iterate_episodes(episodes):
        obs, act, rew = (np.asarray(v) for v in (episode.observations, episode.actions, episode.rewards))
        where = f"episode {episode.id} of dataset {dataset.id!r}"
        require_finite(obs, "dataset observations", where)
        require_finite(act, "dataset actions", where)
        require_finite(rew, "dataset rewards", where)
        terminations = np.asarray(episode.terminations)
        steps = len(act)
        parts["obs"].append(obs[:steps])
        parts["next"].append(obs[1 : steps + 1])
        parts["act"].append(act)
        parts["rew"].append(rew)
        parts["term"].append(np.asarray(terminations[:steps], dtype=np.float32))
        end = np.zeros(steps, dtype=bool)
        end[-1] = True
        parts["end"].append(end)
    if not parts["act"]:
        raise ValueError(f"dataset {dataset.id!r} holds no transitions")
    return Transitions(
        observations=np.concatenate(parts["obs"]).astype(np.float32),
        actions=np.concatenate(parts["act"]).astype(np.float32),
        rewards=np.concatenate(parts["rew"]).astype(np.float32),
        next_observations=np.concatenate(parts["next"]).astype(np.float32),
        terminations=np.concatenate(parts["term"]),
        episode_ends=np.concatenate(parts["end"]),
    )
