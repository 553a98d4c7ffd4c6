"""The life cycle every offline agent shares, in stable-baselines3's shape.

:class:`OfflineAgent` holds what is not special to an algorithm: the env and the
Minari dataset (resolved and checked by :mod:`agents.resolution`), normalisation, the
minibatch sampler, ``learn`` (SB3 callbacks, tqdm, periodic evaluation with
D4RL-normalised scores, metrics to the :class:`~ctflow_gym.logging.RunLogger`,
checkpoints, resume, the non-finite-loss guard; steps eager or replayed from a CUDA
graph, :mod:`agents.steps`), ``predict``, ``evaluate`` (SB3's
``evaluate_policy``; :class:`agents.acting.AgentActing`) and ``save`` / ``load`` (the
shared checkpoint format; :class:`agents.persistence.AgentPersistence`). An algorithm
subclass adds its networks (``_build``), one gradient step (``_train_step``) and how
it acts (``_act``); registering it with :func:`agents.registry.register_agent` makes it
known to the command line, to :func:`agents.registry.load_agent` and to the contract
tests.

Conventions:

- Timesteps are gradient steps in ``learn`` (no environment interaction); in
  ``learn_online`` (:mod:`agents.online`) they are env steps, each followed by one
  gradient step on the dataset with the online transitions appended.
- Observations are normalised with dataset statistics; actions live in [-1, 1]
  inside the agent (the env's box mapped linearly) and are mapped back and clipped
  to the box on the way out.
- A saved agent is a checkpoint folder of kind ``"agent:<class name>"`` (see
  :mod:`agents.persistence`): JSON, safetensors and weights-only tensors, nothing
  executed on load, written atomically.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import fields, replace
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from minari import MinariDataset
from stable_baselines3.common.logger import Logger

from agents.acting import AgentActing
from agents.errors import NonFiniteLossError
from agents.online import learn_online
from agents.online_buffer import OnlineBuffer
from agents.persistence import AgentPersistence
from agents.resolution import (
    action_bounds,
    env_id_of,
    load_matching_transitions,
    make_env,
)
from agents.training import learn_offline
from ctflow_gym.data import NormalizationStats
from ctflow_gym.data.transitions import Transitions
from ctflow_gym.devices import resolve_device
from ctflow_gym.logging import NULL_LOGGER, RunLogger

__all__ = ["NonFiniteLossError", "OfflineAgent", "env_id_of", "make_env"]


class OfflineAgent(AgentActing, AgentPersistence):
    """Base class of offline agents with an SB3-style API (see the module docstring).

    Subclasses set ``config_class`` (a dataclass with documented defaults and a
    ``validate()`` method) and implement ``_build``, ``_train_step`` and ``_act``.

    Args:
        env: a gymnasium env or an env id; used for evaluation and for its spaces.
        dataset: a Minari dataset, id or path (``None`` only for a loaded agent that
            will not be trained further).
        config: the algorithm's config; keyword ``overrides`` replace its fields.
        device: ``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        seed: seeds the networks' initialisation, minibatches and sampling noise.
        run_logger: where metrics go (stdout / W&B); ``learn`` may override it.
        verbose: 1 prints each evaluation of ``learn`` as a line (:class:`~agents.reporting.EvaluationPrinter`).
    """

    config_class: ClassVar[type]
    predict_time_options: ClassVar[frozenset[str]] = frozenset()
    """Config fields that only change acting, so a resumed run may differ in them."""

    def __init__(
        self,
        env: gym.Env | str,
        dataset: MinariDataset | str | os.PathLike | None,
        config: Any = None,
        device: str = "auto",
        seed: int = 0,
        run_logger: RunLogger = NULL_LOGGER,
        verbose: int = 0,
        **overrides: Any,
    ):
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__name__}; got {type(config).__name__}")
        unknown = set(overrides) - {f.name for f in fields(self.config_class)}
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} arguments: {sorted(unknown)}")
        self.config = replace(config, **overrides)
        self.config.validate()
        self.env = make_env(env)
        self.env_id = env_id_of(self.env)
        self.device = resolve_device(device)
        self.seed = int(seed)
        self.verbose = verbose
        self.run_logger = run_logger
        self.logger = Logger(folder=None, output_formats=[])
        self.num_timesteps = 0
        self.target_timesteps = 0
        self.eval_history: list[dict[str, Any]] = []
        self.action_low, self.action_high = action_bounds(self.env)
        self.obs_dim = int(self.env.observation_space.shape[0])
        self.act_dim = int(self.env.action_space.shape[0])
        self.transitions: Transitions | None = None
        self._rows = 0  # training rows of self._data to draw minibatches from: the dataset's, then online ones
        self._online: OnlineBuffer | None = None  # the transitions learn_online appended, once there are some
        self.dataset_id: str | None = None
        self.stats: NormalizationStats | None = None
        if dataset is not None:
            self._attach_dataset(dataset)
        self._batch_rng = np.random.default_rng(self.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self._finite_flags: list[tuple[str, torch.Tensor]] | None = None
        self._eval_env = None
        if self.stats is not None:
            self._init_networks()

    # ------------------------------------------------------------------ set-up
    def _attach_dataset(self, dataset) -> None:
        transitions, self.dataset_id = load_matching_transitions(dataset, self.env, self.env_id)
        if self.stats is None:  # of the whole dataset, whatever part of it trains
            self.stats = NormalizationStats.from_arrays(transitions.observations, transitions.actions)
        self.transitions = t = self._training_transitions(transitions)
        self._rows, self._online = len(t), None
        rows = self.training_rows(t.observations, t.actions, t.rewards, t.next_observations, t.terminations)
        self._data = {
            name: torch.as_tensor(values, dtype=torch.float32, device=self.device) for name, values in rows.items()
        }

    def training_rows(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_observations: np.ndarray,
        terminations: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Transitions in env units as the agent trains on them: observations normalised with the dataset's
        statistics, actions mapped to [-1, 1]; rewards and terminations as they are (the dataset's rows and
        ``learn_online``'s both go through here)."""
        return {
            "observations": self.stats.normalize_observations(observations),
            "actions": self.to_unit_actions(actions),
            "rewards": rewards,
            "next_observations": self.stats.normalize_observations(next_observations),
            "terminations": terminations,
        }

    def _training_transitions(self, transitions: Transitions) -> Transitions:
        """The part of the dataset's ``transitions`` to train on (default: all; filtered BC keeps the best episodes)."""
        return transitions

    def _init_networks(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._build()

    # ------------------------------------------------------- subclass contract
    def _build(self) -> None:
        """Create networks and optimisers (called once, under the agent's seed)."""
        raise NotImplementedError

    def _modules(self) -> dict[str, torch.nn.Module]:
        """Every network to save, by name."""
        raise NotImplementedError

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimiser to checkpoint, by name."""
        raise NotImplementedError

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float | torch.Tensor]:
        """One gradient step on ``batch``; returns scalar metrics, floats or 0-dim tensors
        (better: ``learn`` reads tensors once per log interval instead of waiting for the
        device at every step). Call :meth:`_checked` on each loss before its optimiser step."""
        raise NotImplementedError

    def _act(self, observations: torch.Tensor, deterministic: bool, **options: Any) -> torch.Tensor:
        """Actions in [-1, 1] for normalised ``observations`` (B, obs_dim)."""
        raise NotImplementedError

    def _acting_state(self) -> dict[str, Any]:
        """What acting needs besides the weights, as JSON values, saved with the agent (default: nothing)."""
        return {}

    def _set_acting_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`_acting_state` returned (``{}`` for checkpoints written without one)."""

    def _refresh_acting_state(self) -> None:
        """Bring what acting needs besides the weights up to date with them (default: nothing).

        Called before ``learn``'s and ``learn_online``'s evaluations and when they end, never by
        ``predict``: acting stays cheap while the weights change every step (online fine-tuning).
        """

    def _use_compile(self, backend: str | None) -> None:
        """Compile the loss functions with ``backend`` (None: eager); see :mod:`agents.compilation`."""
        if backend is not None:
            warnings.warn(f"compile={backend!r}: {type(self).__name__} has no compiled path; training eagerly")

    def _checked(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` itself; raises :class:`NonFiniteLossError` if it is NaN or inf.

        While a CUDA graph of the step is captured (:class:`agents.steps.GraphedSteps`)
        the loss is recorded instead, to be checked after each replay: a graph cannot
        stop halfway.
        """
        if self._finite_flags is not None:
            self._finite_flags.append((name, loss))
            return loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(name, float(loss.detach()))
        return loss

    @staticmethod
    @torch.no_grad()
    def _ema_update(target: torch.nn.Module, source: torch.nn.Module, rate: float) -> None:
        """Move ``target``'s parameters toward ``source``'s: target <- target + rate (source - target), in place."""
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), rate)

    def _graph_key(self) -> Any:
        """What a captured CUDA graph of ``_train_step`` depends on besides its tensors' addresses.

        :class:`agents.steps.GraphedSteps` captures anew whenever this changes (e.g. a
        shape that grows with the step count). Default: nothing.
        """
        return None

    def _weights_changed(self) -> None:
        """The weights were written without bumping their version counters (a CUDA graph replay).

        Subclasses drop caches keyed by version counters here. Default: nothing.
        """

    # ------------------------------------------------------------------ learn
    def sample_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A uniform minibatch of normalised transitions (with replacement).

        To draw batches differently, override its two halves, :meth:`_batch_indices`
        (which rows) and :meth:`_batch_at` (the tensors at those rows): ``learn``'s CUDA
        graph replays those (:mod:`agents.steps`). A subclass that overrides this method
        itself trains eagerly, with a warning.
        """
        return self._batch_at(torch.as_tensor(self._batch_indices(batch_size), device=self.device))

    @property
    def _samples_in_halves(self) -> bool:
        """Whether minibatches come from :meth:`_batch_indices` and :meth:`_batch_at` (``sample_batch`` not overridden).

        What a CUDA graph can replay (:func:`agents.steps.training_steps`); asked here, where
        the base class is, so that :mod:`agents.steps` need not import it.
        """
        return type(self).sample_batch is OfflineAgent.sample_batch

    def _batch_indices(self, batch_size: int) -> np.ndarray:
        """The next minibatch's row indices, from the agent's seeded numpy generator.

        Uniform over the ``self._rows`` training rows: the dataset's, then those
        ``learn_online`` appended (:mod:`agents.online`).
        """
        return self._batch_rng.integers(0, self._rows, batch_size)

    def _batch_at(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The normalised transitions at ``index`` (a device tensor of row indices)."""
        return {name: values[index] for name, values in self._data.items()}

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1000,
        progress_bar: bool = False,
        reset_num_timesteps: bool = True,
        eval_freq: int = 0,
        n_eval_episodes: int = 10,
        n_eval_envs: int = 1,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_freq: int = 0,
        resume: bool = False,
        run_logger: RunLogger | None = None,
        compile: bool | str = False,
        cuda_graph: bool | str = "auto",
    ) -> "OfflineAgent":
        """Train for ``total_timesteps`` gradient steps.

        Args:
            total_timesteps: gradient steps; with ``reset_num_timesteps=False`` they are
                added to the current count (SB3's rule); with ``resume=True`` it is
                the absolute step to train up to.
            callback: an SB3 ``BaseCallback``, a list of them, or a callable
                ``(locals, globals) -> bool``; ``on_step`` runs after every gradient
                step and returning False stops training.
            log_interval: gradient steps between logged (averaged) training metrics.
            progress_bar: show a tqdm bar.
            eval_freq: evaluate in the env every this many steps (0: never) with
                ``n_eval_episodes`` episodes; results in ``eval_history`` and the log.
            n_eval_envs: envs those episodes run in at once (see :meth:`evaluate`).
            checkpoint_path: folder for checkpoints (written every ``checkpoint_freq``
                steps and at the end; also where the last good state goes if a loss
                becomes NaN).
            resume: if ``checkpoint_path`` holds a checkpoint, restore the whole
                training state from it (networks, optimisers, step count, RNGs)
                and continue to ``total_timesteps``. Rerunning an interrupted command
                with ``resume=True`` thus finishes the run it started. A folder there
                that is not a readable checkpoint of this class with these settings is
                an error (never overwritten); an empty or missing one starts afresh.
            run_logger: overrides the agent's metrics logger for this call.
            compile: ``torch.compile`` the loss functions (True: inductor; or a backend
                name); falls back to eager with a warning where it cannot
                (:mod:`agents.compilation`, which says why eager is the default).
            cuda_graph: capture the whole gradient step in a CUDA graph and replay it
                (:mod:`agents.steps`: the same steps to float rounding, about 10x faster
                on an H100). ``"auto"`` (default): on for a CUDA device, off elsewhere;
                ``True`` on a device without CUDA warns and trains eagerly; ``False``:
                eager steps (for debugging: every op runs from Python).
        """
        return learn_offline(
            self,
            total_timesteps,
            callback,
            log_interval,
            progress_bar,
            reset_num_timesteps,
            eval_freq,
            n_eval_episodes,
            n_eval_envs,
            checkpoint_path,
            checkpoint_freq,
            resume,
            run_logger,
            compile,
            cuda_graph,
        )

    def learn_online(
        self,
        env: gym.Env | str | None = None,
        total_timesteps: int = 100_000,
        callback: Any = None,
        log_interval: int = 1000,
        progress_bar: bool = False,
        eval_freq: int = 0,
        n_eval_episodes: int = 10,
        n_eval_envs: int = 1,
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_freq: int = 0,
        resume: bool = False,
        run_logger: RunLogger | None = None,
        learning_starts: int = 0,
        deterministic_acting: bool = False,
    ) -> "OfflineAgent":
        """Fine-tune online for ``total_timesteps`` env steps, as Flow Q-Learning's online phase does.

        Continues from the agent's current state (offline-trained, or loaded with
        ``dataset=``). Each step acts with ``predict(obs, deterministic=deterministic_acting)``
        (stochastic by default: the policy's sampling noise explores), steps ``env``,
        appends the transition to the training data (after the dataset's rows; normalised
        with the dataset's statistics; ``terminations`` is 1 only for a true termination,
        a truncated episode bootstraps), resets on either end, and then, once
        ``learning_starts`` online transitions are held, takes one gradient step on a
        minibatch drawn uniformly from all rows (``learn``'s steps, eager).
        ``num_timesteps`` counts env steps, continuing from the offline count. The
        machinery is :mod:`agents.online`.

        ``callback``, ``log_interval``, ``progress_bar``, ``eval_freq``, ``n_eval_episodes``,
        ``n_eval_envs``, ``checkpoint_freq`` and ``run_logger`` are as in :meth:`learn` (a
        callback's ``locals`` also hold SB3's ``new_obs``, ``rewards``, ``dones`` and
        ``infos`` of the step); each finished episode also logs ``online/episode_return``,
        ``online/episode_length`` and, for envs with D4RL reference returns,
        ``online/normalized_score``.

        Args:
            env: the env to act in (an env or an id); default: the agent's env id made
                fresh (the agent's own env serves evaluations). Its spaces must be the dataset's.
            total_timesteps: env steps of this online phase; with ``resume=True``, the
                phase's total, which a resumed run continues up to.
            checkpoint_path: as in :meth:`learn`; checkpoints also hold the online
                transitions gathered so far (``online.safetensors``, :mod:`agents.persistence`).
            resume: restore the checkpoint at ``checkpoint_path``, online transitions
                included, and continue. What cannot be restored exactly is the env's state
                in the middle of an episode: a resumed run starts a new episode (resets are
                seeded from the seed and step count, so a run resumed from a checkpoint
                written at the end of an episode continues exactly as the uninterrupted one).
            learning_starts: online transitions to gather before the first gradient step.
            deterministic_acting: act with ``predict(deterministic=True)`` instead.

        Raises ``ValueError`` naming the argument for ``total_timesteps`` < 1,
        ``learning_starts`` < 0 and an ``env`` whose spaces are not the dataset's, and
        one saying to pass ``dataset=`` for an agent without a dataset.
        """
        return learn_online(
            self,
            env=env,
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            progress_bar=progress_bar,
            eval_freq=eval_freq,
            n_eval_episodes=n_eval_episodes,
            n_eval_envs=n_eval_envs,
            checkpoint_path=checkpoint_path,
            checkpoint_freq=checkpoint_freq,
            resume=resume,
            run_logger=run_logger,
            learning_starts=learning_starts,
            deterministic_acting=deterministic_acting,
        )
