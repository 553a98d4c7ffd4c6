"""Recipes: datasets rebuilt bit for bit from data (checked by checksum), shipped behaviour policies
loaded without unpickling, `ctflow dataset build <id>` / `list`, and the errors of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctflow_gym.checkpoint import CheckpointError
from ctflow_gym.cli import main as ctflow
from ctflow_gym.data import load_dataset, load_sb3_policy, shipped_policy_path
from ctflow_gym.data.actor_policies import SACActorPolicy
from ctflow_gym.data.recipes import (
    ChecksumMismatchError,
    build_recipe,
    dataset_checksum,
    get_recipe,
    load_recipes,
    shipped_behaviour_policy,
)

# Checksums of the three tiny recipes below (the medium-replay one reruns SB3 SAC from its seed) as
# built on the project's machines (x86_64, MuJoCo 4.0.1, numpy 2.4): a build on any CPU with those
# versions must reproduce them bit for bit, in a fresh process or after other builds in the same one.
TINY_MAZE_SHA256 = "8fceb6b831d8c78818ae0ede42842812ee91b9baa6f23930afc2ec63e5e0d353"
TINY_REPLAY_SHA256 = "2c4895df44a4de421c5135e8354cf8234e93611fbbcfd1fbd964f3820dc3d1e8"
TINY_HOPPER_SHA256 = "b41cf2dd651aff4be9b3889bd6de4c86e1d829c131f554438bad6da8b712d1db"


def _tiny_recipes(tmp_path, maze_sha=TINY_MAZE_SHA256, hopper_sha=TINY_HOPPER_SHA256, replay_sha=TINY_REPLAY_SHA256):
    document = {
        "recipes": [
            {
                "dataset_id": "test/pointmaze/tiny-v0",
                "build": {"env_id": "ctflow/PointMazeUMaze-v0", "kind": "waypoint", "n_steps": 400, "seed": 1},
                "sha256": maze_sha,
            },
            {
                "dataset_id": "test/hopper/tiny-medium-v0",
                "build": {
                    "env_id": "Hopper-v5",
                    "kind": "medium",
                    "n_steps": 300,
                    "seed": 1,
                    "policy": "shipped:hopper-medium",
                },
                "sha256": hopper_sha,
            },
            {
                "dataset_id": "test/hopper/tiny-medium-replay-v0",
                "build": {
                    "env_id": "Hopper-v5",
                    "kind": "medium-replay",
                    "n_steps": 1200,
                    "min_steps": 1200,
                    "seed": 1,
                    "eval_every": 600,
                    "eval_episodes": 1,
                    "sac_kwargs": {"learning_starts": 600, "batch_size": 64},
                    "device": "cpu",
                },
                "sha256": replay_sha,
            },
        ]
    }
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    "dataset_id", ["test/pointmaze/tiny-v0", "test/hopper/tiny-medium-v0", "test/hopper/tiny-medium-replay-v0"]
)
def test_a_recipe_rebuilds_bit_for_bit(tmp_path, dataset_id):
    recipes = _tiny_recipes(tmp_path)
    path = build_recipe(dataset_id, root=tmp_path / "root", progress_bar=False, recipes_path=recipes)
    assert path == tmp_path / "root" / dataset_id
    assert dataset_checksum(path) == get_recipe(dataset_id, recipes).sha256
    assert load_dataset(path).total_steps == get_recipe(dataset_id, recipes).build["n_steps"]


def test_a_mismatching_build_says_what_differs_and_leaves_nothing(tmp_path):
    recipes = _tiny_recipes(tmp_path, maze_sha="0" * 64)
    with pytest.raises(ChecksumMismatchError, match="differs from the recipe's reference.*versions"):
        build_recipe("test/pointmaze/tiny-v0", root=tmp_path / "root", progress_bar=False, recipes_path=recipes)
    assert not (tmp_path / "root" / "test").exists()
    assert [p.name for p in (tmp_path / "root").iterdir()] == []  # no scratch folder left either
    kept = build_recipe(
        "test/pointmaze/tiny-v0", root=tmp_path / "root", progress_bar=False, verify=False, recipes_path=recipes
    )
    assert kept.is_dir()


def test_checksum_sees_every_recorded_array(tmp_path):
    recipes = _tiny_recipes(tmp_path)
    a = build_recipe("test/pointmaze/tiny-v0", root=tmp_path / "a", progress_bar=False, recipes_path=recipes)
    document = json.loads(recipes.read_text())
    document["recipes"][0]["build"]["seed"] = 2
    recipes.write_text(json.dumps(document))
    b = build_recipe(
        "test/pointmaze/tiny-v0", root=tmp_path / "b", progress_bar=False, verify=False, recipes_path=recipes
    )
    assert dataset_checksum(a) != dataset_checksum(b)


def test_bad_recipe_input_is_named(tmp_path):
    recipes = _tiny_recipes(tmp_path)
    with pytest.raises(KeyError, match="no recipe 'nope/x-v0'.*test/hopper/tiny-medium-v0"):
        build_recipe("nope/x-v0", recipes_path=recipes)
    build_recipe("test/pointmaze/tiny-v0", root=tmp_path / "r", progress_bar=False, recipes_path=recipes)
    with pytest.raises(FileExistsError, match="overwrite"):
        build_recipe("test/pointmaze/tiny-v0", root=tmp_path / "r", progress_bar=False, recipes_path=recipes)
    with pytest.raises(FileNotFoundError, match="no shipped behaviour policy 'nope'"):
        shipped_behaviour_policy("nope")


def test_a_damaged_policy_file_is_a_clear_error(tmp_path):
    folder = tmp_path / "policy"
    SACActorPolicy.load(shipped_behaviour_policy("hopper-medium")).save(folder)
    (folder / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="weights.safetensors"):
        SACActorPolicy.load(folder)


def test_the_shipped_actor_acts_as_the_sb3_policy_it_came_from():
    sb3 = load_sb3_policy(shipped_policy_path("medium"), env="Hopper-v5")
    actor = SACActorPolicy.load(shipped_behaviour_policy("hopper-medium"))
    observations = np.random.default_rng(0).normal(size=(64, 11)) * 0.5
    ours, _ = actor.predict(observations, deterministic=True)
    theirs, _ = sb3.predict(observations.astype(np.float32), deterministic=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    with pytest.raises(ValueError, match="observation must have shape"):
        actor.predict(np.zeros(5))
    with pytest.raises(ValueError, match="observation must be finite"):
        actor.predict(np.full(11, np.nan))


def test_shipped_recipes_are_well_formed():
    recipes = load_recipes()
    assert {"ctflow/pointmaze/umaze-v1", "ctflow/pointmaze/medium-v1"} <= set(recipes)
    for recipe in recipes.values():
        config = recipe.build_config()  # shipped policies resolve, fields are BuildConfig's
        config.validate()
        assert recipe.sha256 is None or len(recipe.sha256) == 64


def test_cli_lists_recipes_and_builds_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert ctflow(["dataset", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ctflow/pointmaze/umaze-v1" in listing and "not built" in listing
    assert ctflow(["dataset", "build", "ctflow/pointmaze/umaze-v1", "--env", "Walker2d-v5"]) == 2
    assert "cannot be combined with a recipe" in capsys.readouterr().err


def test_dataset_table_benchmark_runs_on_a_tiny_recipe(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    recipes = _tiny_recipes(tmp_path)
    root = tmp_path / "root"
    build_recipe("test/pointmaze/tiny-v0", root=root, progress_bar=False, recipes_path=recipes)
    script = Path(__file__).parents[1] / "benchmarks" / "dataset_table.py"
    args = ["--root", str(root), "--recipes", str(recipes), "--episodes", "1", "--out", str(tmp_path / "out")]
    subprocess.run([sys.executable, str(script), *args], check=True, capture_output=True)
    result = json.loads((tmp_path / "out" / "datasets.json").read_text())
    assert [r["dataset_id"] for r in result["datasets"]] == ["test/pointmaze/tiny-v0"]
    assert result["datasets"][0]["checksum_matches_recipe"] is True
    assert {r["policy"] for r in result["policies"]} >= {"hopper-medium", "hopper-expert"}
    assert "Recipe datasets beside D4RL" in (tmp_path / "out" / "datasets.md").read_text()
