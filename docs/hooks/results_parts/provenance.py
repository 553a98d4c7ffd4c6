"""The line under each table saying where its numbers come from: file, script or command, commit(s), machine."""

from __future__ import annotations

from pathlib import Path

from .locations import script_for, shown


def machine_text(machine: dict | None) -> str:
    """A machine record (``commit``, ``cores``, ``gpu``, ``torch``, ...) in words, without the commit."""
    if not machine:
        return "machine not recorded"
    parts = []
    if machine.get("gpu"):
        parts.append(str(machine["gpu"]))
    cores = machine.get("cores")
    parts.append(f"{cores} CPU cores ({machine.get('cpu', '?')})" if cores else str(machine.get("cpu", "?")))
    if not machine.get("gpu"):
        parts.append("no GPU")
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}")
    if machine.get("torch_threads"):
        threads = machine["torch_threads"]
        parts.append(f"{threads} torch thread{'s' if threads != 1 else ''}")
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    return ", ".join(parts)


def runs_machines_line(runs: list[dict], labels: dict[str, str], reported_on: dict | None) -> str:
    """Where the runs of a result file trained, when that is not (only) the machine that wrote the report.

    Each machine in words with the runs (method and seed) it trained, and each distinct ``code``
    note the runs carry (what ran, where the recorded commit does not say it); "" when every run
    trained on the reporting machine and none carries a note.
    """
    groups: dict[str, list[str]] = {}
    for run in runs:
        run_label = f"{labels.get(run.get('method'), run.get('method'))} {run.get('seed')}"
        groups.setdefault(machine_text(run.get("machine")), []).append(run_label)
    notes = sorted({run["code"] for run in runs if run.get("code")})
    if not notes and (not groups or set(groups) == {machine_text(reported_on)}):
        return ""
    places = "; ".join(f"{where} ({', '.join(which)})" for where, which in groups.items())
    text = f"Runs trained on: {places}." + "".join(f" Code: {note}." for note in notes)
    return f"<small>{text}</small>"


def first_machine(data: dict) -> dict | None:
    """The machine a result file records (``meta.machine``, ``machine``, or the first one in its runs)."""
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    for candidate in (meta.get("machine"), data.get("machine")):
        if isinstance(candidate, dict):
            return candidate
    for run in data.get("runs") or []:
        if isinstance(run, dict) and isinstance(run.get("machine"), dict):
            return run["machine"]
    return None


def recorded_command(data: dict) -> str | None:
    """The command line a result file records, if it records one (``command`` or ``argv``, top level or meta)."""
    for holder in (data, data.get("meta") if isinstance(data.get("meta"), dict) else {}):
        command = holder.get("command") or holder.get("argv")
        if isinstance(command, list):
            return " ".join(str(part) for part in command)
        if isinstance(command, str):
            return command
    return None


def source_line(
    name: str, path: Path, data: dict, machine: dict | None = None, commits: list[str] | None = None
) -> str:
    """The provenance line under a table: file, script or command, commit(s), machine."""
    machine = machine if machine is not None else first_machine(data)
    commits = commits or ([machine["commit"]] if machine and machine.get("commit") else [])
    parts = [f"`{shown(path)}`"]
    command = recorded_command(data)
    script = script_for(name)
    if command:
        parts.append(f"command `{command}`")
    elif script:
        parts.append(f"written by `{script}` (the file records its settings, not the command line)")
    parts.append(
        ("commits " if len(commits) > 1 else "commit ") + ", ".join(f"`{c}`" for c in commits) if commits else ""
    )
    parts.append(machine_text(machine))
    return "<small>Source: " + " · ".join(p for p in parts if p) + "</small>"
