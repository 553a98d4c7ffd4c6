"""Markdown pieces the renderers share: numbers, tables, summaries of numbers, and the plots a page shows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def number(value: Any, digits: int = 1, signed: bool = False) -> str:
    """``value`` rounded, ``-`` for a missing or non-finite one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def mean_se(entry: dict | None, digits: int = 1, signed: bool = False) -> str:
    """``{"mean": m, "se": s}`` as ``m ± s``."""
    if not entry:
        return "-"
    return f"{number(entry.get('mean'), digits, signed)} ± {number(entry.get('se'), digits)}"


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction as a signed percentage."""
    return "-" if value is None else f"{100 * value:+.{digits}f}%"


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (cells ``|``-escaped)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    # In a div of its own so the stylesheet can keep the numbers of a row on one line each.
    return '<div class="results-table" markdown>\n\n' + "\n".join(lines) + "\n\n</div>"


def mean(values: list[float]) -> float:
    """The arithmetic mean of ``values``."""
    return sum(values) / len(values)


def standard_error(values: list[float]) -> float:
    """The standard error of the mean of ``values`` (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))


def policy_label(meta: dict) -> str:
    """The policy a benchmark's ``--policy`` named: as given, or for ``bc`` (logged data without a policy) what
    BC was trained on (``benchmarks/policy_improvement.benchmark_policy``)."""
    if meta.get("policy") != "bc":
        return str(meta.get("policy"))
    best = f"its best episodes holding {meta['top_fraction']:.0%} of the steps" if meta.get("top_fraction") else ""
    return f"BC (seed 0) on {best or 'the data'}"


def checkpoint_label(path: str) -> str:
    """``/tmp/ctflow_s1_40_200/seed4/model`` -> ``seed4/model`` (the folders were temporary; the seed is the point)."""
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else path


class Page:
    """What a renderer may add to the site besides Markdown: plots (copied from beside the JSON)."""

    def __init__(self) -> None:
        self.images: dict[str, Path] = {}

    def image(self, path: Path, alt: str) -> str:
        """Markdown for the PNG ``path``; the file is copied to ``results/img/`` (pages under results/)."""
        self.images[path.name] = path
        return f"![{alt}](img/{path.name})"
