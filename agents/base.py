"""The life cycle every offline agent shares, in stable-baselines3's shape.

:class:`OfflineAgent` holds what is not special to an algorithm: resolving the env and
the Minari dataset and checking that they agree, normalisation, the minibatch sampler,
``learn`` (SB3 callbacks, tqdm, periodic evaluation with D4RL-normalised scores,
metrics to the :class:`~ctflow_gym.logging.RunLogger`, checkpoints, resume, the
non-finite-loss guard), ``predict``, ``evaluate`` (SB3's ``evaluate_policy``) and
``save`` / ``load``. An algorithm subclass adds its networks (``_build``), one
gradient step (``_train_step``) and how it acts (``_act``).

Conventions:

- Timesteps are gradient steps (there is no environment interaction in training).
- Observations are normalised with dataset statistics; actions live in [-1, 1]
  inside the agent (the env's box mapped linearly) and are mapped back and clipped
  to the box on the way out.
- A saved agent is a folder: ``agent.json`` (format version, class, config, spaces,
  statistics, step counts, numpy RNG state), ``weights.safetensors`` (every network,
  EMA copies included) and ``training_state.pt`` (optimiser moments and the torch RNG
  state, read with ``torch.load(weights_only=True)``). Nothing in it is executed on
  load. Folders are written under a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from minari import MinariDataset
from safetensors.torch import load_file, save_file
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.logger import Logger
from tqdm.auto import tqdm

from ctflow_gym.atomic import move_into_place, scratch_folder
from ctflow_gym.data import NormalizationStats, load_dataset
from ctflow_gym.data.scores import D4RL_REFERENCE_RETURNS, normalized_score
from ctflow_gym.data.transitions import Transitions, load_transitions
from ctflow_gym.data.validation import require_continuous_actions, require_flat_observations
from ctflow_gym.devices import resolve_device
from ctflow_gym.logging import NULL_LOGGER, RunLogger

FORMAT_VERSION = 1
"""Version of the saved-agent folder layout; :meth:`OfflineAgent.load` refuses others."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or inf; raised before the optimiser step that would apply it."""

    def __init__(self, loss_name: str, value: float, step: int | None = None, checkpoint: str | None = None):
        self.loss_name, self.value, self.step, self.checkpoint = loss_name, value, step, checkpoint
        where = f" at gradient step {step}" if step is not None else ""
        saved = f"; the last good state (after step {step - 1}) was saved to {checkpoint}" if checkpoint else ""
        super().__init__(f"{loss_name} became {value}{where}; training stopped{saved}")


def make_env(env: gym.Env | str) -> gym.Env:
    """``env`` itself, or ``gym.make(env)`` for an id; checked to be continuous and flat."""
    if isinstance(env, str):
        try:
            env = gym.make(env)
        except gym.error.Error as error:
            raise ValueError(f"env: cannot make {env!r}: {error}") from error
    if not isinstance(env, gym.Env):
        raise TypeError(f"env must be a gymnasium.Env or an env id string; got {type(env).__name__}")
    require_continuous_actions(env.action_space, "env")
    require_flat_observations(env.observation_space, "env")
    return env


def env_id_of(env: gym.Env) -> str | None:
    """The registered id of ``env``, when it has one."""
    spec = getattr(env, "spec", None) or getattr(env.unwrapped, "spec", None)
    return spec.id if spec is not None else None


class OfflineAgent:
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
        verbose: 1 prints evaluation results.
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
        space = self.env.action_space
        self.action_low = np.asarray(space.low, dtype=np.float32)
        self.action_high = np.asarray(space.high, dtype=np.float32)
        if not (np.isfinite(self.action_low).all() and np.isfinite(self.action_high).all()):
            raise ValueError(f"env: the action space must be bounded; got {space}")
        self.obs_dim = int(self.env.observation_space.shape[0])
        self.act_dim = int(space.shape[0])
        self.transitions: Transitions | None = None
        self.dataset_id: str | None = None
        self.stats: NormalizationStats | None = None
        if dataset is not None:
            self._attach_dataset(dataset)
        self._batch_rng = np.random.default_rng(self.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self._eval_env = None
        if self.stats is not None:
            self._init_networks()

    # ------------------------------------------------------------------ set-up
    def _attach_dataset(self, dataset) -> None:
        dataset = load_dataset(dataset)
        obs_shape, act_shape = dataset.observation_space.shape, dataset.action_space.shape
        if obs_shape != self.env.observation_space.shape or act_shape != self.env.action_space.shape:
            raise ValueError(
                f"dataset and env spaces differ: dataset {dataset.id!r} has observations {obs_shape} and actions "
                f"{act_shape}, env {self.env_id or self.env} has {self.env.observation_space.shape} and "
                f"{self.env.action_space.shape}"
            )
        self.transitions = load_transitions(dataset)
        self.dataset_id = dataset.id
        if self.stats is None:
            self.stats = NormalizationStats.from_arrays(self.transitions.observations, self.transitions.actions)
        t = self.transitions
        as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
        self._data = {
            "observations": as_tensor(self.stats.normalize_observations(t.observations)),
            "actions": as_tensor(self.to_unit_actions(t.actions)),
            "rewards": as_tensor(t.rewards),
            "next_observations": as_tensor(self.stats.normalize_observations(t.next_observations)),
            "terminations": as_tensor(t.terminations),
        }

    def _init_networks(self) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._build()

    def to_unit_actions(self, actions: np.ndarray) -> np.ndarray:
        """Env actions -> [-1, 1] (clipped, so recorded actions outside the box stay in)."""
        unit = 2.0 * (np.asarray(actions, np.float32) - self.action_low) / (self.action_high - self.action_low) - 1.0
        return np.clip(unit, -1.0, 1.0)

    def from_unit_actions(self, unit: np.ndarray) -> np.ndarray:
        """[-1, 1] -> env actions, clipped to the box."""
        actions = self.action_low + (np.clip(unit, -1.0, 1.0) + 1.0) * 0.5 * (self.action_high - self.action_low)
        return np.clip(actions, self.action_low, self.action_high)

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

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step on ``batch``; returns scalar metrics. Call :meth:`_checked`
        on each loss before its optimiser step."""
        raise NotImplementedError

    def _act(self, observations: torch.Tensor, deterministic: bool, **options: Any) -> torch.Tensor:
        """Actions in [-1, 1] for normalised ``observations`` (B, obs_dim)."""
        raise NotImplementedError

    @staticmethod
    def _checked(name: str, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` itself; raises :class:`NonFiniteLossError` if it is NaN or inf."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(name, float(loss.detach()))
        return loss

    # ------------------------------------------------------------------ learn
    def sample_batch(self, batch_size: int) -> dict[str, torch.Tensor]:
        """A uniform minibatch of normalised transitions (with replacement)."""
        index = torch.as_tensor(self._batch_rng.integers(0, len(self.transitions), batch_size), device=self.device)
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
        checkpoint_path: str | os.PathLike | None = None,
        checkpoint_freq: int = 0,
        resume: bool = False,
        run_logger: RunLogger | None = None,
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
            checkpoint_path: folder for checkpoints (written every ``checkpoint_freq``
                steps and at the end; also where the last good state goes if a loss
                becomes NaN).
            resume: if ``checkpoint_path`` holds a checkpoint, restore the whole
                training state from it (networks, optimisers, step count, RNGs)
                and continue to ``total_timesteps``. Rerunning an interrupted command
                with ``resume=True`` thus finishes the run it started.
            run_logger: overrides the agent's metrics logger for this call.
        """
        if self.transitions is None:
            raise ValueError("this agent has no dataset to learn from; pass dataset= to the constructor or to load()")
        if not isinstance(total_timesteps, (int, np.integer)) or total_timesteps < 0:
            raise ValueError(f"total_timesteps must be a non-negative integer; got {total_timesteps!r}")
        logger = run_logger or self.run_logger
        if resume and checkpoint_path is not None and Path(checkpoint_path, "agent.json").is_file():
            meta = self._read_meta(Path(checkpoint_path))
            self._require_same_config(Path(checkpoint_path), meta)
            self._restore(Path(checkpoint_path), meta)
            self.target_timesteps = int(total_timesteps)
        elif resume or not reset_num_timesteps:
            self.target_timesteps = int(total_timesteps) if resume else self.num_timesteps + int(total_timesteps)
        else:
            self.num_timesteps = 0
            self.target_timesteps = int(total_timesteps)
        callback = self._init_callback(callback)
        callback.on_training_start(locals(), globals())
        sums: dict[str, float] = {}
        since_log = 0
        bar = tqdm(total=self.target_timesteps, initial=self.num_timesteps, desc=type(self).__name__, disable=not progress_bar, unit="step")
        try:
            while self.num_timesteps < self.target_timesteps:
                try:
                    metrics = self._train_step(self.sample_batch(self.config.batch_size))
                except NonFiniteLossError as error:
                    saved = self._save_last_good(checkpoint_path)
                    raise NonFiniteLossError(error.loss_name, error.value, self.num_timesteps + 1, str(saved)) from None
                self.num_timesteps += 1
                bar.update(1)
                for name, value in metrics.items():
                    sums[name] = sums.get(name, 0.0) + value
                since_log += 1
                if log_interval and (self.num_timesteps % log_interval == 0 or self.num_timesteps == self.target_timesteps):
                    averaged = {f"train/{k}": v / since_log for k, v in sums.items()}
                    self._record(logger, averaged)
                    sums, since_log = {}, 0
                if eval_freq and self.num_timesteps % eval_freq == 0:
                    self._record(logger, self._evaluation_metrics(n_eval_episodes))
                if checkpoint_path is not None and checkpoint_freq and self.num_timesteps % checkpoint_freq == 0:
                    self.save(checkpoint_path)
                callback.update_locals(locals())
                if not callback.on_step():
                    break
        finally:
            bar.close()
        if checkpoint_path is not None:
            self.save(checkpoint_path)
        callback.on_training_end()
        return self

    def _require_same_config(self, path: Path, meta: dict[str, Any]) -> None:
        """A checkpoint (``meta``, read from ``path``) resumed into this agent must come from the same settings."""
        mine = asdict(self.config)
        differing = sorted(k for k, v in meta["config"].items() if k not in self.predict_time_options and mine.get(k) != v)
        if differing or meta["observation_shape"] != [self.obs_dim] or len(meta["action_low"]) != self.act_dim:
            details = ", ".join(f"{k}: checkpoint {meta['config'][k]!r}, now {mine.get(k)!r}" for k in differing) or "observation/action sizes"
            raise ValueError(f"checkpoint_path: {str(path)!r} was made with other settings ({details}); resume with the same ones or use a new checkpoint_path")

    def _init_callback(self, callback: Any) -> BaseCallback:
        if callback is None:
            callback = CallbackList([])
        elif isinstance(callback, list):
            callback = CallbackList(callback)
        elif not isinstance(callback, BaseCallback):
            if not callable(callback):
                raise TypeError(f"callback must be an SB3 BaseCallback, a list of them or a callable; got {type(callback).__name__}")
            callback = ConvertCallback(callback)
        callback.init_callback(self)
        return callback

    def _record(self, logger: RunLogger, metrics: dict[str, float]) -> None:
        logger.log(metrics, step=self.num_timesteps)
        for key, value in metrics.items():
            self.logger.record(key, value)
        self.logger.dump(self.num_timesteps)

    def _evaluation_metrics(self, n_episodes: int) -> dict[str, float]:
        result = self.evaluate(n_episodes)
        entry = {"step": self.num_timesteps, **{k: v for k, v in result.items() if k != "returns"}}
        self.eval_history.append(entry)
        if self.verbose:
            score = "" if result["normalized_score"] is None else f", normalised score {result['normalized_score']:.1f}"
            print(f"[{type(self).__name__}] step {self.num_timesteps}: return {result['mean_return']:.1f} +- {result['std_return']:.1f}{score}", flush=True)
        return {f"eval/{k}": v for k, v in entry.items() if k != "step" and v is not None}

    def _save_last_good(self, checkpoint_path) -> Path:
        path = Path(checkpoint_path) if checkpoint_path is not None else Path(tempfile.mkdtemp(prefix=f"{type(self).__name__.lower()}-last-good-")) / "checkpoint"
        return self.save(path)

    # -------------------------------------------------------------- acting
    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        **options: Any,
    ) -> tuple[np.ndarray, Any]:
        """``(action, state)`` for one observation (obs_dim,) or a batch (B, obs_dim).

        SB3's signature; ``state`` is passed through (the policy is memoryless).
        Actions are clipped to the env's action box. ``options`` go to the
        algorithm (e.g. ``sampling_steps`` for GTP).
        """
        if self.stats is None:
            raise ValueError("this agent has no normalisation statistics: it was neither trained nor loaded")
        obs = np.asarray(observation, dtype=np.float32)
        batched = obs.ndim == 2
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observation must have shape ({self.obs_dim},) or (batch, {self.obs_dim}); got {obs.shape}")
        obs_t = torch.as_tensor(self.stats.normalize_observations(obs.reshape(-1, self.obs_dim)), device=self.device)
        with torch.inference_mode():
            unit = self._act(obs_t, deterministic, **options).float().cpu().numpy()
        actions = self.from_unit_actions(unit)
        return (actions if batched else actions[0]), state

    def get_env(self):
        """The evaluation env as an SB3 VecEnv (what SB3 callbacks expect of a model)."""
        if self._eval_env is None:
            from stable_baselines3.common.monitor import Monitor
            from stable_baselines3.common.vec_env import DummyVecEnv

            env = self.env
            self._eval_env = DummyVecEnv([lambda: Monitor(env)])
        return self._eval_env

    def get_vec_normalize_env(self):
        """SB3 callbacks ask for this; offline agents have no VecNormalize."""
        return None

    def evaluate(self, n_episodes: int = 10, deterministic: bool = True, seed: int | None = None, **options: Any) -> dict[str, Any]:
        """Run ``n_episodes`` in the env with SB3's ``evaluate_policy``.

        Returns the episode ``returns``, ``mean_return``, ``std_return`` and, for
        envs with D4RL reference returns, the D4RL ``normalized_score`` (mean) and
        its std. ``seed`` (default: the agent's seed + the step count) seeds resets.
        """
        from stable_baselines3.common.evaluation import evaluate_policy

        env = self.get_env()
        env.seed(self.seed + self.num_timesteps if seed is None else seed)
        predict = self.predict

        class _WithOptions:
            def predict(self, observation, state=None, episode_start=None, deterministic=True):
                return predict(observation, state, episode_start, deterministic, **options)

        returns, _ = evaluate_policy(_WithOptions(), env, n_eval_episodes=n_episodes, deterministic=deterministic, return_episode_rewards=True, warn=False)
        returns = np.asarray(returns, dtype=np.float64)
        result: dict[str, Any] = {"returns": returns.tolist(), "mean_return": float(returns.mean()), "std_return": float(returns.std())}
        family = (self.env_id or "").split("/")[-1].split("-")[0].lower()
        if family in D4RL_REFERENCE_RETURNS:
            scores = normalized_score(self.env_id, returns)
            result.update(normalized_score=float(np.mean(scores)), normalized_score_std=float(np.std(scores)))
        else:
            result.update(normalized_score=None, normalized_score_std=None)
        return result

    # ---------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the agent, with its training state, to folder ``path`` (atomically)."""
        path = Path(path)
        with scratch_folder(path.parent, f".{path.name}-") as staging:
            tensors = {f"{name}.{key}": value.detach().cpu().contiguous() for name, module in self._modules().items() for key, value in module.state_dict().items()}
            save_file(tensors, str(staging / "weights.safetensors"))
            torch.save(
                {"optimizers": {name: opt.state_dict() for name, opt in self._optimizers().items()}, "torch_rng": self.generator.get_state().cpu()},
                staging / "training_state.pt",
            )
            meta = {
                "format_version": FORMAT_VERSION,
                "agent": type(self).__name__,
                "config": asdict(self.config),
                "env_id": self.env_id,
                "observation_shape": [self.obs_dim],
                "action_low": self.action_low.tolist(),
                "action_high": self.action_high.tolist(),
                "stats": self.stats.to_dict(),
                "seed": self.seed,
                "num_timesteps": self.num_timesteps,
                "target_timesteps": self.target_timesteps,
                "dataset_id": self.dataset_id,
                "eval_history": self.eval_history,
                "batch_rng": self._batch_rng.bit_generator.state,
            }
            (staging / "agent.json").write_text(json.dumps(meta, indent=2))
            move_into_place(staging, path)
        return path

    @classmethod
    def _read_meta(cls, path: Path) -> dict[str, Any]:
        if not (path / "agent.json").is_file() or not (path / "weights.safetensors").is_file():
            raise FileNotFoundError(f"path: {str(path)!r} is not a saved {cls.__name__} (agent.json and weights.safetensors expected)")
        meta = json.loads((path / "agent.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"path: {str(path)!r} was saved in format version {meta.get('format_version')}; this version of "
                f"ctflow_gym reads version {FORMAT_VERSION} only"
            )
        if meta.get("agent") != cls.__name__:
            raise ValueError(f"path: {str(path)!r} holds a {meta.get('agent')}, not a {cls.__name__}")
        return meta

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        env: gym.Env | str | None = None,
        dataset: MinariDataset | str | os.PathLike | None = None,
        device: str = "auto",
        run_logger: RunLogger = NULL_LOGGER,
    ) -> "OfflineAgent":
        """Read an agent written by :meth:`save` (JSON, safetensors and tensors only).

        ``env`` defaults to ``gym.make`` of the saved env id; a given env must have the
        saved id and spaces. Pass ``dataset`` to continue training
        (``learn(..., reset_num_timesteps=False)``); the saved normalisation is kept.
        """
        path = Path(path)
        meta = cls._read_meta(path)
        env = make_env(env if env is not None else meta["env_id"])
        obs_shape, act_shape = list(env.observation_space.shape), list(env.action_space.shape)
        if (
            obs_shape != meta["observation_shape"]
            or act_shape != [len(meta["action_low"])]
            or (meta["env_id"] and env_id_of(env) and env_id_of(env) != meta["env_id"])
            or not np.allclose(env.action_space.low, meta["action_low"])
            or not np.allclose(env.action_space.high, meta["action_high"])
        ):
            raise ValueError(
                f"env: the checkpoint at {str(path)!r} was trained on {meta['env_id']} (observations "
                f"{tuple(meta['observation_shape'])}, actions {len(meta['action_low'])}); got {env_id_of(env)} "
                f"(observations {tuple(obs_shape)}, actions {tuple(act_shape)})"
            )
        config = cls.config_class(**meta["config"])
        agent = cls(env, None, config, device=device, seed=meta["seed"], run_logger=run_logger)
        agent.stats = NormalizationStats.from_dict(meta["stats"])
        agent._init_networks()
        agent._restore(path, meta)
        if dataset is not None:
            agent._attach_dataset(dataset)
        return agent

    def _restore(self, path: Path, meta: dict[str, Any] | None = None) -> None:
        meta = meta or self._read_meta(path)
        tensors = load_file(str(path / "weights.safetensors"), device=str(self.device))
        for name, module in self._modules().items():
            prefix = name + "."
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        state_file = path / "training_state.pt"
        if state_file.is_file():
            state = torch.load(state_file, map_location=self.device, weights_only=True)
            for name, optimizer in self._optimizers().items():
                optimizer.load_state_dict(state["optimizers"][name])
            self.generator.set_state(state["torch_rng"].cpu())
        self.num_timesteps = int(meta["num_timesteps"])
        self.target_timesteps = int(meta["target_timesteps"])
        self.eval_history = list(meta["eval_history"])
        self._batch_rng = np.random.default_rng()
        self._batch_rng.bit_generator.state = meta["batch_rng"]
