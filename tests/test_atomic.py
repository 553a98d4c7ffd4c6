"""Scratch folders: a process killed outright leaves one behind; the next one made beside it removes it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from ctflow_gym.atomic import remove_abandoned, scratch_folder

KILLED = """
import os, signal, sys
from ctflow_gym.atomic import scratch_folder
with scratch_folder(sys.argv[1], ".ctflow-build-") as path:
    (path / "recorded.bin").write_bytes(b"x" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_builds_scratch_folder_is_removed_by_the_next_one(tmp_path):
    done = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], capture_output=True)
    assert done.returncode == -signal.SIGKILL
    (left,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert (left / "recorded.bin").is_file() and left.with_name(left.name + ".owner").is_file()
    other = tmp_path / ".ctflow-thin-abc"  # another prefix, and no owner file: not this sweep's business
    other.mkdir()
    with scratch_folder(tmp_path, ".ctflow-build-") as path:
        assert not left.exists() and not left.with_name(left.name + ".owner").exists()
        with scratch_folder(tmp_path, ".ctflow-build-") as inner:  # the outer one's owner (this process) lives
            assert path.is_dir() and inner != path
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ctflow-thin-abc"]  # owner files gone with their folders


def test_folders_of_another_host_or_unreadable_owners_are_left(tmp_path):
    foreign = tmp_path / ".ctflow-build-foreign"
    foreign.mkdir()
    (tmp_path / ".ctflow-build-foreign.owner").write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    broken = tmp_path / ".ctflow-build-broken"
    broken.mkdir()
    (tmp_path / ".ctflow-build-broken.owner").write_text("{not json")
    assert remove_abandoned(tmp_path, ".ctflow-build-") == []
    assert foreign.is_dir() and broken.is_dir()
