"""Every Python snippet in README.md and docs/**/*.md runs, as pasted.

Each ```` ```python ```` fence is one test, named ``file:line`` (the line of its opening fence).
A snippet runs in a fresh namespace (``__name__ == "__main__"``) with a new temporary folder
as the working directory, so what it writes goes there. A fence opened as
```` ```python { .continues } ```` continues the page's previous Python snippet instead: it
runs in that snippet's namespace and folder (the page says so; the rendered site marks such a
block), and when run alone it first reruns the snippets it continues. A failing snippet fails
with its file and line, and its traceback points at the lines of the Markdown file.

Nothing is skipped: a fence that cannot run must not be a Python fence (use ``text`` or
``bash``; those are not executed). Snippets use the shipped dataset and policies only (no
network, no GPU) and settings small enough for seconds each; the harness sets one torch
thread (on a busy 2-core machine several threads per process are much slower) and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
PYTHON = ("python", "py", "python3")


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str  # the code, dedented by the fence's indent
    continues: bool
    index: int  # position among the Python snippets of its file

    @property
    def where(self) -> str:
        return f"{shown(self.path)}:{self.line}"


def shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_info(info: str) -> tuple[str, set[str]]:
    """The language of a fence's info string and its ``{ .class }`` flags."""
    info = info.strip()
    language = re.split(r"[\s{]", info, maxsplit=1)[0].lower() if info else ""
    braces = re.search(r"\{([^}]*)\}", info)
    flags = {token[1:] for token in braces.group(1).split() if token.startswith(".")} if braces else set()
    return language, flags


def snippets_of(path: Path) -> list[Snippet]:
    """The Python fences of one Markdown file, in order."""
    lines = path.read_text().split("\n")
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        opening = OPENING.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language, flags = parse_info(opening["info"])
        body, j = [], i + 1
        closing = re.compile(rf"^{re.escape(indent)}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise ValueError(f"{shown(path)}:{i + 1}: code fence never closed")
        if language in PYTHON:
            unknown = flags - {"continues"}
            if unknown:
                raise ValueError(f"{shown(path)}:{i + 1}: unknown snippet flag(s) {sorted(unknown)}")
            found.append(Snippet(path, i + 1, "\n".join(body) + "\n", "continues" in flags, len(found)))
        i = j + 1
    if found and found[0].continues:
        raise ValueError(f"{found[0].where}: the first Python snippet of a page has nothing to continue")
    return found


SNIPPETS = [snippet for path in DOC_FILES for snippet in snippets_of(path)]
_states: dict[tuple[Path, int], tuple[dict, Path]] = {}  # (file, index) -> namespace and folder after it ran


def run(snippet: Snippet, namespace: dict, folder: Path) -> None:
    """Execute ``snippet`` in ``namespace`` with ``folder`` as the working directory."""
    # Padding with empty lines makes traceback line numbers those of the Markdown file.
    source = "\n" * snippet.line + snippet.code
    code = compile(source, shown(snippet.path), "exec")
    previous = os.getcwd()
    os.chdir(folder)
    try:
        exec(code, namespace)
    finally:
        os.chdir(previous)


def state_before(snippet: Snippet, tmp_path_factory) -> tuple[dict, Path]:
    """A fresh namespace and folder, or those left by the snippet this one continues (rerun if needed)."""
    if not snippet.continues:
        return {"__name__": "__main__"}, tmp_path_factory.mktemp("snippet")
    key = (snippet.path, snippet.index - 1)
    if key not in _states:
        previous = next(s for s in SNIPPETS if (s.path, s.index) == key)
        namespace, folder = state_before(previous, tmp_path_factory)
        run_or_fail(previous, namespace, folder, f"(rerun for {snippet.where}) ")
        _states[key] = namespace, folder
    return _states.pop(key)


def run_or_fail(snippet: Snippet, namespace: dict, folder: Path, prefix: str = "") -> None:
    try:
        run(snippet, namespace, folder)
    except BaseException as error:  # noqa: BLE001 - any failure, SystemExit included, is the snippet's
        if isinstance(error, (KeyboardInterrupt, pytest.fail.Exception)):
            raise
        frames = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        pytest.fail(f"{prefix}snippet {snippet.where} failed: {error!r}\n\n{frames}", pytrace=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.where for s in SNIPPETS])
def test_snippet_runs(snippet: Snippet, tmp_path_factory):
    namespace, folder = state_before(snippet, tmp_path_factory)
    run_or_fail(snippet, namespace, folder)
    continued = any(s.path == snippet.path and s.index == snippet.index + 1 and s.continues for s in SNIPPETS)
    if continued:
        _states[(snippet.path, snippet.index)] = namespace, folder
    else:
        with contextlib.suppress(Exception):
            namespace.clear()


def test_snippets_are_found():
    """The extractor sees the README's quick starts (a broken parser must not pass by finding nothing)."""
    readme = [s for s in SNIPPETS if s.path.name == "README.md"]
    assert len(readme) >= 4, [s.where for s in readme]
    assert all(not s.continues for s in readme), "README snippets are each complete, as a reader pastes them"


def test_a_failing_snippet_names_its_file_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Page\n\nText.\n\n```python\nx = 1\nraise RuntimeError('boom')\n```\n")
    (snippet,) = snippets_of(page)
    with pytest.raises(pytest.fail.Exception) as failure:
        run_or_fail(snippet, {"__name__": "__main__"}, tmp_path)
    message = str(failure.value)
    assert f"{page}:5" in message and "boom" in message
    assert f'File "{page}", line 7' in message  # the traceback points at the Markdown file's line


def test_extractor_reads_fences(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# P\n\n```bash\necho no\n```\n\n- item\n\n    ```python\n    a = 1\n    ```\n\n"
        "```python { .continues }\nb = a + 1\n```\n\n~~~text\n```python\nnot code\n```\n~~~\n"
    )
    found = snippets_of(page)
    assert [(s.line, s.code, s.continues) for s in found] == [(9, "a = 1\n", False), (13, "b = a + 1\n", True)]
    page.write_text("```python { .continues }\nb = 1\n```\n")
    with pytest.raises(ValueError, match="nothing to continue"):
        snippets_of(page)
    page.write_text("```python { .skip }\nb = 1\n```\n")
    with pytest.raises(ValueError, match="unknown snippet flag"):
        snippets_of(page)
