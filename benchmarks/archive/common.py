"""Scaffolding shared by the benchmarks: what each records beside its numbers (machine,
versions, commit), atomic result files, a resumable cache of finished runs, markdown
tables and mean +- standard error cells, the refiner benchmarks' split of a dataset
into fit and evaluation windows, interleaved timings and per-seed statistics."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


def machine_info() -> dict:
    """Commit, Python/torch versions, CPU, cores, torch threads and the GPU (if any)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    # Result files being rewritten do not make the code dirty.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "commit": (commit or "unknown") + ("+dirty" if dirty else ""),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def checkpoint_probe_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """The arguments every probe of saved GTP checkpoints takes: ``--checkpoints``, ``--out``, ``--name``.

    ``doc`` is the script's docstring (its first line describes the parser); ``name`` the
    default file name of the results (without .md/.json). Torch runs on one thread, as in
    the training runs the probes look at.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, help="GTPAgent checkpoint folders")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--name", default=name, help=f"results' file name without .md/.json (default {name})")
    torch.set_num_threads(1)
    return parser


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename (folders made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_results(folder: Path, name: str, data: dict, markdown: str, indent: int | None = 2) -> None:
    """A benchmark's results: ``<folder>/<name>.json`` (``data``) and ``<name>.md``, each written atomically."""
    write_atomic(Path(folder) / f"{name}.json", json.dumps(data, indent=indent))
    write_atomic(Path(folder) / f"{name}.md", markdown)


def matches(run: dict, settings: dict, defaults: dict | None = None) -> bool:
    """Whether a stored ``run`` was made with ``settings`` (a key it lacks: its value in ``defaults``)."""
    defaults = defaults or {}
    return all(run.get(key, defaults.get(key)) == value for key, value in settings.items())


class RunCache:
    """Finished runs of a benchmark, one JSON file each in ``folder``, so that a rerun resumes.

    ``get(name, settings)`` returns a stored run only when it was made with the same
    ``settings`` (a dict of JSON values stored in the run); ``put`` writes a run atomically.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        """File of run ``name``."""
        return self.folder / f"{name}.json"

    def get(self, name: str, settings: dict, defaults: dict | None = None) -> dict | None:
        """The stored run ``name`` if it exists and matches ``settings``, else None.

        ``defaults``: what a run stored before a setting was recorded was made with.
        """
        file = self.path(name)
        if not file.exists():
            return None
        run = json.loads(file.read_text())
        return run if matches(run, settings, defaults) else None

    def put(self, name: str, run: dict) -> dict:
        """Store ``run`` under ``name`` and return it."""
        write_atomic(self.path(name), json.dumps(run, indent=2))
        return run

    def runs(self, pattern: str = "*.json") -> list[dict]:
        """Every stored run whose file name matches ``pattern``, in file-name order."""
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob(pattern))]


def mean_se_cell(stats: dict, signed: bool = True, digits: int = 3) -> str:
    """``"+m ± s"`` (or ``"m ± s"``) from ``{"mean", "se"}`` (see ``ctflow_gym.statistics.mean_se``)."""
    sign = "+" if signed else ""
    return f"{stats['mean']:{sign}.{digits}f} ± {stats['se']:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


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


def interleaved_timings(functions: dict, rounds: int, block: int = 10) -> dict[str, float]:
    """Median microseconds per call of each function, measured in interleaved blocks.

    Each round times ``block`` calls of every function in turn, so load from other
    processes hits all of them alike; the medians over rounds are returned, and the
    ratios the caller forms from them compare like with like.
    """
    for function in functions.values():
        for _ in range(50):
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter_ns()
            for _ in range(block):
                function()
            samples[name].append((time.perf_counter_ns() - started) / block / 1e3)
    return {name: float(np.median(values)) for name, values in samples.items()}


def seed_statistics(values: list[float]) -> dict:
    """Median, mean and standard deviation (ddof 1; 0 for one seed) of per-seed scores."""
    values = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "per_seed": values.tolist(),
    }
