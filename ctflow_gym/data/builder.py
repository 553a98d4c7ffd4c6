"""Build D4RL-style Minari datasets for gymnasium MuJoCo envs from SB3 policies.

Kinds of dataset, named as in D4RL:

- ``random``: uniformly random actions.
- ``medium``: rollouts of a given medium-level policy (stochastic actions by
  default, as D4RL sampled its behaviour policies).
- ``medium-replay``: every transition an SB3 SAC run sees while it learns from
  scratch, up to the point where its deterministic evaluation return reaches
  ``target_return`` (after at least ``min_steps``). The SAC policy at that point is
  saved next to the dataset: it is "the medium policy" (:mod:`ctflow_gym.data.sac_recording`).
- ``medium-expert``: half rollouts of the medium policy, half of an expert policy.
- ``waypoint``: PointMaze only (``ctflow/PointMaze*-v0``): a shortest-path planner over
  the maze's cells and a noisy PD controller, as D4RL's maze2d and Minari's pointmaze
  datasets were made (:mod:`ctflow_gym.data.maze_planner`); the ``success`` flag is
  recorded beside the simulator state (whose last values are the goal).

Every episode is recorded through Minari's own :class:`minari.DataCollector`, with the
simulator state of every observation in ``infos["sim_state"]`` (see
:mod:`ctflow_gym.replay.sim_state`) so that any window can be replayed exactly. Episode
resets are seeded from ``seed``, so a build is reproducible on a CPU.

Shards and workers: ``random``, ``medium`` and ``medium-expert`` datasets can be made of
``shards`` independent parts (shard i: n_steps / shards steps, seeded with
``seed + 1000 i``, so one shard is the unsharded build), built by ``workers`` processes
at once and joined with ``minari.combine_datasets``. The shards define the data; the
workers only how many are built at a time: any ``workers`` gives the same dataset.

Atomicity: everything is written under a hidden temporary folder beside the target
and moved into place with one rename at the end. An interrupted build leaves nothing
at the target path (and its temporary folder is removed on the way out).

Resuming: a ``medium-replay`` build (one SAC run, an hour or more on a CPU) checkpoints
its whole state every ``checkpoint_every`` steps (at the next episode end) under
``<root>/.ctflow-checkpoints/<dataset_id>``; building it again with the same settings
resumes from there and records the same dataset bit for bit as an uninterrupted build
(:mod:`ctflow_gym.data.sac_checkpoint`). The checkpoint is removed once the dataset is in
place. The other kinds take minutes and are restarted from scratch, which the seed makes
reproducible.
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import minari
import numpy as np
from minari import DataCollector, StepDataCallback

from ctflow_gym import progress
from ctflow_gym.atomic import move_into_place, scratch_folder
from ctflow_gym.data.actor_policies import behaviour_policy, is_actor_checkpoint
from ctflow_gym.data.maze_planner import roll_out_waypoints
from ctflow_gym.data.minari_io import POLICY_FILE, finish_dataset, minari_root, minari_root_at
from ctflow_gym.data.sac_recording import SeededResets, train_sac_recording
from ctflow_gym.data.scores import d4rl_reference_returns
from ctflow_gym.data.validation import require_continuous_actions
from ctflow_gym.envs.point_maze import POINT_MAZES, is_point_maze
from ctflow_gym.replay.sim_state import REPLAY_STATE_SPEC, SIM_STATE_INFO_KEY, SimStateRecorder
from ctflow_gym.workers import in_chunks, require_workers

DATASET_KINDS = ("random", "medium", "medium-replay", "medium-expert", "waypoint")
CHECKPOINTS_FOLDER = ".ctflow-checkpoints"
"""Hidden folder of a Minari root where interrupted ``medium-replay`` builds keep their checkpoints."""
SHARD_SEED_STRIDE = 1000
"""Shard i of a sharded build is seeded with ``seed + SHARD_SEED_STRIDE * i``."""

Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class BuildConfig:
    """How to build one dataset. Defaults make a Hopper-v5 medium-replay dataset.

    Attributes:
        env_id: gymnasium MuJoCo env id (continuous actions), e.g. ``"Hopper-v5"``.
        kind: one of :data:`DATASET_KINDS`.
        dataset_id: Minari id; default ``"ctflow/<env>/<kind>-v0"``.
        root: folder of Minari datasets to write into; default Minari's own root
            (``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``), so that
            ``minari.load_dataset(dataset_id)`` finds the result.
        n_steps: transitions to record for ``random``/``medium``/``medium-expert``;
            the upper bound of SAC steps for ``medium-replay``.
        seed: seeds episode resets, random actions and SAC.
        policy: path of an SB3 model zip or an actor folder (:class:`~ctflow_gym.data.actor_policies.SACActorPolicy`)
            (``medium``, ``medium-expert``).
        expert_policy: the same for the expert (``medium-expert``).
        policy_algo: SB3 algorithm class name that saved the policies.
        deterministic: act with the policy's mode rather than sampling it.
        target_return: ``medium-replay`` stops once SAC's evaluation return reaches
            this. Default: one third of the D4RL expert return (1078 for Hopper,
            like D4RL's medium level); the shipped Hopper dataset used 1500.
        min_steps: ``medium-replay`` records at least this many transitions.
        eval_every: SAC evaluation period in env steps.
        eval_episodes: episodes per SAC evaluation.
        max_minutes: ``medium-replay`` wall-clock budget; SAC stops at the first
            evaluation past it and the dataset is finished with what was recorded
            (``target_reached`` says whether the target was met).
        sac_kwargs: extra keyword arguments for ``stable_baselines3.SAC``.
        device: torch device for SAC (``"auto"`` uses a GPU when there is one).
        overwrite: replace an existing dataset at the target path.
        progress_bar: show progress bars (quiet in logs, see :mod:`ctflow_gym.progress`).
        shards: independent parts the dataset is made of (not for ``medium-replay``,
            which is one SAC run); part of what the dataset is.
        workers: processes that build the shards at once; changes only the wall time.
        checkpoint_every: ``medium-replay`` saves a checkpoint at the first episode end
            after every this many SAC steps (0: none); changes only what an interruption costs.
        checkpoint_dir: where that checkpoint goes (default
            ``<root>/.ctflow-checkpoints/<dataset_id>``); a build finding one of the same
            settings there resumes from it, one of other settings is refused.
        resume: False deletes a checkpoint found there and starts afresh.
    """

    env_id: str = "Hopper-v5"
    kind: str = "medium-replay"
    dataset_id: str | None = None
    root: str | None = None
    n_steps: int = 300_000
    seed: int = 0
    policy: str | None = None
    expert_policy: str | None = None
    policy_algo: str = "SAC"
    deterministic: bool = False
    target_return: float | None = None
    min_steps: int = 100_000
    eval_every: int = 5_000
    eval_episodes: int = 5
    max_minutes: float | None = None
    sac_kwargs: dict[str, Any] | None = None
    device: str = "auto"
    overwrite: bool = False
    progress_bar: bool = True
    shards: int = 1
    workers: int = 1
    checkpoint_every: int = 10_000
    checkpoint_dir: str | None = None
    resume: bool = True

    def resolved_checkpoint_dir(self, root: Path) -> Path:
        """Where a ``medium-replay`` build into ``root`` keeps its checkpoint."""
        if self.checkpoint_dir:
            return Path(self.checkpoint_dir)
        return root / CHECKPOINTS_FOLDER / self.resolved_dataset_id()

    def resolved_dataset_id(self) -> str:
        """The dataset id, with the default filled in."""
        if self.dataset_id:
            return self.dataset_id
        env_name = self.env_id.split("/")[-1].split("-")[0].lower()
        return f"ctflow/{env_name}/{self.kind}-v0"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first argument that is out of range."""
        if self.kind not in DATASET_KINDS:
            raise ValueError(f"kind must be one of {DATASET_KINDS}; got {self.kind!r}")
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer; got {self.n_steps}")
        if isinstance(self.shards, bool) or not isinstance(self.shards, int) or not 1 <= self.shards <= self.n_steps:
            raise ValueError(f"shards must be an integer in [1, n_steps]; got {self.shards!r}")
        if self.kind == "medium-replay" and self.shards != 1:
            raise ValueError("shards must be 1 for kind='medium-replay' (one SAC run records it)")
        require_workers(self.workers)
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"checkpoint_every must be an integer >= 0; got {self.checkpoint_every!r}")
        if (self.kind == "waypoint") != is_point_maze(self.env_id):
            raise ValueError(
                f"kind='waypoint' goes with the PointMaze envs and they take only it; got kind={self.kind!r}, "
                f"env_id={self.env_id!r} (PointMaze envs: {[m.env_id for m in POINT_MAZES.values()]})"
            )
        if self.kind in ("medium", "medium-expert") and not self.policy:
            raise ValueError(f"policy (an SB3 model zip) is required for kind={self.kind!r}")
        if self.kind == "medium-expert" and not self.expert_policy:
            raise ValueError("expert_policy (an SB3 model zip) is required for kind='medium-expert'")
        if self.kind == "medium-replay" and self.min_steps > self.n_steps:
            raise ValueError(
                f"min_steps ({self.min_steps}) must not exceed n_steps ({self.n_steps}) for kind='medium-replay'"
            )
        for name in ("policy", "expert_policy"):
            path = getattr(self, name)
            if path and not (Path(path).is_file() or is_actor_checkpoint(path)):
                raise FileNotFoundError(f"{name}: no SB3 model zip or actor folder (SACActorPolicy) at {path!r}")


class _SimStateOnly(StepDataCallback):
    """Keeps only the simulator state (and a maze's ``success`` flag) in the recorded infos.

    MuJoCo envs return different info keys at reset and at step, which Minari cannot
    store as one table; the state is all replay needs.
    """

    def __call__(self, env, **kwargs):
        step_data = super().__call__(env, **kwargs)
        step_data["info"] = {k: v for k, v in step_data["info"].items() if k in (SIM_STATE_INFO_KEY, "success")}
        return step_data


def make_recording_env(env_id: str, seed: int) -> DataCollector:
    """A Minari ``DataCollector`` over ``env_id`` that records simulator states.

    Must be created while ``MINARI_DATASETS_PATH`` points at the build's temporary
    folder (the collector keeps its buffers there).
    """
    env = gym.make(env_id)
    require_continuous_actions(env.action_space, "env_id")
    env = SimStateRecorder(env, REPLAY_STATE_SPEC)
    return DataCollector(env, step_data_callback=_SimStateOnly, record_infos=True)


def _roll_out(env: gym.Env, policy: Policy | None, n_steps: int, seed: int, show_progress: bool, label: str) -> None:
    """Step ``env`` for ``n_steps`` transitions with ``policy`` (``None``: random actions)."""
    env.action_space.seed(seed)
    obs, _ = env.reset()
    for _ in progress.progress_bar(range(n_steps), desc=label, disable=not show_progress, unit="step"):
        action = env.action_space.sample() if policy is None else policy(obs)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()


def build_dataset(config: BuildConfig) -> Path:
    """Build the dataset ``config`` describes and return its folder.

    The folder is ``<root>/<dataset_id>`` in Minari's layout (``data/`` inside), so
    :func:`ctflow_gym.data.load_dataset` reads it by id or by path. For
    ``medium-replay`` the trained SAC policy is saved as ``policy.zip`` beside
    ``data/``. How the dataset was made (config, steps, wall time, evaluation
    history) is stored as JSON in the Minari metadata under ``"ctflow_build"``.
    """
    config.validate()
    dataset_id = config.resolved_dataset_id()
    root = Path(config.root) if config.root else minari_root()
    final_path = root / dataset_id
    if final_path.exists() and not config.overwrite:
        raise FileExistsError(
            f"dataset_id: {dataset_id!r} already exists at {final_path}; pass overwrite=True to replace it"
        )
    started = time.time()
    if config.shards > 1:
        return _build_sharded(config, dataset_id, root, final_path, started)
    checkpoint = config.resolved_checkpoint_dir(root) if config.kind == "medium-replay" else None
    if checkpoint is not None and not config.resume:
        shutil.rmtree(checkpoint, ignore_errors=True)
    with scratch_folder(root, ".ctflow-build-") as scratch:
        with minari_root_at(scratch):
            collector = make_recording_env(config.env_id, config.seed)
            extra = _collect(collector, config, scratch, checkpoint)
            random_return, expert_return = d4rl_reference_returns(config.env_id)
            with warnings.catch_warnings():
                # Minari asks for an author e-mail, which a library build has none of.
                warnings.filterwarnings("ignore", message=".*author_email.*")
                dataset = collector.create_dataset(
                    dataset_id=dataset_id,
                    eval_env=config.env_id,
                    algorithm_name=_algorithm_name(config),
                    code_permalink="ctflow_gym.data.builder",
                    author="ctflow_gym",
                    ref_min_score=random_return,
                    ref_max_score=expert_return,
                    description=f"D4RL-style {config.kind} dataset for {config.env_id}, built by ctflow_gym",
                )
            collector.close()
            _finish(dataset, config, started, extra)
        built = scratch / dataset_id
        policy_file = scratch / POLICY_FILE
        if policy_file.exists():
            policy_file.replace(built / POLICY_FILE)
        path = move_into_place(built, final_path)
    if checkpoint is not None:
        _remove_checkpoint(checkpoint)
    return path


def _remove_checkpoint(folder: Path) -> None:
    """Remove a finished build's checkpoint and, under the default location, the folders it leaves empty."""
    shutil.rmtree(folder, ignore_errors=True)
    if CHECKPOINTS_FOLDER not in folder.parts:  # a folder the user chose: nothing above it is ours
        return
    for parent in folder.parents:
        try:
            parent.rmdir()  # only if empty
        except OSError:
            break
        if parent.name == CHECKPOINTS_FOLDER:
            break


def shard_configs(config: BuildConfig, root: str | Path) -> list[BuildConfig]:
    """The one-shard builds a sharded ``config`` is made of, each into ``root``."""
    name, version = config.resolved_dataset_id().rsplit("-v", 1)
    base, extra = divmod(config.n_steps, config.shards)
    return [
        replace(
            config,
            shards=1,
            workers=1,
            n_steps=base + (i < extra),
            seed=config.seed + SHARD_SEED_STRIDE * i,
            root=str(root),
            dataset_id=f"{name}-shard{i}-v{version}",
            overwrite=False,
            progress_bar=config.progress_bar and config.workers == 1,
        )
        for i in range(config.shards)
    ]


def _build_each(configs: list[BuildConfig]) -> list[str]:
    return [str(build_dataset(c)) for c in configs]


def _build_sharded(config: BuildConfig, dataset_id: str, root: Path, final_path: Path, started: float) -> Path:
    with scratch_folder(root, ".ctflow-build-") as scratch:
        shards = shard_configs(config, scratch)
        in_chunks(_build_each, config.workers, [shards])
        with minari_root_at(scratch):
            parts = [minari.load_dataset(shard.dataset_id) for shard in shards]
            dataset = minari.combine_datasets(parts, dataset_id)
            _finish(dataset, config, started, {"shards": [shard.dataset_id for shard in shards]})
        return move_into_place(scratch / dataset_id, final_path)


def _finish(dataset, config: BuildConfig, started: float, extra: dict[str, Any]) -> None:
    """Store how ``dataset`` was made in its metadata and compact its file."""
    record = {
        "config": asdict(config),
        "sim_state_spec": REPLAY_STATE_SPEC,
        "wall_time_s": round(time.time() - started, 1),
        "command": " ".join(sys.argv),
        "versions": _versions(),
        **extra,
    }
    finish_dataset(dataset, record)


def _collect(collector: DataCollector, config: BuildConfig, scratch: Path, checkpoint: Path | None) -> dict[str, Any]:
    show = config.progress_bar
    seeded = SeededResets(collector, config.seed)
    if config.kind == "random":
        _roll_out(seeded, None, config.n_steps, config.seed, show, "random")
        return {}
    if config.kind == "waypoint":
        roll_out_waypoints(seeded, config.n_steps, config.seed, show)
        return {}
    if config.kind == "medium-replay":
        return train_sac_recording(seeded, config, scratch / POLICY_FILE, checkpoint)
    medium = behaviour_policy(config.policy, config.policy_algo, config.env_id, config.deterministic, config.seed)
    if config.kind == "medium":
        _roll_out(seeded, medium, config.n_steps, config.seed, show, "medium")
        return {}
    expert = behaviour_policy(
        config.expert_policy, config.policy_algo, config.env_id, config.deterministic, config.seed + 1
    )
    half = config.n_steps // 2
    _roll_out(seeded, medium, half, config.seed, show, "medium")
    _roll_out(seeded, expert, config.n_steps - half, config.seed + 1, show, "expert")
    return {}


def _algorithm_name(config: BuildConfig) -> str:
    return {
        "random": "uniform random actions",
        "waypoint": "shortest-path waypoints + noisy PD controller",
        "medium": f"{config.policy_algo} policy rollouts",
        "medium-replay": "SB3 SAC replay (training from scratch)",
        "medium-expert": f"{config.policy_algo} medium + expert policy rollouts",
    }[config.kind]


def _versions() -> dict[str, str]:
    import mujoco
    import stable_baselines3
    import torch

    return {
        "gymnasium": gym.__version__,
        "mujoco": mujoco.__version__,
        "minari": minari.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
