"""Every script under ``examples/`` answers ``--help`` with its usage, without starting any work.

Each script runs in a subprocess from an empty folder with progress bars forced on
(``CTFLOW_PROGRESS=always``): a script that ignored ``--help`` and began to fit or
train would draw a bar on stderr or write its output folder there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_the_examples_are_found():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_help_prints_usage_and_does_nothing_else(script, tmp_path):
    env = {**os.environ, "CTFLOW_PROGRESS": "always", "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]
    assert "%|" not in done.stderr and "it/s" not in done.stderr, done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
