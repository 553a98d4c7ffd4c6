"""The code keeps the style configured in pyproject.toml (ruff: lint rules and formatting at 120 columns)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    result = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


PACKAGES = ("ctflow_gym", "agents")


def _module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _run_time_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The library modules a module imports when it runs (at the top or in a function; not under TYPE_CHECKING).

    ``from package import name`` counts as importing ``package.name`` where that is a module.
    """
    import ast

    tree = ast.parse(path.read_text())
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    imported = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                imported.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module)
    return imported & set(modules)


def test_no_import_circle():
    """No library module imports, at any time, a module that imports it back (directly or through others)."""
    modules = _module_files()
    graph = {name: _run_time_imports(path, modules) - {name} for name, path in modules.items()}
    circles = []
    for start in graph:
        stack = [(start, (start,))]
        while stack:
            node, path = stack.pop()
            for target in graph[node]:
                if target == start:
                    circles.append(" -> ".join((*path, start)))
                elif target not in path and target > start:  # each circle found once, from its smallest module
                    stack.append((target, (*path, target)))
    assert not circles, "import circles:\n" + "\n".join(circles)


MODULE_MAX_LINES = 450
"""Small modules with one job each: a library module longer than this is split by what its parts do."""


def test_no_library_module_is_over_the_line_limit():
    long = {
        name: n
        for name, path in _module_files().items()
        if (n := len(path.read_text().splitlines())) > MODULE_MAX_LINES
    }
    assert not long, f"modules over {MODULE_MAX_LINES} lines: {long}"
