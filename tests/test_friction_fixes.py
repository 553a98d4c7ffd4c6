"""Issue 32's friction fixes, each checked through the entry a user reaches first (mostly the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctflow_gym.cli import main


@pytest.mark.parametrize("command", ["build", "thin", "combine"])
def test_dataset_writers_accept_a_relative_out(command, random_dataset_path, tmp_path, monkeypatch, capsys):
    """A relative ``--out`` used to be joined twice (scratch folder inside itself) and always failed."""
    monkeypatch.chdir(tmp_path)
    source = str(random_dataset_path)
    argv = {
        "build": ["dataset", "build", "--kind", "random", "--steps", "200", "--no-progress"],
        "thin": ["dataset", "thin", source, "--keep-every", "2", "--no-progress"],
        "combine": ["dataset", "combine", source, source, "--dataset-id", "test/hopper/twice-v0"],
    }[command]
    assert main([*argv, "--out", "mroot"]) == 0, capsys.readouterr().err
    written = Path(capsys.readouterr().out.split("dataset written to ")[1].strip())
    assert (tmp_path / written / "data" / "metadata.json").is_file()
    assert [p.name for p in (tmp_path / "mroot").iterdir()] == ["ctflow" if command != "combine" else "test"]
