"""What :class:`~ctflow_gym.refine.TrajectoryRefiner` fits on: windows, their feedback, transitions.

- :func:`windows_to_fit`: windows (with the action space for the bounds) from a Minari
  dataset or ready-made :class:`Windows`;
- :func:`training_feedback`: R(tau) per training window for every ``feedback`` setting,
  including the two advantages (section "feedback" of :class:`RefinerConfig`):

      advantage:               R(tau) - V_1(s_1)                   V_1 regressed on window returns
      bootstrapped_advantage:  sum_t gamma^t r_t + gamma^H V(s_H) - V(s_1)             (Eq. F1)

  where V in Eq. F1 is a :class:`DatasetValueFunction` fitted on the training episodes
  (never the held-out ones) and V(s_H) is 0 when the window's last step terminated;
- :func:`window_transitions`: (s_t, s_{t+1}, a_t) of the training windows, for the
  inverse-dynamics model.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import torch
from minari import MinariDataset

from ctflow_gym.data.minari_io import load_dataset
from ctflow_gym.data.transitions import Transitions, load_transitions
from ctflow_gym.data.validation import require_finite
from ctflow_gym.data.windows import Windows, make_windows
from ctflow_gym.logging import NULL_LOGGER, RunLogger
from ctflow_gym.refine.config import RefinerConfig
from ctflow_gym.refine.feedback import FeedbackModel
from ctflow_gym.refine.value_function import DatasetValueFunction


def _action_space_of(env_id: str | None) -> gym.Space | None:
    """The action space of registered env ``env_id``; None (with a warning) when it cannot be known."""
    if env_id is not None:
        try:
            env = gym.make(env_id)
        except gym.error.Error:
            pass
        else:
            env.close()
            return env.action_space
    warnings.warn(
        f"data: the windows carry no action space and their env {env_id!r} cannot be made; refined actions "
        "will not be clipped to the env's action bounds",
        stacklevel=4,
    )
    return None


def windows_to_fit(data, cfg: RefinerConfig) -> tuple[Windows, gym.Space | None, MinariDataset | None]:
    """Windows to fit on, the action space (for the bounds) and the dataset (None for Windows), from ``data``.

    Windows made by :func:`make_windows` carry their dataset's action space; for
    windows built by hand it comes from their ``env_id``. Without either, refined
    actions cannot be clipped to the env's bounds, and a warning says so.
    """
    if isinstance(data, Windows):
        if data.window != cfg.window:
            raise ValueError(
                f"data: windows have length {data.window}; this refiner is configured for window={cfg.window}"
            )
        for name in ("observations", "actions", "feedback"):
            require_finite(getattr(data, name), f"data.{name}")
        if cfg.feedback == "bootstrapped_advantage" and (data.end_observations is None or data.end_terminated is None):
            raise ValueError(
                "data: feedback='bootstrapped_advantage' needs each window's end observation and termination "
                "(Windows from make_windows have them); pass the Minari dataset or such Windows"
            )
        return data, data.action_space or _action_space_of(data.env_id), None
    dataset = load_dataset(data)
    feedback = cfg.feedback if cfg.feedback in ("return", "return_to_go") else "return"
    return make_windows(dataset, cfg.window, cfg.stride, feedback, cfg.gamma), dataset.action_space, dataset


def discounted_window_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """sum_t gamma^t r_t per window, (N, H) -> (N,)."""
    return rewards.astype(np.float64) @ (gamma ** np.arange(rewards.shape[1]))


def training_feedback(
    train: Windows,
    normalized_obs: torch.Tensor,
    dataset: MinariDataset | None,
    cfg: RefinerConfig,
    generator: torch.Generator,
    logger: RunLogger = NULL_LOGGER,
    progress_bar: bool = True,
) -> tuple[np.ndarray, DatasetValueFunction | None]:
    """R(tau) per training window (see the module docstring), and V when Eq. F1 fitted one."""
    feedback = train.feedback.astype(np.float64)
    if cfg.feedback == "advantage":
        start_obs = normalized_obs[:, 0]
        baseline, _ = FeedbackModel.fit(
            start_obs,
            feedback,
            cfg.predictor_steps,
            cfg.batch_size,
            cfg.lr,
            generator,
            "refiner/start_value_loss",
            logger,
            progress_bar,
        )
        return feedback - baseline.predict(start_obs), None
    if cfg.feedback != "bootstrapped_advantage":
        return feedback, None
    if train.end_observations is None or train.end_terminated is None:
        raise ValueError("data: bootstrapped_advantage needs each window's end observation (make_windows records it)")
    value_fn = DatasetValueFunction(
        gamma=cfg.gamma, steps_per_round=cfg.value_steps, seed=cfg.seed, device=cfg.device
    ).fit(
        windows_as_transitions(train)
        if dataset is None
        else load_transitions(dataset, episodes=np.unique(train.episode_ids)),
        logger,
        progress_bar,
    )
    tail = np.where(train.end_terminated, 0.0, value_fn.values(train.end_observations))
    start = value_fn.values(train.observations[:, 0])
    return discounted_window_returns(train.rewards, cfg.gamma) + cfg.gamma**train.window * tail - start, value_fn


def windows_as_transitions(windows: Windows) -> Transitions:
    """The distinct steps covered by ``windows`` as :class:`Transitions`, in episode order.

    Every (episode, step) inside some window becomes one transition (next observation:
    the window's next row, or its end observation after its last step). Where an
    episode's covered steps have a gap (stride > 1 with stride > H, or episodes cut
    short) the recursion of a value fit restarts there, bootstrapping (not terminal);
    a window whose last step terminated its episode marks that step terminal.
    """
    n, h = len(windows), windows.window
    episodes = np.repeat(windows.episode_ids, h)
    steps = (windows.start_steps[:, None] + np.arange(h)[None]).reshape(-1)
    next_obs = np.concatenate([windows.observations[:, 1:], windows.end_observations[:, None]], axis=1)
    terminal = np.zeros((n, h), dtype=np.float32)
    terminal[:, -1] = windows.end_terminated
    order = np.lexsort((steps, episodes))
    keys = np.stack([episodes[order], steps[order]], axis=1)
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = np.any(keys[1:] != keys[:-1], axis=1)  # first of each duplicated (episode, step)
    picked = order[keep]
    episodes, steps = episodes[picked], steps[picked]
    ends = np.ones(len(picked), dtype=bool)
    ends[:-1] = (episodes[1:] != episodes[:-1]) | (steps[1:] != steps[:-1] + 1)
    flat = lambda a: a.reshape(n * h, *a.shape[2:])[picked]  # noqa: E731
    return Transitions(
        observations=flat(windows.observations).astype(np.float32),
        actions=flat(windows.actions).astype(np.float32),
        rewards=flat(windows.rewards).astype(np.float32),
        next_observations=flat(next_obs).astype(np.float32),
        terminations=flat(terminal),
        episode_ends=ends,
    )


def window_transitions(windows: Windows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (s_t, s_{t+1}, a_t) inside ``windows`` (and into their end observations, when recorded).

    Overlapping windows repeat a transition up to H times; that weights every step of an
    episode's middle alike and costs only memory.
    """
    states = [windows.observations[:, :-1].reshape(-1, windows.obs_dim)]
    next_states = [windows.observations[:, 1:].reshape(-1, windows.obs_dim)]
    actions = [windows.actions[:, :-1].reshape(-1, windows.act_dim)]
    if windows.end_observations is not None:
        states.append(windows.observations[:, -1])
        next_states.append(windows.end_observations)
        actions.append(windows.actions[:, -1])
    return np.concatenate(states), np.concatenate(next_states), np.concatenate(actions)
