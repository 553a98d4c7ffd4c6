"""Independent work spread over worker processes: replays of windows, shards of a dataset.

The items are cut into contiguous chunks, one process each. Callers only hand over
work whose result does not depend on the process that does it (a replay starts from
its window's recorded simulator state; a dataset shard has its own seed), so results
with ``workers=W`` equal those with ``workers=1`` exactly (tested). Workers start with
``"forkserver"`` (``"spawn"`` where that is missing; forking a process that has run
torch on several threads can deadlock), so each pays an interpreter start and the
imports, about a second or two: worth it for thousands of windows, tracked execution
(a network call per step) or dataset shards, not for a few hundred open-loop windows
(the Results page of the documentation has the measured throughput).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np


def require_workers(workers: Any) -> None:
    """Raise ``ValueError`` naming ``workers`` unless it is an integer >= 1."""
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")


ORPHAN_CHECK_SECONDS = 1.0
"""How often a worker checks that the process that started it is still there."""


def _process_gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie, exited but not reaped yet, counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    stat = f"/proc/{pid}/stat"
    try:
        with open(stat) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _exit_with(caller: int) -> None:
    """End this worker once process ``caller`` (the one that called :func:`in_chunks`) has exited.

    A worker's parent is the forkserver, which outlives the caller as long as its workers
    run, so the parent cannot tell; the caller's pid is watched instead. Without this, a
    caller killed on its own (``kill``, an out-of-memory kill) leaves its workers to finish
    their chunks, dataset shards maybe, into a folder nobody reads. (Ctrl-C reaches the
    whole process group and needs none of this.)
    """
    while True:
        time.sleep(ORPHAN_CHECK_SECONDS)
        if _process_gone(caller):
            os._exit(1)


def _worker_start(caller: int) -> None:
    """Worker start: one math thread per process (the processes are the parallelism; several
    OpenMP threads per worker on the same cores made tracked replays 6x slower), and a
    watchdog that ends the worker when ``caller`` exits."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    threading.Thread(target=_exit_with, args=(caller,), daemon=True).start()


def in_chunks(function: Callable[..., Any], workers: int, sequences: Sequence[Any], **kwargs: Any) -> list[Any]:
    """``function(*chunk, **kwargs)`` for ``workers`` contiguous chunks of the aligned ``sequences``.

    ``sequences`` are indexable along their first axis and of one length (``None``
    entries pass through as ``None``); results come back in chunk order. With one
    worker (or one item) ``function`` runs here, on everything.
    """
    require_workers(workers)
    n = len(sequences[0])
    if workers == 1 or n < 2:
        return [function(*sequences, **kwargs)]
    bounds = np.linspace(0, n, min(workers, n) + 1).astype(int)
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(
        len(bounds) - 1, mp_context=context, initializer=_worker_start, initargs=(os.getpid(),)
    ) as pool:
        futures = [
            pool.submit(function, *[None if s is None else s[lo:hi] for s in sequences], **kwargs)
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        return [future.result() for future in futures]
