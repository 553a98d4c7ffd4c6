"""Worker processes: they end with the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctflow_gym.workers import _process_gone

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")

HELPER = """
import os, time
from pathlib import Path

def sleep_and_record(items, folder):
    Path(folder, str(os.getpid())).write_text("")
    time.sleep(120)
    return items
"""

CALLER = """
from ctflow_gym.workers import in_chunks
from sleeping_helper import sleep_and_record
in_chunks(sleep_and_record, 2, [list(range(4))], folder={folder!r})
"""


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    return not _process_gone(pid)


def test_workers_exit_when_their_caller_is_killed(tmp_path):
    (tmp_path / "sleeping_helper.py").write_text(HELPER)
    started = tmp_path / "started"
    started.mkdir()
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    caller = subprocess.Popen([sys.executable, "-c", CALLER.format(folder=str(started))], env=environment)
    try:
        deadline = time.monotonic() + 120
        while len(list(started.iterdir())) < 2:
            assert time.monotonic() < deadline, "the workers did not start"
            assert caller.poll() is None, "the caller ended early"
            time.sleep(0.2)
        workers = [int(path.name) for path in started.iterdir()]
        assert all(alive(pid) for pid in workers)
        caller.send_signal(signal.SIGKILL)
        caller.wait()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers), "workers outlived their caller"
    finally:
        if caller.poll() is None:
            caller.kill()
        for path in started.iterdir():
            if alive(int(path.name)):
                os.kill(int(path.name), signal.SIGKILL)
