"""Episodes cut into fixed-length windows of states and actions, each with a feedback.

A window tau = (s_1..s_H, a_1..a_H) is H consecutive steps of one episode: the
observation before each action and the action (CTF paper, section 3). No window
crosses an episode end. Each window carries a scalar feedback R(tau):

- ``"return"`` (default): the sum of the window's H rewards;
- ``"return_to_go"``: the discounted return from the window's first step to the end
  of the episode, sum_k gamma^k r_{start+k};
- a callable ``feedback(observations, actions, rewards) -> (N,)`` taking the batched
  windows (N, H, ...) and returning one number per window.

When the dataset recorded simulator states (datasets built by this package do), each
window also carries the state at its first step, from which it can be replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, Iterator, NamedTuple, Sequence

import gymnasium as gym
import numpy as np
from minari import MinariDataset
from numpy.lib.stride_tricks import sliding_window_view

from ctflow_gym.data.minari_io import build_record, load_dataset
from ctflow_gym.data.validation import (
    require_continuous_actions,
    require_episode_ids,
    require_finite,
    require_flat_observations,
)
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY

FeedbackFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
FEEDBACK_KINDS = ("return", "return_to_go")


@dataclass(frozen=True)
class Windows:
    """A batch of N windows of length H, arrays aligned on the first axis.

    Attributes:
        observations: (N, H, obs_dim) float32, the observation before each action.
        actions: (N, H, act_dim) float32.
        rewards: (N, H) float64 (as recorded, so replayed returns compare exactly).
        feedback: (N,) float64, the window's scalar feedback R(tau).
        episode_ids: (N,) int64, the dataset episode each window comes from.
        start_steps: (N,) int64, index in its episode of the window's first step.
        sim_states: (N, state_dim) float64 simulator state at the first step, or None.
        env_id: the dataset's env id, when known.
        sim_state_spec: ``mjtState`` mask of ``sim_states``, when present.
        action_space: the dataset's action space (its bounds clip refined actions), when known.
        end_observations: (N, obs_dim) float32, the observation after each window's last
            action (s_H, where a bootstrapped feedback evaluates V), or None.
        end_terminated: (N,) bool, True where the window's last step ended its episode in a
            terminal state (then V(s_H) is 0), or None.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    feedback: np.ndarray
    episode_ids: np.ndarray
    start_steps: np.ndarray
    sim_states: np.ndarray | None = None
    env_id: str | None = None
    sim_state_spec: int | None = None
    action_space: gym.spaces.Box | None = None
    end_observations: np.ndarray | None = None
    end_terminated: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.observations)
        if self.observations.ndim != 3 or self.actions.ndim != 3:
            raise ValueError(
                "observations and actions must be (N, H, dim) arrays; got shapes "
                f"{self.observations.shape} and {self.actions.shape}"
            )
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray) and len(value) != n:
                raise ValueError(f"{field.name} has {len(value)} rows; expected {n} like observations")
        if self.actions.shape[1] != self.observations.shape[1]:
            raise ValueError(
                f"actions have window length {self.actions.shape[1]}; observations have {self.observations.shape[1]}"
            )

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def window(self) -> int:
        """Window length H."""
        return int(self.observations.shape[1])

    @property
    def obs_dim(self) -> int:
        """Observation size."""
        return int(self.observations.shape[2])

    @property
    def act_dim(self) -> int:
        """Action size."""
        return int(self.actions.shape[2])

    def subset(self, index) -> "Windows":
        """The windows selected by ``index`` (a boolean mask, integer array or slice)."""
        picked = {
            field.name: getattr(self, field.name)[index]
            for field in fields(self)
            if isinstance(getattr(self, field.name), np.ndarray)
        }
        return replace(self, **picked)


class EpisodeArrays(NamedTuple):
    """One episode as arrays (see :func:`iter_episode_arrays`)."""

    episode_id: int
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    sim_states: np.ndarray | None
    terminated: bool


def iter_episode_arrays(dataset: MinariDataset, episodes: Sequence[int] | None = None) -> Iterator[EpisodeArrays]:
    """Yield :class:`EpisodeArrays` ``(episode_id, observations, actions, rewards, sim_states, terminated)``.

    ``episodes`` limits the iteration to those episode ids (default: all).
    ``observations`` and ``sim_states`` have one more row than ``actions``
    (the state after the last action); ``terminated`` says whether the episode ended
    in a terminal state (rather than a time limit). Raises ``ValueError`` naming the
    episode on NaN or inf.
    """
    for episode in dataset.iterate_episodes(None if episodes is None else [int(e) for e in episodes]):
        observations = np.asarray(episode.observations)
        actions = np.asarray(episode.actions)
        rewards = np.asarray(episode.rewards)
        for name, values in (("observations", observations), ("actions", actions), ("rewards", rewards)):
            require_finite(values, name, where=f"episode {episode.id} of dataset {dataset.id!r}")
        infos = episode.infos or {}
        sim_states = np.asarray(infos[SIM_STATE_INFO_KEY], dtype=np.float64) if SIM_STATE_INFO_KEY in infos else None
        terminated = bool(np.asarray(episode.terminations)[-1]) if len(actions) else False
        yield EpisodeArrays(int(episode.id), observations, actions, rewards, sim_states, terminated)


def _feedback(
    kind: str | FeedbackFn, observations, actions, rewards, episode_rewards, starts, gamma: float
) -> np.ndarray:
    if callable(kind):
        values = np.asarray(kind(observations, actions, rewards), dtype=np.float64)
        if values.shape != (len(observations),):
            raise ValueError(f"feedback callable must return shape ({len(observations)},); got {values.shape}")
        return values
    if kind == "return":
        return rewards.astype(np.float64).sum(axis=1)
    if kind == "return_to_go":
        to_go = np.zeros(len(episode_rewards) + 1)
        for t in range(len(episode_rewards) - 1, -1, -1):
            to_go[t] = episode_rewards[t] + gamma * to_go[t + 1]
        return to_go[starts]
    raise ValueError(f"feedback must be one of {FEEDBACK_KINDS} or a callable; got {kind!r}")


def make_windows(
    dataset: MinariDataset | str,
    window: int,
    stride: int = 1,
    feedback: str | FeedbackFn = "return",
    gamma: float = 0.99,
    episodes: Sequence[int] | None = None,
) -> Windows:
    """Cut every episode of ``dataset`` (or only the ids in ``episodes``) into windows of ``window`` steps.

    Windows start every ``stride`` steps (``stride=1``: every step, so shifted
    copies overlap; the refiner's pair search excludes those). Episodes shorter than
    ``window`` give no window. ``feedback`` and ``gamma`` are described in the module
    docstring. Raises ``ValueError`` when ``window`` exceeds every episode, and
    ``TypeError`` for discrete actions.
    """
    dataset = load_dataset(dataset)
    require_continuous_actions(dataset.action_space, "dataset")
    require_flat_observations(dataset.observation_space, "dataset")
    if not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be a positive integer; got {window!r}")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive integer; got {stride!r}")
    if not callable(feedback) and feedback not in FEEDBACK_KINDS:
        raise ValueError(f"feedback must be one of {FEEDBACK_KINDS} or a callable; got {feedback!r}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1]; got {gamma}")
    if episodes is not None:
        episodes = require_episode_ids(episodes, dataset)

    # Pass 1 keeps each episode's arrays (one copy of every transition); pass 2 writes the
    # windows straight into arrays allocated once, so the N x H copies exist once, not twice.
    kept, longest = [], 0
    for arrays in iter_episode_arrays(dataset, episodes):
        longest = max(longest, len(arrays.actions))
        if len(arrays.actions) >= window:
            kept.append(arrays)
    if not kept:
        raise ValueError(
            f"window={window} is longer than every episode of dataset {dataset.id!r} "
            f"(longest has {longest} steps); choose window <= {longest}"
        )
    starts_of = [np.arange(0, len(e.actions) - window + 1, stride, dtype=np.int64) for e in kept]
    n = sum(len(starts) for starts in starts_of)
    has_states = all(e.sim_states is not None for e in kept)
    obs_dim, act_dim = kept[0].observations.shape[1], kept[0].actions.shape[1]
    out = {
        "obs": np.empty((n, window, obs_dim), np.float32),
        "act": np.empty((n, window, act_dim), np.float32),
        "rew": np.empty((n, window), np.float64),
        "fb": np.empty(n, np.float64),
        "ep": np.empty(n, np.int64),
        "start": np.empty(n, np.int64),
        "end_obs": np.empty((n, obs_dim), np.float32),
        "end_term": np.empty(n, bool),
        "sim": np.empty((n, kept[0].sim_states.shape[1]), np.float64) if has_states else None,
    }
    position = 0
    for e, starts in zip(kept, starts_of):
        rows = slice(position, position + len(starts))
        length = len(e.actions)
        # sliding_window_view puts the window axis last: (n, dim, H) -> (n, H, dim).
        out["obs"][rows] = sliding_window_view(e.observations[:length], window, axis=0)[starts].transpose(0, 2, 1)
        out["act"][rows] = sliding_window_view(e.actions, window, axis=0)[starts].transpose(0, 2, 1)
        out["rew"][rows] = sliding_window_view(e.rewards, window)[starts]
        out["fb"][rows] = _feedback(
            feedback, out["obs"][rows], out["act"][rows], out["rew"][rows], e.rewards, starts, gamma
        )
        out["ep"][rows] = e.episode_id
        out["start"][rows] = starts
        out["end_obs"][rows] = e.observations[starts + window]
        out["end_term"][rows] = e.terminated & (starts + window == length)
        if has_states:
            out["sim"][rows] = e.sim_states[starts]
        position = rows.stop
    record = build_record(dataset)
    return Windows(
        observations=out["obs"],
        actions=out["act"],
        rewards=out["rew"],
        feedback=out["fb"],
        episode_ids=out["ep"],
        start_steps=out["start"],
        sim_states=out["sim"],
        env_id=dataset.env_spec.id if dataset.env_spec is not None else None,
        sim_state_spec=record.get("sim_state_spec") if (record and has_states) else None,
        action_space=dataset.action_space,
        end_observations=out["end_obs"],
        end_terminated=out["end_term"],
    )


def window_arrays(observations, actions=None) -> tuple:
    """``(observations, actions)`` to refine: a :class:`Windows` batch's two arrays, or the two given.

    What a refiner's ``refine(observations, actions=None, ...)`` takes; ``ValueError``
    naming ``actions`` when arrays come without them.
    """
    if isinstance(observations, Windows):
        return observations.observations, observations.actions
    if actions is None:
        raise ValueError("actions are required unless observations is a Windows batch")
    return observations, actions


def split_episodes(windows: Windows, held_out_fraction: float, seed: int = 0) -> tuple[Windows, Windows]:
    """Split ``windows`` by episode into (train, held_out); no episode is in both."""
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1); got {held_out_fraction}")
    episodes = np.unique(windows.episode_ids)
    if len(episodes) < 2:
        raise ValueError(f"windows come from {len(episodes)} episode(s); at least 2 are needed to split by episode")
    rng = np.random.default_rng(seed)
    n_held = min(len(episodes) - 1, max(1, int(round(held_out_fraction * len(episodes)))))
    held = rng.choice(episodes, size=n_held, replace=False)
    mask = np.isin(windows.episode_ids, held)
    return windows.subset(~mask), windows.subset(mask)
