"""The runner every benchmark here stands on: settings, seeds, resumable runs, result files, rendering.

A benchmark is a script with a settings dataclass (a subclass of :class:`Settings`, every field
an :func:`option`) and a ``main(argv=None)`` that calls :func:`parse`, does its own work, and hands
its result to :func:`write_results`. The choices, where issue 32 left them open:

- **Settings.** Each field of the dataclass is a command-line option ``--field-name`` (its type
  from the default or the annotation, a tuple becomes ``nargs="+"``, a bool a switch); ``--help``
  lists them with their defaults. Every benchmark takes ``--out`` (default ``benchmarks/results``)
  and ``--threads`` (torch threads, default 1: the committed runs used one thread each and often
  shared the cores, so a result's times are only speeds where it says it was timed alone). The
  defaults are the settings of the committed results; a smoke test passes tiny ones.
- **Seeds.** A benchmark with several seeds takes ``--seeds``; each seed is its own cached run.
- **Resumable runs.** :class:`Runs` keeps each finished run (a seed, a configuration) as one JSON
  file in a folder beside the results (``<out>/<name>_runs/`` and the like). A run counts only
  when the settings it stores equal this invocation's (``defaults`` say what a run stored before
  a setting was recorded was made with), so a rerun skips what is done, redoes what was made
  with other settings, and a killed run loses only the run in progress. Every file here is
  written to a hidden temporary name and renamed, so no reader ever sees half a file.
- **Result files.** :func:`write_results` writes ``<out>/<name>.json`` and ``<name>.md``. The
  JSON gets ``command`` (the command line, the script relative to the repository) and
  ``machine`` (commit, ``+dirty`` when code outside ``benchmarks/results`` differs from it,
  Python, torch, CPU, cores, torch threads, GPU): the documentation's Results pages show them
  under each table.
- **Rendering.** There is one renderer of results, the documentation's
  (``docs/hooks/results.py``, one function per kind of result file): the ``.md`` beside a JSON is
  its Results-page rendering under a title, so the file and the site cannot disagree, and a
  benchmark holds no formatting of its own. The ``.md`` files committed before this runner are
  left as their scripts wrote them (the site renders every table from the JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import types
import typing
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def option(default: Any, help: str, **argparse_options: Any) -> Any:
    """A settings field: its default, its ``--help`` line and further ``argparse`` options (e.g. ``choices``)."""
    return dataclasses.field(default=default, metadata={"help": help, **argparse_options})


@dataclasses.dataclass
class Settings:
    """What every benchmark takes; a benchmark's settings subclass this."""

    out: str = option(str(RESULTS), "folder of the result files (.json, .md) and the run caches")
    threads: int = option(1, "torch threads")
    command: str = dataclasses.field(default="", metadata={"internal": True})
    """The command line that made these settings (set by :func:`parse`)."""

    def recorded(self) -> dict[str, Any]:
        """The settings as JSON values, without where the files go and the command line."""
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if k not in ("out", "command")}


def _option_type(annotation: Any, default: Any) -> tuple[type, bool]:
    """(the type of one value, whether the option takes several) from a field's annotation and default."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None) and a is not Ellipsis]
    origin = typing.get_origin(annotation)
    if origin in (tuple, list):
        return (arguments[0] if arguments else str), True
    if origin in (typing.Union, types.UnionType):  # X | None
        return _option_type(arguments[0], default)
    return (annotation if isinstance(annotation, type) else type(default)), False


def parse(settings_class: type, argv: list[str] | None = None) -> Any:
    """The settings of ``argv`` (default: the command line), with ``command`` recorded; torch threads set.

    ``--help`` shows the first paragraph of the script's docstring and every option with its default.
    """
    module = sys.modules[settings_class.__module__]
    parser = argparse.ArgumentParser(
        description=(module.__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(settings_class)
    for field in dataclasses.fields(settings_class):
        if field.metadata.get("internal"):
            continue
        extra = {k: v for k, v in field.metadata.items() if k != "help"}
        name = "--" + field.name.replace("_", "-")
        kind, several = _option_type(hints[field.name], field.default)
        if kind is bool:
            action = "store_true" if field.default is False else argparse.BooleanOptionalAction
            parser.add_argument(name, action=action, default=field.default, help=field.metadata["help"])
            continue
        if several:
            extra.setdefault("nargs", "+")
        parser.add_argument(name, type=kind, default=field.default, help=field.metadata["help"], **extra)
    argv = sys.argv[1:] if argv is None else list(argv)
    values = vars(parser.parse_args(argv))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    script = Path(module.__file__).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    settings = settings_class(**values, command=shlex.join(["python", str(shown), *argv]))
    torch.set_num_threads(settings.threads)
    return settings


def machine_info() -> dict[str, Any]:
    """Commit (``+dirty`` when code outside ``benchmarks/results`` differs), versions, CPU, cores, threads, GPU.

    ``CTFLOW_COMMIT`` in the environment names the commit instead of git's HEAD: a lent GPU
    machine's copy of the tree carries stale git metadata (``benchmarks/gpu_lease/README.md``).
    """
    git = lambda *args: subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = os.environ.get("CTFLOW_COMMIT")
    if not commit:
        commit = git("rev-parse", "--short", "HEAD") or "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results")
        commit += "+dirty" if dirty else ""
    return {
        "commit": commit,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON at ``path``, atomically (numpy scalars as floats)."""
    write_atomic(path, json.dumps(data, indent=2, default=float))


def write_png(figure: Any, path: Path, dpi: int = 90) -> Path:
    """Save the matplotlib ``figure`` as ``path`` atomically (a hidden temporary file, then a rename); close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp.png")
    figure.tight_layout()
    figure.savefig(temporary, dpi=dpi)
    os.replace(temporary, path)
    plt.close(figure)
    return path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (benchmarks draw without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def matches(run: dict, settings: dict, defaults: dict | None = None) -> bool:
    """Whether ``run`` was made with ``settings`` (a key it lacks: its value in ``defaults``)."""
    return all(run.get(key, (defaults or {}).get(key)) == value for key, value in settings.items())


class Runs:
    """Finished runs of a benchmark, one JSON file each in ``folder``, so that a rerun resumes."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def get(self, key: str, settings: dict, defaults: dict | None = None) -> dict | None:
        """The stored run ``key`` if it was made with ``settings`` (a key it lacks: its value in ``defaults``)."""
        file = self.folder / f"{key}.json"
        if not file.exists():
            return None
        run = json.loads(file.read_text())
        return run if matches(run, settings, defaults) else None

    def put(self, key: str, run: dict) -> dict:
        """Store ``run`` under ``key`` and return it."""
        write_json(self.folder / f"{key}.json", run)
        return run

    def run(
        self,
        key: str,
        settings: dict,
        compute: Callable[[], dict],
        defaults: dict | None = None,
        stale: Callable[[dict], bool] | None = None,
    ) -> dict:
        """The stored run ``key`` made with ``settings``; else ``compute()``, stored with them.

        A new run also records ``machine`` (as at its start: the code that ran) and
        ``wall_seconds`` (unless ``compute`` returns its own). ``stale(run)``: true for a
        stored run whose files outside the record are gone (a cleared work folder), which
        is then computed again.
        """
        stored = self.get(key, settings, defaults)
        if stored is not None and not (stale and stale(stored)):
            return stored
        machine, started = machine_info(), time.perf_counter()
        result = compute()
        return self.put(key, {**settings, "machine": machine, "wall_seconds": time.perf_counter() - started, **result})

    def all(self, pattern: str = "*.json") -> list[dict]:
        """Every stored run whose file name matches ``pattern``, in file-name order."""
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob(pattern))]


def renderers():
    """The documentation's results hook (``docs/hooks/results.py``) as a module: its ``RENDERERS`` and ``Page``."""
    name = "ctflow_docs_results_hook"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "hooks" / "results.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def render(kind: str, name: str, path: Path, title: str) -> str:
    """The Markdown of the result file ``path`` by the documentation's renderer ``kind``, under ``title``."""
    hook = renderers()

    class FilePage(hook.Page):
        def image(self, image: Path, alt: str) -> str:  # a plot committed beside the .md
            return f"![{alt}]({image.name})"

    body = hook.RENDERERS[kind](name, json.loads(Path(path).read_text()), Path(path), FilePage())
    return f"# {title}\n\n{body}\n"


def write_results(settings: Settings, name: str, data: dict, kind: str, title: str) -> Path:
    """``<out>/<name>.json`` (``data`` with ``command`` and ``machine``) and its rendering ``<name>.md``.

    ``kind`` names the documentation's renderer of this kind of result. Returns the JSON's path
    and prints the Markdown.
    """
    out = Path(settings.out)
    path = out / f"{name}.json"
    write_json(path, {**data, "command": settings.command, "machine": machine_info()})
    markdown = render(kind, name, path, title)
    write_atomic(out / f"{name}.md", markdown)
    print(markdown, flush=True)
    return path


def interleaved_timings(functions: dict[str, Callable[[], Any]], rounds: int, block: int = 10) -> dict[str, float]:
    """Median microseconds per call of each function, measured in interleaved blocks.

    Each round times ``block`` calls of every function in turn, so that load from other
    processes hits all of them alike; the ratios of the medians compare like with like.
    """
    for function in functions.values():
        for _ in range(min(50, rounds * block)):
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter_ns()
            for _ in range(block):
                function()
            samples[name].append((time.perf_counter_ns() - started) / block / 1e3)
    return {name: float(np.median(values)) for name, values in samples.items()}
