"""Checkpoints of a ``medium-replay`` recording, so that an interrupted build resumes.

A medium-replay build is one SB3 SAC run recorded from scratch (an hour or more on a CPU).
:func:`~ctflow_gym.data.sac_recording.train_sac_recording` saves one of these at the first
episode end after every ``BuildConfig.checkpoint_every`` steps; a build started again with the
same configuration continues from the last one and records the same dataset, bit for bit, as
one uninterrupted run (a test interrupts a small build and compares checksums).

Why at an episode end: there the recording env has just been reset, so what the env holds is
one reset away from being rebuilt (the seed it was reset with is drawn again from the saved
generator state), and Minari's collector has written every finished episode to its storage.
Why between ``learn`` calls: inside SB3's step callback the step's transition is not yet in
the replay buffer and its gradient step not yet taken; the recording loop therefore calls
``learn`` in chunks, which trains exactly as one call does (``reset_num_timesteps=False``
keeps every counter and the last observation; SAC's schedules are constant).

A checkpoint folder holds, written to a temporary folder and renamed into place (nothing in
it is unpickled when loading):

- ``sac.pt``: the SAC policy's state dict (actor, critics, target critics), the three
  optimisers' state dicts, ``log_ent_coef`` and torch's CPU RNG state
  (``torch.load(weights_only=True)``);
- ``replay.npz``: the replay buffer's filled rows, ``pos`` and ``full``;
- ``numpy_rng.npz``: numpy's global RNG state (SB3 samples replay batches from it);
- ``state.json``: SB3's counters, the build's own progress (evaluation history, best
  recorded episode), the configuration it belongs to, and the generator states of Python's
  ``random``, the action space and the two :class:`~ctflow_gym.data.sac_recording.SeededResets`;
- ``episodes/``: the Minari collector's storage of the finished episodes, copied as files.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ctflow_gym.atomic import move_into_place, scratch_folder

CHECKPOINT_VERSION = 1
REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def _optimizers(model) -> dict[str, Any]:
    return {
        "actor": model.actor.optimizer,
        "critic": model.critic.optimizer,
        "ent_coef": getattr(model, "ent_coef_optimizer", None),
    }


def save_recording_checkpoint(folder: Path, model, collector, train_resets, eval_resets, progress: dict) -> None:
    """Write the state of a recording to ``folder`` (replaced whole); call it only between ``learn``
    calls and right after a step that ended an episode (the recording env has just been reset).

    ``collector`` is the Minari ``DataCollector``; ``train_resets`` and ``eval_resets`` the
    :class:`~ctflow_gym.data.sac_recording.SeededResets` of the recording and the evaluation
    env; ``progress`` the build's own JSON-ready state (its configuration among it).
    """
    import torch

    folder = Path(folder)
    with scratch_folder(folder.parent, f".{folder.name}-") as scratch:
        built = scratch / "checkpoint"
        built.mkdir()
        tensors = {"policy": model.policy.state_dict(), "torch_rng": torch.get_rng_state()}
        tensors["optimizers"] = {k: o.state_dict() for k, o in _optimizers(model).items() if o is not None}
        if getattr(model, "log_ent_coef", None) is not None:
            tensors["log_ent_coef"] = model.log_ent_coef.detach().clone()
        torch.save(tensors, built / "sac.pt")
        buffer = model.replay_buffer
        used = buffer.buffer_size if buffer.full else buffer.pos  # SB3 allocates 1M rows up front
        np.savez(
            built / "replay.npz",
            pos=np.int64(buffer.pos),
            full=np.bool_(buffer.full),
            **{name: getattr(buffer, name)[:used] for name in REPLAY_ARRAYS},
        )
        name, keys, pos, has_gauss, cached = np.random.get_state()
        np.savez(built / "numpy_rng.npz", keys=keys, pos=pos, has_gauss=has_gauss, cached=cached, name=name)
        shutil.copytree(collector._tmp_dir.name, built / "episodes")
        state = {
            "version": CHECKPOINT_VERSION,
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "episode_num": int(model._episode_num),
            "last_obs": np.asarray(model._last_obs).tolist(),
            "python_rng": _python_rng_to_json(random.getstate()),
            "action_space_rng": model.action_space.np_random.bit_generator.state,
            "train_resets_rng": train_resets.rng_state_before_reset,
            "eval_resets_rng": eval_resets.rng_state,
            "progress": progress,
        }
        (built / "state.json").write_text(json.dumps(state))
        move_into_place(built, folder)


def read_checkpoint_state(folder: Path) -> dict | None:
    """The ``state.json`` of the checkpoint in ``folder`` (``None`` when there is none)."""
    path = Path(folder) / "state.json"
    return json.loads(path.read_text()) if path.is_file() else None


def load_recording_checkpoint(folder: Path, model, collector, train_resets, eval_resets) -> dict:
    """Restore what :func:`save_recording_checkpoint` wrote into a freshly made ``model``
    (same configuration) and ``collector``; the recording env is reset as it was. Returns
    the saved ``progress``.

    Raises ``RuntimeError`` when the env, reset again, does not give the saved observation
    (a different gymnasium / MuJoCo than the one that wrote the checkpoint).
    """
    import torch
    from minari.dataset.minari_storage import MinariStorage

    folder = Path(folder)
    state = read_checkpoint_state(folder)
    if state is None or state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint: no recording checkpoint of version {CHECKPOINT_VERSION} at {folder}")
    tensors = torch.load(folder / "sac.pt", weights_only=True)
    model.policy.load_state_dict(tensors["policy"])
    for key, optimizer in _optimizers(model).items():
        if optimizer is not None:
            optimizer.load_state_dict(tensors["optimizers"][key])
    if "log_ent_coef" in tensors:
        with torch.no_grad():
            model.log_ent_coef.copy_(tensors["log_ent_coef"])
    with np.load(folder / "replay.npz") as replay:
        buffer = model.replay_buffer
        for name in REPLAY_ARRAYS:
            saved = replay[name]
            getattr(buffer, name)[: len(saved)] = saved
        buffer.pos, buffer.full = int(replay["pos"]), bool(replay["full"])
    model.num_timesteps, model._n_updates = state["num_timesteps"], state["n_updates"]
    model._episode_num = state["episode_num"]

    storage_dir = Path(collector._tmp_dir.name)
    shutil.rmtree(storage_dir)
    shutil.copytree(folder / "episodes", storage_dir)
    collector._storage = MinariStorage.read(storage_dir)
    collector._episode_id = collector._storage.total_episodes

    # The env is rebuilt by the reset the saved state was one draw before: same seed, same state.
    # Not through the VecEnv's reset, which would use the seed SB3 gave it for the first episode.
    train_resets.rng_state = state["train_resets_rng"]
    observation, _ = model.env.envs[0].reset()
    model.env._reset_seeds()
    last_obs = np.asarray(observation)[None]
    saved = np.asarray(state["last_obs"], dtype=last_obs.dtype)
    if not np.array_equal(last_obs, saved):
        raise RuntimeError(
            f"checkpoint: the recording env reset again gives another observation than the one saved at {folder} "
            "(other gymnasium / MuJoCo versions?); delete the checkpoint folder to start the build afresh"
        )
    model._last_obs = last_obs
    eval_resets.rng_state = state["eval_resets_rng"]
    model.action_space.np_random.bit_generator.state = state["action_space_rng"]
    random.setstate(_python_rng_from_json(state["python_rng"]))
    with np.load(folder / "numpy_rng.npz") as rng:
        np.random.set_state(
            (str(rng["name"]), rng["keys"], int(rng["pos"]), int(rng["has_gauss"]), float(rng["cached"]))
        )
    torch.set_rng_state(tensors["torch_rng"])
    return state["progress"]


def _python_rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss
