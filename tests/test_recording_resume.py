"""An interrupted ``medium-replay`` build (one SB3 SAC run) resumes from its last checkpoint and records
the same dataset bit for bit as one uninterrupted run; a checkpoint of other settings is refused."""

from __future__ import annotations

import minari
import pytest

from ctflow_gym.data import BuildConfig, build_dataset, load_dataset, sac_checkpoint
from ctflow_gym.data.minari_io import build_record
from ctflow_gym.data.recipes import build_recipe, dataset_checksum, get_recipe


def _config(root, **changes) -> BuildConfig:
    settings = dict(
        env_id="Hopper-v5",
        kind="medium-replay",
        dataset_id="test/hopper/resume-v0",
        root=str(root),
        n_steps=900,
        min_steps=900,
        seed=3,
        eval_every=450,
        eval_episodes=1,
        sac_kwargs={"learning_starts": 150, "batch_size": 32},
        device="cpu",
        progress_bar=False,
        checkpoint_every=200,
    )
    return BuildConfig(**{**settings, **changes})


def test_an_interrupted_medium_replay_build_resumes_bit_for_bit(tmp_path, monkeypatch, capsys):
    whole = build_dataset(_config(tmp_path / "whole", checkpoint_every=0))  # one learn call, no checkpoint

    save, saved_at = sac_checkpoint.save_recording_checkpoint, []

    def save_then_stop(folder, model, *args):  # the process dies right after its second checkpoint
        save(folder, model, *args)
        saved_at.append(model.num_timesteps)
        if len(saved_at) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(sac_checkpoint, "save_recording_checkpoint", save_then_stop)
    config = _config(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        build_dataset(config)
    checkpoint = tmp_path / "resumed" / ".ctflow-checkpoints" / "test/hopper/resume-v0"
    assert (checkpoint / "state.json").is_file() and not (tmp_path / "resumed" / "test").exists()
    assert 400 <= saved_at[1] < 900  # at the first episode end after 400 steps, with SAC training since 150

    with pytest.raises(ValueError, match=r"checkpoint_dir: .*seed=3 there, 4 here"):
        build_dataset(_config(tmp_path / "resumed", seed=4))
    monkeypatch.setattr(sac_checkpoint, "save_recording_checkpoint", save)
    capsys.readouterr()
    resumed = build_dataset(config)
    assert f"resumed at step {saved_at[1]}" in capsys.readouterr().err
    assert dataset_checksum(resumed) == dataset_checksum(whole)
    history = [build_record(load_dataset(path))["eval_history"] for path in (whole, resumed)]
    assert history[0] == history[1] and len(history[0]) == 2  # evaluations at 450 (after the resume) and 900
    assert not (tmp_path / "resumed" / ".ctflow-checkpoints").exists()  # removed once the dataset is in place


def test_resume_false_starts_afresh_and_bad_checkpoint_settings_are_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 0"):
        build_dataset(_config(tmp_path, checkpoint_every=-1))

    def stop(*args):
        raise KeyboardInterrupt

    save = sac_checkpoint.save_recording_checkpoint
    monkeypatch.setattr(sac_checkpoint, "save_recording_checkpoint", lambda *a: (save(*a), stop()))
    with pytest.raises(KeyboardInterrupt):
        build_dataset(_config(tmp_path, n_steps=300, min_steps=300, eval_every=150))
    checkpoint = tmp_path / ".ctflow-checkpoints" / "test/hopper/resume-v0"
    assert checkpoint.is_dir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert minari.list_local_datasets() == {}  # a checkpoint's episodes are not taken for a dataset
    monkeypatch.setattr(sac_checkpoint, "save_recording_checkpoint", save)
    # other settings and resume=False: the checkpoint is deleted, not refused, and the build runs from step 0
    path = build_dataset(_config(tmp_path, n_steps=300, min_steps=300, eval_every=150, seed=5, resume=False))
    assert path.is_dir() and not checkpoint.exists()


def test_an_interrupted_recipe_build_resumes_to_the_recipes_checksum(tmp_path, monkeypatch, capsys):
    from test_recipes import _tiny_recipes

    recipes = _tiny_recipes(tmp_path)
    save = sac_checkpoint.save_recording_checkpoint

    def save_then_stop(*args):
        save(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(sac_checkpoint, "save_recording_checkpoint", save_then_stop)
    dataset_id, root = "test/hopper/tiny-medium-replay-v0", tmp_path / "root"
    with pytest.raises(KeyboardInterrupt):  # the scratch folder goes; the checkpoint beside it stays
        build_recipe(dataset_id, root=root, progress_bar=False, recipes_path=recipes, checkpoint_every=700)
    assert (root / ".ctflow-checkpoints" / dataset_id / "state.json").is_file()
    monkeypatch.setattr(sac_checkpoint, "save_recording_checkpoint", save)
    path = build_recipe(dataset_id, root=root, progress_bar=False, recipes_path=recipes, checkpoint_every=700)
    assert "resumed at step" in capsys.readouterr().err
    assert dataset_checksum(path) == get_recipe(dataset_id, recipes).sha256  # verified inside build_recipe too


def test_cli_checkpoint_options_reach_the_build(tmp_path, capsys):
    from ctflow_gym.cli import main as ctflow

    assert (
        ctflow(["dataset", "build", "--kind", "medium-replay", "--out", str(tmp_path), "--checkpoint-every", "-1"]) == 2
    )
    assert "checkpoint_every must be an integer >= 0" in capsys.readouterr().err
    args = ["dataset", "build", "ctflow/pointmaze/umaze-v1", "--out", str(tmp_path), "--restart", "--no-verify"]
    args += ["--checkpoint-every", "5"]
    assert ctflow(args + ["--seed", "3"]) == 2  # a recipe takes the checkpoint options, not its build's settings
    assert "--seed cannot be combined with a recipe" in capsys.readouterr().err
