"""Progress bars that suit both a terminal and a log file.

Every long loop in ctflow_gym makes its bar with :func:`progress_bar` instead of
calling tqdm directly. On a terminal (or in a notebook) the bar is tqdm's own. When
the bar's stream is not a terminal (CI, ``> run.log 2>&1``, a job scheduler), tqdm's
redraws are the wrong thing: they are separated by carriage returns, so a log viewer
that shows whole lines shows nothing until the bar ends (a fit "sat at 0/1500, then
jumped to 97%"), and unthrottled they add up to thousands of redraws. There the bar
is a :class:`LogProgress` instead: it writes plain, newline-ended lines

- at the start, at every tenth of the total (:data:`NON_TTY_STEP`) and at the end:
  about a dozen lines per bar whatever its length, each telling how far it got,
  the rate and the time left, so a log cut off anywhere says where the run was;
- and, when no line came for :data:`NON_TTY_HEARTBEAT` seconds (a long stage, or a
  bar without a total), one more: a log shows a running job is alive at least once a
  minute, at most sixty lines an hour.

A bar made with ``leave=False`` (the refiner's stages) still ends with its final line
in a log: there is nothing to clear there, and the line records the stage ran. Metrics
do not go through the bar: they reach the run logger (W&B, files), which is separate.

The environment variable :data:`PROGRESS_ENV` (``CTFLOW_PROGRESS``) overrides the
choice:

- ``auto`` (or unset): as above, chosen from whether the stream is a terminal;
- ``always``: tqdm's own behaviour even when the stream is not a terminal;
- ``never``: no bars at all.

A caller's ``disable=True`` (e.g. ``progress_bar=False`` in a config) always wins
over ``always``.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Iterable

from tqdm.auto import tqdm
from tqdm.std import tqdm as plain_tqdm

PROGRESS_ENV = "CTFLOW_PROGRESS"
"""Environment variable that overrides when bars are shown: ``auto``, ``always`` or ``never``."""
PROGRESS_MODES = ("auto", "always", "never")
"""The values :data:`PROGRESS_ENV` accepts."""
NON_TTY_STEP = 0.1
"""Fraction of the total between two lines of a bar written to a log (mode ``auto``)."""
NON_TTY_HEARTBEAT = 60.0
"""Seconds after which a bar written to a log adds a line even between two steps."""


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


class LogProgress(plain_tqdm):
    """A tqdm bar that writes whole lines, for a stream that is not a terminal.

    Made by :func:`progress_bar` in that case (see the module docstring for when it
    writes a line and why). It counts, times and formats as tqdm does; only the
    drawing differs: no carriage returns, no cursor moves, no bar characters.
    """

    monitor_interval = 0  # no tqdm monitor thread: lines come from the loop's own updates

    def __init__(self, *args: Any, **kwargs: Any):
        self._line_count = -1  # n at the last line written
        self._line_mark = -1  # tenths of the total reached at the last line
        self._line_time = -math.inf
        total = kwargs.get("total")
        if total is None and args and hasattr(args[0], "__len__"):
            total = len(args[0])
        # Check every hundredth of the total (every update without a total): cheap, and
        # each tenth is written within a hundredth of it.
        kwargs.setdefault("miniters", max(1, int(total) // 100) if total else 1)
        kwargs.setdefault("mininterval", 0.0)
        # tqdm's own layout without the bar characters (which say nothing on a line of their own).
        counts = "{percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
        kwargs.setdefault("bar_format", ("{desc}: " if kwargs.get("desc") else "") + counts if total else None)
        super().__init__(*args, **kwargs)

    def _mark(self) -> int:
        return math.floor(self.n / self.total / NON_TTY_STEP + 1e-9) if self.total else -1

    def _write_line(self) -> None:
        self.fp.write(self.__str__().strip() + "\n")
        self.fp.flush()
        self._line_count, self._line_mark, self._line_time = self.n, self._mark(), self._time()

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """Write a line when a new tenth of the total is reached or the log has been quiet too long."""
        if msg is not None:  # tqdm clearing or overriding the bar: nothing to clear in a log
            return False
        if self._mark() > self._line_mark or self._time() - self._line_time >= NON_TTY_HEARTBEAT:
            self._write_line()
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing to clear in a log (``tqdm.write`` asks before writing its own line)."""

    def close(self) -> None:
        """End the bar with its final line (unless that line was just written)."""
        if getattr(self, "disable", True):
            return
        written = self._line_count == self.n
        self.leave = False  # tqdm's own close would add a newline or a carriage return
        super().close()
        if not written:
            self._write_line()


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
    stream that is not a terminal, the bar is a :class:`LogProgress`, which writes a
    line per tenth of the total and at least one a minute; at ``never`` it is
    disabled; at ``always`` it is tqdm's default. See the module docstring for why.
    """
    mode = progress_mode()
    if mode == "never":
        disable = True
    elif mode == "auto" and not disable and not _interactive(kwargs.get("file") or sys.stderr):
        return LogProgress(iterable, total=total, desc=desc, disable=disable, **kwargs)
    return tqdm(iterable, total=total, desc=desc, disable=disable, **kwargs)
