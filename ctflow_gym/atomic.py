"""Write folders so that nothing half-written is ever left at their final path.

Work happens in a hidden scratch folder beside the target (same filesystem, so the
final move is one rename); the scratch folder is removed whatever happens.
Replacing an existing target removes it just before the rename: a crash between the
two leaves no target rather than a broken one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def scratch_folder(parent: str | os.PathLike, prefix: str) -> Iterator[Path]:
    """A temporary folder inside ``parent``, removed on leaving the block."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def move_into_place(built: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rename folder ``built`` to ``target``, replacing what was there."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(built, target)
    return target
