"""Progress bars stay quiet in logs and obey CTFLOW_PROGRESS."""

import io

import pytest

from ctflow_gym.progress import NON_TTY_MININTERVAL, PROGRESS_ENV, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _redraws(text: str) -> int:
    return len([line for line in text.replace("\r", "\n").split("\n") if line.strip()])


def _run_for(bar, updates: int, seconds_each: float) -> None:
    """Update ``bar`` ``updates`` times while its clock advances ``seconds_each`` per update."""
    now = [bar._time()]
    bar._time = lambda: now[0]
    with bar:
        for _ in range(updates):
            now[0] += seconds_each
            bar.update(1)


def test_a_log_gets_a_few_lines_for_many_quick_updates(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    log = io.StringIO()
    bar = progress_bar(total=20_000, desc="steps", file=log)
    assert bar.mininterval == NON_TTY_MININTERVAL and bar.maxinterval >= NON_TTY_MININTERVAL
    _run_for(bar, 20_000, 0.01)  # 200 s of a loop at 100 updates a second
    assert 2 <= _redraws(log.getvalue()) <= 2 + 200 / NON_TTY_MININTERVAL + 1
    assert "20000/20000" in log.getvalue()
    monkeypatch.setenv(PROGRESS_ENV, "always")  # what plain tqdm writes to the same log
    flooded = io.StringIO()
    _run_for(progress_bar(total=20_000, desc="steps", file=flooded), 20_000, 0.01)
    assert _redraws(flooded.getvalue()) > 500


def test_iterable_form_and_a_terminal_keep_tqdms_defaults(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    terminal = _Terminal()
    bar = progress_bar(range(5), desc="loop", file=terminal)
    assert list(bar) == [0, 1, 2, 3, 4]
    assert bar.mininterval == 0.1
    assert "5/5" in terminal.getvalue()


def test_env_var_never_disables_and_always_restores_tqdm(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "never")
    log = io.StringIO()
    with progress_bar(total=100, file=log) as bar:
        bar.update(100)
    assert bar.disable and log.getvalue() == ""
    monkeypatch.setenv(PROGRESS_ENV, "always")
    bar = progress_bar(total=100, file=io.StringIO())
    assert bar.mininterval == 0.1
    bar.close()
    assert progress_bar(total=100, file=io.StringIO(), disable=True).disable  # the caller's choice wins


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "sometimes")
    with pytest.raises(ValueError, match="CTFLOW_PROGRESS must be one of"):
        progress_bar(total=1)
