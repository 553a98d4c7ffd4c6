"""The documentation: the site builds with warnings as errors, the README stays a guide, docstrings stay number-free.

The Python snippets of README.md and docs/ are run by ``tests/test_docs_snippets.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = [ROOT / "ctflow_gym", ROOT / "agents"]
README_MAX_LINES = 250
TWO_COMMANDS = (
    "bash scripts/install.sh && .venv/bin/ctflow demo",
    "bash scripts/install.sh && .venv/bin/python -m pytest -q",  # what .ci/run and CI run, verbatim
)


def build_site(out: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: any warning (a broken link, a missing results file, a bad docstring) fails."""
    result = build_site(tmp_path / "site")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert not re.search(r"^(WARNING|ERROR)\b", log, re.MULTILINE), log
    site = tmp_path / "site"
    for page in ("index.html", "getting-started/index.html", "api/refine/index.html", "results/gtp/index.html"):
        assert (site / page).is_file(), page
    results = (site / "results" / "gtp" / "index.html").read_text()
    assert "<table>" in results and "<!-- results:" not in results  # markers became tables
    assert (site / "results" / "img" / "gtp_vs_peers_200k_ensemble5.png").is_file()
    assert "ctflow_gym.refine.TrajectoryRefiner" in (site / "api" / "refine" / "index.html").read_text()
    for page in sorted((site / "api").rglob("index.html")):  # Sphinx roles in docstrings became links
        assert not re.search(r":(class|func|meth|mod|data|attr):`", page.read_text()), page


def test_a_results_marker_without_its_file_fails_the_build(tmp_path):
    """A results page that names a JSON file nobody committed stops the build, naming the page."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Results\n\n<!-- results: peers no_such_benchmark -->\n")
    config = tmp_path / "mkdocs.yml"
    hook = ROOT / "docs" / "hooks" / "results.py"
    config.write_text(f"site_name: probe\ndocs_dir: {docs}\nhooks:\n  - {hook}\n")
    result = build_site(tmp_path / "site", config)
    assert result.returncode != 0
    assert "index.md" in result.stderr + result.stdout and "no_such_benchmark" in result.stderr + result.stdout


def test_readme_is_a_guide():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, f"README.md has {len(text.splitlines())} lines"
    for command in TWO_COMMANDS:
        assert f"```bash\n{command}\n```" in text, command
    assert TWO_COMMANDS[1] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("package", LIBRARY, ids=lambda p: p.name)
def test_library_does_not_point_into_benchmark_results(package):
    """Measured numbers live in benchmarks/results and the docs' Results pages; code points there, never quotes them.

    A docstring or comment naming a file under ``benchmarks/results`` goes stale when the benchmark is rerun
    or moved; say why in the code and send the reader to the Results page of the documentation.
    """
    offending = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "benchmarks/results" in line
    ]
    assert not offending, "\n".join(offending)
