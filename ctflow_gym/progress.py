"""Progress bars that suit both a terminal and a log file.

Every long loop in ctflow_gym makes its bar with :func:`progress_bar` instead of
calling tqdm directly. On a terminal (or in a notebook) the bar is tqdm's own. When
the bar's stream is not a terminal (CI, ``> run.log 2>&1``, a job scheduler), tqdm
would write a new line up to ten times a second: thousands of lines in a user's CI
log. There the bar is kept but redrawn at most every :data:`NON_TTY_MININTERVAL`
seconds, so the log holds a handful of progress lines (the first, one per interval,
and the last): enough to see that a run is alive and how far it got when it was cut
off. The bar is kept rather than disabled for that reason. Metrics do not go through
the bar: they reach the run logger (W&B, files), which is separate.

The environment variable :data:`PROGRESS_ENV` (``CTFLOW_PROGRESS``) overrides the
choice:

- ``auto`` (or unset): as above, chosen from whether the stream is a terminal;
- ``always``: tqdm's own behaviour even when the stream is not a terminal;
- ``never``: no bars at all.

A caller's ``disable=True`` (e.g. ``progress_bar=False`` in a config) always wins
over ``always``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable

from tqdm.auto import tqdm

PROGRESS_ENV = "CTFLOW_PROGRESS"
"""Environment variable that overrides when bars are shown: ``auto``, ``always`` or ``never``."""
PROGRESS_MODES = ("auto", "always", "never")
"""The values :data:`PROGRESS_ENV` accepts."""
NON_TTY_MININTERVAL = 30.0
"""Seconds between redraws of a bar whose stream is not a terminal (mode ``auto``)."""


def progress_mode() -> str:
    """The mode :data:`PROGRESS_ENV` asks for (``"auto"`` when unset or empty).

    Raises ``ValueError`` naming the variable when it holds anything else than one
    of :data:`PROGRESS_MODES`.
    """
    mode = os.environ.get(PROGRESS_ENV, "").strip().lower() or "auto"
    if mode not in PROGRESS_MODES:
        raise ValueError(f"{PROGRESS_ENV} must be one of {PROGRESS_MODES}; got {os.environ[PROGRESS_ENV]!r}")
    return mode


def _interactive(stream: Any) -> bool:
    """Whether ``stream`` is a terminal, or bars are notebook widgets (not written to a log)."""
    if any(cls.__name__ == "tqdm_notebook" for cls in tqdm.__mro__):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(
    iterable: Iterable | None = None,
    total: float | None = None,
    desc: str | None = None,
    disable: bool = False,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar that does not flood logs; use it like ``tqdm(...)``.

    ``iterable``, ``total``, ``desc``, ``disable`` and any other keyword (``unit``,
    ``leave``, ``initial``, ``file``, ...) mean what they mean to tqdm. The bar writes
    to ``file`` (default ``sys.stderr``). With :data:`PROGRESS_ENV` at ``auto`` and a
    stream that is not a terminal, the bar is redrawn at most every
    :data:`NON_TTY_MININTERVAL` seconds (unless the caller passes ``mininterval``);
    at ``never`` it is disabled; at ``always`` it is tqdm's default. See the module
    docstring for why.
    """
    mode = progress_mode()
    if mode == "never":
        disable = True
    elif mode == "auto" and not disable and "mininterval" not in kwargs:
        if not _interactive(kwargs.get("file") or sys.stderr):
            kwargs["mininterval"] = NON_TTY_MININTERVAL
            # tqdm's monitor thread forces a redraw every maxinterval (10 s by default).
            kwargs["maxinterval"] = max(float(kwargs.get("maxinterval", 0.0)), NON_TTY_MININTERVAL)
    return tqdm(iterable, total=total, desc=desc, disable=disable, **kwargs)
