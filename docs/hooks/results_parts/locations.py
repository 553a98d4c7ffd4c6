"""Where the result files are and which benchmark script writes each.

A result file is looked for in ``benchmarks/results`` first, then anywhere under ``benchmarks/`` (a file moved
into a subfolder is still found by its name).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the repository: docs/hooks/results_parts/ is three folders down
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
SCRIPTS = (  # result-file name prefix -> the benchmark script that writes it (longest prefix first)
    ("gtp_ensemble5_vs_one", "gtp_compare_runs.py"),
    ("gtp_vs_peers", "gtp_vs_peers.py"),
    ("gtp_speed", "gtp_speed.py"),
    ("gtp_candidate_count", "gtp_candidate_count.py"),
    ("gtp_critic_swap", "gtp_critic_swap.py"),
    ("gtp_loss_balance", "gtp_loss_balance.py"),
    ("gtp_fitted_k2", "gtp_two_step_time.py"),
    ("refined_policy", "refined_policy_table.py"),
    ("refiner_selection", "refiner_selection.py"),
    ("refiner_tables", "refiner_tables.py"),
    ("refiner_levers", "refiner_levers.py"),
    ("closed_loop_policy", "closed_loop_policy.py"),
    ("scale", "scale.py"),
    ("datasets", "dataset_table.py"),
)


def find_result(name: str, suffix: str = ".json") -> Path:
    """``benchmarks/results/<name><suffix>``, or the one file of that name elsewhere under ``benchmarks/``."""
    path = RESULTS / f"{name}{suffix}"
    if path.is_file():
        return path
    found = sorted(p for p in BENCHMARKS.rglob(f"{name}{suffix}") if ".bench-venvs" not in p.parts)
    if not found:
        raise FileNotFoundError(f"no {name}{suffix} under {BENCHMARKS.relative_to(ROOT)}/")
    return found[0]


def find_family(prefix: str) -> Path:
    """The folder holding the result files named ``<prefix>*.json`` (``benchmarks/results`` first)."""
    for folder in [RESULTS, *sorted({p.parent for p in BENCHMARKS.rglob(f"{prefix}*.json")})]:
        if any(folder.glob(f"{prefix}*.json")):
            return folder
    raise FileNotFoundError(f"no {prefix}*.json under {BENCHMARKS.relative_to(ROOT)}/")


def load(name: str) -> tuple[dict, Path]:
    """The JSON result ``name`` and its path."""
    path = find_result(name)
    return json.loads(path.read_text()), path


def script_for(name: str) -> str | None:
    """The benchmark script that writes result ``name``, as a path relative to the repository (where it is now)."""
    for prefix, script in SCRIPTS:
        if name.startswith(prefix):
            found = sorted(BENCHMARKS.rglob(script))
            return str(found[0].relative_to(ROOT)) if found else f"benchmarks/{script}"
    return None


def shown(path: Path) -> str:
    """``path`` relative to the repository, or as it is when it lies outside (a benchmark's trial ``--out``)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
