"""Write folders so that nothing half-written is ever left at their final path.

Work happens in a hidden scratch folder beside the target (same filesystem, so the
final move is one rename); the scratch folder is removed whatever happens.
Replacing an existing target removes it just before the rename: a crash between the
two leaves no target rather than a broken one.

A process killed outright (SIGKILL, the machine's power, a session's end) cannot remove its
scratch folder, and a dataset build's holds everything recorded so far. So each scratch folder
has an owner file beside it (``<folder>.owner``: host name and process id), and the next
scratch folder made with the same prefix in the same parent removes the ones whose owner
process on this host is gone. Folders of a live process, of another host, or without an
owner file (made before this existed) are left alone.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def scratch_folder(parent: str | os.PathLike, prefix: str) -> Iterator[Path]:
    """A temporary folder inside ``parent``, removed on leaving the block."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    owner = _owner_file(path)
    try:
        owner.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        owner.unlink(missing_ok=True)


def _owner_file(folder: Path) -> Path:
    return folder.with_name(folder.name + ".owner")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_abandoned(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """Remove the scratch folders ``<parent>/<prefix>*`` whose owner process on this host is gone; the removed."""
    removed = []
    for owner in Path(parent).glob(f"{glob.escape(prefix)}*.owner"):
        try:
            made_by = json.loads(owner.read_text())
            host, pid = made_by["host"], int(made_by["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours: leave it
        if host != socket.gethostname() or _alive(pid):
            continue
        folder = owner.with_name(owner.name[: -len(".owner")])
        shutil.rmtree(folder, ignore_errors=True)
        owner.unlink(missing_ok=True)
        removed.append(folder)
    return removed


def move_into_place(built: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename folder ``built`` to ``target``, replacing what was there."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(built, target)
    return target
