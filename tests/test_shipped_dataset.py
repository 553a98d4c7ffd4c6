"""The dataset and policy shipped inside the package load, replay and stay small."""

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest

from ctflow_gym.data import (
    DEFAULT_DATASET_ID,
    build_record,
    default_dataset_path,
    default_policy_path,
    load_dataset,
    load_sb3_policy,
    make_windows,
    shipped_datasets_root,
    shipped_policy_path,
)
from ctflow_gym.replay import closed_loop_returns


def test_shipped_dataset_loads_through_minari():
    dataset = load_dataset(DEFAULT_DATASET_ID)
    assert dataset.id == DEFAULT_DATASET_ID
    assert dataset.env_spec.id == "Hopper-v5"
    record = build_record(dataset)
    assert record["config"]["kind"] == "medium-replay" and "command" in record and record["wall_time_s"] > 0
    returns = [float(np.sum(e.rewards)) for e in dataset.iterate_episodes()]
    assert min(returns) < 100  # starts at random level
    assert max(returns) >= 1500  # reaches medium level
    assert dataset.total_steps >= 100_000
    assert record["target_reached"] and record["thinned"]["source_steps"] >= dataset.total_steps


def test_shipped_files_stay_under_30_mb():
    total = sum(p.stat().st_size for p in default_dataset_path().rglob("*") if p.is_file())
    assert total < 30 * 2**20


def test_shipped_windows_replay_exactly():
    windows = make_windows(DEFAULT_DATASET_ID, window=16, stride=64)
    picked = np.random.default_rng(0).choice(len(windows), 20, replace=False)
    returns, _, ends = closed_loop_returns(
        "Hopper-v5", windows.sim_states[picked], windows.actions[picked], windows.sim_state_spec
    )
    np.testing.assert_array_equal(returns, windows.rewards[picked].sum(axis=1))
    # The recorded end observation s_H is where the replayed window arrives.
    np.testing.assert_array_equal(ends.astype(np.float32), windows.end_observations[picked])


def test_shipped_policy_acts_in_the_env():
    policy = load_sb3_policy(default_policy_path())
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=0)
    action, _ = policy.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))


def _episode(policy, seed: int) -> tuple[float, bool]:
    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=seed)
    total, done, terminated = 0.0, False, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy.predict(obs, deterministic=True)[0])
        total, done = total + float(reward), terminated or truncated
    return total, terminated


def test_shipped_policies_by_name_are_medium_and_near_expert():
    assert shipped_policy_path() == default_policy_path()
    medium = load_sb3_policy(shipped_policy_path("medium"))
    medium_return, _ = _episode(medium, seed=1000)
    final_return, _ = _episode(load_sb3_policy(shipped_policy_path("final")), seed=1000)
    assert 700 < medium_return < 2000 < final_return  # D4RL's medium band, and the near-expert one above it
    with pytest.raises(ValueError, match=r"name: no shipped policy called 'expert'; the shipped policies are"):
        shipped_policy_path("expert")


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_shipped_dataset_is_in_minaris_own_layout(monkeypatch):
    root = shipped_datasets_root()
    assert default_dataset_path() == root / DEFAULT_DATASET_ID
    assert (default_dataset_path() / "data" / "main_data.hdf5").is_file() and default_policy_path().is_file()
    before = _snapshot(root)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    by_minari = minari.load_dataset(DEFAULT_DATASET_ID)
    ours = load_dataset(DEFAULT_DATASET_ID)
    assert by_minari.id == DEFAULT_DATASET_ID
    assert by_minari.total_episodes == ours.total_episodes == 768
    assert by_minari.total_steps == ours.total_steps == 100_771
    theirs_episode, our_episode = by_minari[100], ours[100]
    for field in ("observations", "actions", "rewards", "terminations", "truncations"):
        np.testing.assert_array_equal(getattr(theirs_episode, field), getattr(our_episode, field))
    np.testing.assert_array_equal(theirs_episode.infos["sim_state"], our_episode.infos["sim_state"])
    local = minari.list_local_datasets()
    assert DEFAULT_DATASET_ID in local  # policy.zip beside data/ does not make it "misconfigured"
    assert local[DEFAULT_DATASET_ID]["total_steps"] == 100_771
    assert _snapshot(root) == before  # Minari only reads the package folder


def test_minari_cli_lists_the_shipped_dataset():
    script = Path(sys.executable).with_name("minari")
    command = [str(script)] if script.is_file() else [sys.executable, "-c", "from minari.cli import app; app()"]
    env = {**os.environ, "MINARI_DATASETS_PATH": str(shipped_datasets_root()), "COLUMNS": "200"}
    listed = subprocess.run([*command, "list", "local"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert DEFAULT_DATASET_ID in listed.stdout


def test_ctflow_dataset_list_names_the_shipped_dataset_once(monkeypatch, capsys):
    from ctflow_gym.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(shipped_datasets_root()))
    assert main(["dataset", "list"]) == 0
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    # listed under "shipped:" and not again under the other local datasets (the list indents its entries)
    assert [line.split()[0] for line in lines if line.startswith(DEFAULT_DATASET_ID)] == [DEFAULT_DATASET_ID]


def test_the_recorded_env_spec_rebuilds_the_env():
    """The shipped data's env spec names the recorder wrapper by its import path at recording time."""
    env = load_dataset(DEFAULT_DATASET_ID).recover_environment()
    obs, info = env.reset(seed=0)
    assert obs.shape == (11,) and "sim_state" in info
    env.close()
