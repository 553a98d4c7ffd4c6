"""Progress bars stay quiet in logs and obey CTFLOW_PROGRESS."""

import io

import pytest
from tqdm import tqdm

from ctflow_gym.progress import NON_TTY_HEARTBEAT, NON_TTY_STEP, PROGRESS_ENV, progress_bar


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


def _lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


def test_a_log_gets_a_few_lines_for_many_quick_updates(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    log = io.StringIO()
    _run_for(progress_bar(total=20_000, desc="steps", file=log), 20_000, 0.01)  # 200 s at 100 updates a second
    lines = _lines(log.getvalue())
    assert "\r" not in log.getvalue()  # whole lines: a log viewer shows each as it comes
    assert len(lines) <= 1 + round(1 / NON_TTY_STEP) + 200 / NON_TTY_HEARTBEAT + 1
    assert "20000/20000" in lines[-1] and "100%" in lines[-1]
    monkeypatch.setenv(PROGRESS_ENV, "always")  # what plain tqdm writes to the same log
    flooded = io.StringIO()
    _run_for(progress_bar(total=20_000, desc="steps", file=flooded), 20_000, 0.01)
    assert _redraws(flooded.getvalue()) > 500


def test_a_log_shows_progress_while_the_loop_runs(monkeypatch):
    """Redirected, a bar used to sit at 0/1500 for a whole fit; now each tenth of the way is a line as it happens."""
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    log = io.StringIO()
    for step in progress_bar(range(1500), desc="ae", file=log, leave=False):
        if step == 800:
            seen = log.getvalue()
            assert "750/1500" in seen and "50%" in seen and "1500/1500" not in seen
            tqdm.write("a line of its own", file=log)  # e.g. an evaluation printed during training
    assert "\r" not in log.getvalue()
    lines = [line for line in _lines(log.getvalue()) if line != "a line of its own"]
    assert [line.split()[0] for line in lines] == ["ae:"] * len(lines)
    assert [f"{150 * i}/1500" in line for i, line in enumerate(lines)] == [True] * 11


def test_a_log_without_a_total_gets_a_line_every_heartbeat(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    log = io.StringIO()
    _run_for(progress_bar(desc="episodes", file=log), 1000, 0.5)  # 500 s, total unknown
    lines = _lines(log.getvalue())
    assert 500 / NON_TTY_HEARTBEAT <= len(lines) <= 500 / NON_TTY_HEARTBEAT + 2
    assert "1000" in lines[-1]


def test_a_refiner_fit_logs_each_stage_as_it_goes(random_dataset, capsys, monkeypatch):
    from ctflow_gym import TrajectoryRefiner

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    TrajectoryRefiner(
        window=8,
        ae_hidden=32,
        flow_hidden=32,
        batch_size=32,
        ae_steps=40,
        flow_steps=40,
        predictor_steps=20,
        inverse_dynamics_steps=20,
        seed=0,
    ).fit(random_dataset)
    err = capsys.readouterr().err
    assert "20/40" in err and "40/40" in err and "\r" not in err, err[-3000:]


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
