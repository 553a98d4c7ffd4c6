"""Shared by the benchmarks: what each records beside its numbers (machine, versions,
commit) and the refiner benchmarks' split of a dataset into fit and evaluation windows."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch


def machine_info() -> dict:
    """Commit, Python/torch versions, CPU, cores, torch threads and the GPU (if any)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # Result files being rewritten do not make the code dirty.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"], capture_output=True, text=True).stdout.strip()
    return {
        "commit": (commit or "unknown") + ("+dirty" if dirty else ""),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def fit_and_evaluation_windows(dataset, window: int, seed: int, eval_windows: int):
    """``(all windows, fit windows, evaluation windows)`` of ``dataset``, split by episode.

    Windows of H steps (stride 1) are split by episode, 80% for fitting and 20% for
    evaluation (``ctflow_gym.data.split_episodes`` with ``seed``); ``eval_windows``
    of the second part are drawn with ``seed``. No method sees an evaluation episode.
    """
    from ctflow_gym.data import make_windows, split_episodes

    windows = make_windows(dataset, window=window)
    fit_windows, eval_pool = split_episodes(windows, 0.2, seed=seed)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(eval_pool), min(eval_windows, len(eval_pool)), replace=False))
    return windows, fit_windows, eval_pool.subset(chosen)
