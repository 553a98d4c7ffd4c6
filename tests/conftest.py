"""Shared fixtures: tiny real Minari datasets built with the package's own builder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test, restored after (on the busy 2-core machine, much faster than two)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory) -> Path:
    """A Minari root folder private to the test session."""
    return tmp_path_factory.mktemp("minari_root")


@pytest.fixture(scope="session")
def random_dataset_path(datasets_root) -> Path:
    """A tiny Hopper-v5 random dataset (1,500 steps, ~70 episodes) with simulator states."""
    from ctflow_gym.data import BuildConfig, build_dataset

    return build_dataset(
        BuildConfig(
            env_id="Hopper-v5", kind="random", n_steps=1500, seed=3, root=str(datasets_root), progress_bar=False
        )
    )


@pytest.fixture(scope="session")
def random_dataset(random_dataset_path):
    """The tiny random dataset, opened with Minari."""
    from ctflow_gym.data import load_dataset

    return load_dataset(random_dataset_path)
