"""MkDocs hook: the Results pages' tables and plots, written at build time from the committed benchmark JSON.

A results page (``docs/results/*.md``) holds prose and markers, one per table::

    <!-- results: peers gtp_vs_peers_200k_ensemble5 -->

``peers`` names a renderer below (:data:`RENDERERS`) and ``gtp_vs_peers_200k_ensemble5`` the JSON file
(``benchmarks/results/gtp_vs_peers_200k_ensemble5.json``; a file moved elsewhere under ``benchmarks/`` is
found by its name). Each marker becomes the file's tables, a line saying where the numbers come from (the
file, the script that wrote it, the command where the JSON records one, the commit(s) and the machine), and
the file's plot where one is committed beside it (the PNG is copied into the site). A marker naming an
unknown renderer or a missing file stops the build with an error naming the page, so the pages cannot
silently lose a table. Nothing here computes a number the JSON does not hold, except summaries of the
numbers it does (means, paired differences, percentages), said so where they appear.

The hand-written analyses ``benchmarks/results/*_analysis.md`` become pages under ``results/analyses/``
(copied as they are, with a note on where they come from).

mkdocs.yml loads this file with ``hooks: [docs/hooks/results.py]``. The benchmarks render the ``.md`` they
write beside each JSON with the same renderers (``benchmarks/harness.py``), so this module imports MkDocs
only where the site is built: it also loads where MkDocs is not installed (an offline GPU machine).
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Callable

try:
    from mkdocs.exceptions import PluginError
except ImportError:  # rendering a benchmark's .md without MkDocs installed

    class PluginError(Exception):
        """MkDocs' error for a hook that cannot go on (MkDocs is not installed here)."""


log = logging.getLogger("mkdocs.hooks.results")

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
RESULTS = BENCHMARKS / "results"
IMAGE_FOLDER = "results/img"
ANALYSES = {  # page name under results/analyses/ -> hand-written analysis in benchmarks/results
    "closed_loop_refinement": "closed_loop_refinement_analysis.md",
    "closed_loop_policy": "closed_loop_policy_analysis.md",
    "feedback_seeds": "feedback_seeds_analysis.md",
    "refiner_tables": "refiner_tables_analysis.md",
    "gtp_vs_peers": "gtp_vs_peers_analysis.md",
    "gtp_diagnostics": "gtp_diagnostics_analysis.md",
    "scale": "scale_analysis.md",
}
MARKER = re.compile(r"^<!-- results: (?P<kind>[\w-]+) (?P<name>[\w.-]+) -->[ \t]*$", re.MULTILINE)
SCRIPTS = (  # result-file name prefix -> the benchmark script that writes it (longest prefix first)
    ("gtp_ensemble5_vs_one", "gtp_compare_runs.py"),
    ("gtp_vs_peers", "gtp_vs_peers.py"),
    ("gtp_speed", "gtp_speed.py"),
    ("gtp_candidate_count", "gtp_candidate_count.py"),
    ("gtp_critic_swap", "gtp_critic_swap.py"),
    ("gtp_loss_balance", "gtp_loss_balance.py"),
    ("gtp_fitted_k2", "gtp_two_step_time.py"),
    ("refined_policy", "refined_policy_table.py"),
    ("refiner_selection", "refiner_selection.py"),
    ("refiner_tables", "refiner_tables.py"),
    ("refiner_levers", "refiner_levers.py"),
    ("closed_loop_policy", "closed_loop_policy.py"),
    ("scale", "scale.py"),
    ("datasets", "dataset_table.py"),
)


# ---------------------------------------------------------------------------------------------------------------
# Finding files, formatting numbers and tables


def find_result(name: str, suffix: str = ".json") -> Path:
    """``benchmarks/results/<name><suffix>``, or the one file of that name elsewhere under ``benchmarks/``."""
    path = RESULTS / f"{name}{suffix}"
    if path.is_file():
        return path
    found = sorted(p for p in BENCHMARKS.rglob(f"{name}{suffix}") if ".bench-venvs" not in p.parts)
    if not found:
        raise FileNotFoundError(f"no {name}{suffix} under {BENCHMARKS.relative_to(ROOT)}/")
    return found[0]


def find_family(prefix: str) -> Path:
    """The folder holding the result files named ``<prefix>*.json`` (``benchmarks/results`` first)."""
    for folder in [RESULTS, *sorted({p.parent for p in BENCHMARKS.rglob(f"{prefix}*.json")})]:
        if any(folder.glob(f"{prefix}*.json")):
            return folder
    raise FileNotFoundError(f"no {prefix}*.json under {BENCHMARKS.relative_to(ROOT)}/")


def load(name: str) -> tuple[dict, Path]:
    """The JSON result ``name`` and its path."""
    path = find_result(name)
    return json.loads(path.read_text()), path


def script_for(name: str) -> str | None:
    """The benchmark script that writes result ``name``, as a path relative to the repository (where it is now)."""
    for prefix, script in SCRIPTS:
        if name.startswith(prefix):
            found = sorted(BENCHMARKS.rglob(script))
            return str(found[0].relative_to(ROOT)) if found else f"benchmarks/{script}"
    return None


def shown(path: Path) -> str:
    """``path`` relative to the repository, or as it is when it lies outside (a benchmark's trial ``--out``)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def number(value: Any, digits: int = 1, signed: bool = False) -> str:
    """``value`` rounded, ``-`` for a missing or non-finite one."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def mean_se(entry: dict | None, digits: int = 1, signed: bool = False) -> str:
    """``{"mean": m, "se": s}`` as ``m ± s``."""
    if not entry:
        return "-"
    return f"{number(entry.get('mean'), digits, signed)} ± {number(entry.get('se'), digits)}"


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction as a signed percentage."""
    return "-" if value is None else f"{100 * value:+.{digits}f}%"


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (cells ``|``-escaped)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    # In a div of its own so the stylesheet can keep the numbers of a row on one line each.
    return '<div class="results-table" markdown>\n\n' + "\n".join(lines) + "\n\n</div>"


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def standard_error(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1) / len(values))


def checkpoint_label(path: str) -> str:
    """``/tmp/ctflow_s1_40_200/seed4/model`` -> ``seed4/model`` (the folders were temporary; the seed is the point)."""
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else path


# ---------------------------------------------------------------------------------------------------------------
# Where the numbers come from


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


# ---------------------------------------------------------------------------------------------------------------
# Renderers: one per kind of result file; each returns Markdown (tables and the source line)


class Page:
    """What a renderer may add to the site besides Markdown: plots (copied from beside the JSON)."""

    def __init__(self) -> None:
        self.images: dict[str, Path] = {}

    def image(self, path: Path, alt: str) -> str:
        """Markdown for the PNG ``path``; the file is copied to ``results/img/`` (pages under results/)."""
        self.images[path.name] = path
        return f"![{alt}](img/{path.name})"


def render_peers(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_vs_peers*.json``: scores per method over seeds, curves, training speed and action latency."""
    meta, summary = data.get("meta", {}), data.get("summary", {})
    labels = {"gtp": "GTP", "gtp-bc": "GTP-BC", "fql": "FQL", "deflow": "DeFlow"}
    labels.update({"iql": "d3rlpy IQL", "td3+bc": "d3rlpy TD3+BC"})
    seeds = sorted({seed for entry in summary.values() for seed in entry.get("seeds", [])})
    rows, peak_rows, in_runs, time_rows = [], [], [], []
    for method, entry in summary.items():
        by_seed = dict.fromkeys(seeds, "")
        for key, scores in entry.get("scores", {}).items():
            k = key.split("_", 1)[1] if "_" in key else ("K=5" if method.startswith("gtp") else "")
            label = labels.get(method, method) + (f" ({k})" if k else "")
            per_seed = dict(zip(entry.get("seeds", []), scores.get("per_seed", [])))
            rows.append(
                [label, number(scores.get("median")), number(scores.get("mean")), number(scores.get("std"))]
                + [number(per_seed[s]) if s in per_seed else "" for s in seeds]
            )
        if entry.get("steps_per_second"):
            in_runs.append(f"{labels.get(method, method)} {number(entry['steps_per_second'])}")
        if entry.get("peaks"):
            for seed, peak in zip(entry.get("seeds", []), entry["peaks"]):
                by_seed[seed] = f"{number(peak['score'])} at {peak['step'] // 1000}k"
            peak_rows.append([labels.get(method, method)] + list(by_seed.values()))
        if entry.get("to_90_percent"):
            cells = dict.fromkeys(seeds, "")
            for seed, reached in zip(entry.get("seeds", []), entry["to_90_percent"]):
                if reached.get("step") is not None:
                    seconds = reached.get("training_seconds")
                    cells[seed] = f"{reached['step'] // 1000}k" + (f" ({number(seconds / 60)} min)" if seconds else "")
            time_rows.append([labels.get(method, method)] + list(cells.values()))
    settings = [
        f"dataset `{meta.get('dataset')}` ({meta.get('transitions')} transitions)",
        f"{meta.get('steps')} gradient steps, batch {meta.get('batch_size')}",
        f"seeds {meta.get('seeds')}",
        f"{meta.get('episodes')} evaluation episodes"
        + (f" every {meta['eval_every']} steps" if meta.get("eval_every") else " at the end"),
        f"GTP acts with the best of N = {meta.get('action_candidates')} samples by its critic",
    ]
    if "schedule_max_steps" in meta:
        settings.append(f"schedule s1 = {meta['schedule_max_steps']}")
    if "critic_ensemble" in meta:
        settings.append(f"{meta['critic_ensemble']} critic(s)")
    score_rule = (
        "score = mean D4RL score of the last 5 evaluations"
        if meta.get("eval_every")
        else "score = D4RL score of the final evaluation"
    )
    out = [
        "Settings: " + "; ".join(settings) + f"; {score_rule}.",
        "",
        table(["method", "median", "mean", "std"] + [f"seed {s}" for s in seeds], rows),
    ]
    if in_runs:
        out += [
            "",
            "Training steps/s measured inside these runs, which shared the cores (not a speed; a speed table is "
            "timed alone): " + ", ".join(in_runs) + ".",
        ]
    if peak_rows:
        out += [
            "",
            "Each seed's best single evaluation (K = 5 for GTP) and when it came, picked in hindsight with the env "
            "(not an offline score): how much a run lost between its best point and its last evaluations.",
            "",
            table(["peak"] + [f"seed {s}" for s in seeds], peak_rows),
        ]
    if time_rows and any(any(cell for cell in row[1:]) for row in time_rows):
        out += [
            "",
            "When each seed's evaluation first held 90% of its final score: the step and, where recorded, the "
            "minutes of training before it (one torch thread, evaluations excluded, cores shared with the other runs).",
            "",
            table(["to 90% of final"] + [f"seed {s}" for s in seeds], time_rows),
        ]
    out += ["", source_line(name, path, data, commits=meta.get("run_commits"))]
    if meta.get("curves_png"):
        png = path.parent / meta["curves_png"]
        if png.is_file():
            out += ["", page.image(png, f"Learning curves of {name}"), ""]
    speed = data.get("speed")
    if speed:
        out += ["", "**Training speed** (gradient steps per second, one invocation, interleaved):", ""]
        out += [render_speed_table(speed.get("results", {}), speed.get("peers", {}))]
        out += ["", source_line(name, path, data, machine=speed.get("machine"))]
    latency = data.get("latency") or {}
    batches = [key for key in latency if key.startswith("batch=")]
    if batches:
        rows = []
        for key in batches:
            cell = latency[key]
            for start in ("deterministic", "stochastic"):
                rows.append(
                    [key.removeprefix("batch="), start, f"{number(cell.get('mlp_us'), 0)} us"]
                    + [f"{number(cell.get(f'K={k}_{start}_us'), 0)} us" for k in (1, 2, 5)]
                    + [f"{number(cell.get(f'K=2_{start}_vs_mlp'), 2)}x"]
                )
        out += [
            "",
            "**Action latency** of the actor network (median per call, one sample per state, no candidates; "
            "deterministic starts from a_T = 0, stochastic draws a_T):",
            "",
            table(["batch", "start", "plain MLP", "K=1", "K=2", "K=5", "K=2 / MLP"], rows),
        ]
        if not latency.get("predict"):
            out += ["", source_line(name, path, data, machine=latency.get("machine"))]
    predict = latency.get("predict")
    if predict:
        out += [
            "",
            "**`GTPAgent.predict` on one observation** (normalisation, N candidates of K map steps, the critic's "
            "choice; N = 50, K = 5 is the default), median microseconds per call:",
            "",
            table(
                [k.removesuffix("_us").replace("mlp", "plain MLP forward") for k in predict],
                [[number(v, 0) for v in predict.values()]],
            ),
            "",
            source_line(name, path, data, machine=latency.get("machine")),
        ]
    return "\n".join(out)


def render_speed_table(results: dict, peers: dict | None = None) -> str:
    """Rows of ``{mode: {steps_per_second, us_per_step, ratio_to_td3bc_same_mode, first_step_seconds}}``."""
    rows = [
        [
            mode,
            number(entry.get("steps_per_second")),
            number(entry.get("us_per_step", float("nan")) / 1000, 2),
            number(entry.get("ratio_to_td3bc_same_mode"), 2),
            number(entry.get("first_step_seconds"), 1),
        ]
        for mode, entry in results.items()
    ]
    for key, entry in (peers or {}).items():
        peer_labels = {"iql": "d3rlpy IQL", "td3+bc": "d3rlpy TD3+BC"}
        label = entry.get("label") if isinstance(entry, dict) and entry.get("label") else peer_labels.get(key, key)
        sps = entry.get("steps_per_second") if isinstance(entry, dict) else entry
        rows.append([f"{label} (short run)", number(sps), number(1000 / sps, 2) if sps else "-", "-", "-"])
    return table(["method and mode", "steps/s", "ms/step", "ratio to TD3+BC (same mode)", "first step s"], rows)


def render_speed(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_speed*.json``: GTP, GTP-BC and a TD3+BC step of the same sizes, per execution mode."""
    meta = data.get("meta", {})
    flops = meta.get("matmul_gflop_per_step", {})
    out = [
        f"Device {meta.get('device')}, {meta.get('threads')} torch thread(s), batch {meta.get('batch_size')}, "
        f"{meta.get('critic_ensemble', 1)} critic(s). Counted matrix-product work per step: GTP "
        f"{number(flops.get('GTP'), 3)} GFLOP, TD3+BC {number(flops.get('TD3+BC'), 3)} GFLOP.",
        "",
        render_speed_table(data.get("results", {}), data.get("peers_steps_per_second")),
    ]
    learn = data.get("learn_steps_per_second") or {}
    if learn:
        out += [
            "",
            "Through `learn` (the whole loop): "
            + ", ".join(f"{k} {number(v)} steps/s" for k, v in learn.items())
            + ".",
        ]
    out += ["", source_line(name, path, data)]
    return "\n".join(out)


def render_agent_speed(name: str, data: dict, path: Path, page: Page) -> str:
    """``agent_speed.json``: GTP, FQL, DeFlow and TD3+BC steps/s with counted work, and ``predict`` latency."""
    meta, results, latency = data.get("meta", {}), data.get("results", {}), data.get("latency", {})
    rows = [
        [
            method,
            number(r.get("steps_per_second")),
            number(r.get("us_per_step"), 0),
            number(r.get("gflop_per_step"), 3),
            number(r.get("gflop_per_second")),
            f"{number(r.get('ratio_to_td3bc'), 2)}x",
        ]
        for method, r in results.items()
    ]
    latency_rows = [
        [method, f"{number(r.get('us'), 0)} us", f"{number(r.get('speedup_vs_gtp_default'), 1)}x"]
        for method, r in latency.items()
    ]
    out = [
        f"Device {meta.get('device')}, {meta.get('threads')} torch thread(s), batch {meta.get('batch_size')}, "
        f"GTP with {meta.get('critic_ensemble')} critic(s), FQL and DeFlow with {meta.get('flow_steps')} flow steps.",
        "",
        table(["method", "steps/s", "us/step", "GFLOP/step (counted)", "GFLOP/s", "speed vs TD3+BC"], rows),
        "",
        "`predict` on one observation (median per call):",
        "",
        table(["policy", "latency", "faster than GTP's default"], latency_rows),
        "",
        source_line(name, path, data),
    ]
    return "\n".join(out)


def render_offline_to_online(name: str, data: dict, path: Path, page: Page) -> str:
    """``offline_to_online_*.json``: hand-over and final scores of the online and offline-only arms, per seed."""
    meta, summary = data.get("meta", {}), data.get("summary", {})
    rows = []
    for arm, entry in summary.items():
        for seed, start, final, gain in zip(entry["seeds"], entry["handover"], entry["final"], entry["gain"]):
            rows.append([arm, seed, number(start), number(final), number(gain, 1, True)])
    out = [
        f"Agent {meta.get('agent')} on `{meta.get('dataset')}`: {meta.get('offline_steps')} offline gradient steps, "
        f"then {meta.get('online_steps')} more steps per arm (online: env steps, each followed by a gradient step "
        f"on the dataset and the online transitions; offline: gradient steps on the dataset alone). Final = mean of "
        f"the last {meta.get('last')} evaluations ({meta.get('episodes')} episodes each, every "
        f"{meta.get('eval_every')} steps).",
        "",
        table(["arm", "seed", "hand-over score", "final score", "gain"], rows),
        "",
        source_line(name, path, data, commits=meta.get("run_commits")),
    ]
    return "\n".join(out)


def render_paired(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_compare_runs`` output: two arms seed by seed (score K = 5, K = 2 fitted, worst of the last 5, best)."""
    labels, stats = data.get("labels", {}), data.get("statistics", {})
    lines = []
    for key, title in (("score_k5", "K = 5"), ("score_k2_fitted", "K = 2 fitted")):
        s = stats.get(key)
        if not s:
            continue
        arms = "; ".join(
            f"{labels.get(arm, arm)}: median {number(s[arm]['median'])}, mean {number(s[arm]['mean'])}, "
            f"std {number(s[arm]['std'])}"
            for arm in ("baseline", "variant")
        )
        lines.append(
            f"- {title}, seeds {s.get('seeds')}: {arms}. Paired difference ({labels.get('variant')} - "
            f"{labels.get('baseline')}): mean {number(s.get('difference_mean'), 1, True)}, from "
            f"{number(s.get('difference_min'), 1, True)} to {number(s.get('difference_max'), 1, True)}."
        )
    rows = []
    for seed in data.get("seeds", []):
        for arm in ("baseline", "variant"):
            entry = data.get("arms", {}).get(arm, {}).get(str(seed), {})
            rows.append(
                [
                    seed,
                    labels.get(arm, arm),
                    number(entry.get("score_k5")),
                    number(entry.get("score_k2_fitted")),
                    number(entry.get("worst_last5_k5")),
                    f"{number(entry.get('best_k5'))} ({(entry.get('best_k5_step') or 0) // 1000}k)",
                    number(entry.get("wall_hours"), 2),
                ]
            )
    metas = data.get("meta", {})
    commits = [m["machine"]["commit"] for m in metas.values() if isinstance(m, dict) and m.get("machine")]
    machine = next((m["machine"] for m in metas.values() if isinstance(m, dict) and m.get("machine")), None)
    return "\n".join(
        [
            "Score = mean D4RL score of the last 5 evaluations (10 episodes each); a same-seed pair shares the "
            "evaluation resets.",
            "",
            *lines,
            "",
            table(
                ["seed", "arm", "score K=5", "score K=2 fitted", "worst of last 5 (K=5)", "best evaluation", "wall h"],
                rows,
            ),
            "",
            source_line(name, path, data, machine=machine, commits=commits),
        ]
    )


def render_candidate_count(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_candidate_count.json``: score against N, the samples the critic chooses from."""
    meta = data.get("meta", {})
    counts = [str(c) for c in meta.get("counts", [])]
    rows = [
        [checkpoint_label(ckpt)] + [number(scores.get(c)) for c in counts] for ckpt, scores in data["results"].items()
    ]
    return "\n".join(
        [
            f"D4RL score, {meta.get('episodes')} episodes per cell, K = {meta.get('sampling_steps')}; N = 1 is one "
            "sample per action (no critic's choice).",
            "",
            table(["checkpoint"] + [f"N={c}" for c in counts], rows),
            "",
            source_line(name, path, data),
        ]
    )


def render_critic_swap(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_critic_swap.json``: every actor acting with every critic's choice."""
    meta, scores = data.get("meta", {}), data["results"]["scores"]
    critics = [c for c in next(iter(scores.values())) if c != "pooled"]
    alone = data["results"].get("actor_alone") or {}
    header = ["actor \\ critic"] + [checkpoint_label(c) for c in critics] + ["pooled"]
    if alone:
        header.append("actor alone")
    rows = []
    for actor, row in scores.items():
        cells = [checkpoint_label(actor)] + [number(row.get(c)) for c in critics] + [number(row.get("pooled"))]
        if alone:
            cells.append(number(alone.get(actor)))
        rows.append(cells)
    return "\n".join(
        [
            f"D4RL score, {meta.get('episodes')} episodes per cell, K = {meta.get('sampling_steps')}: the row's actor "
            "acting with the best of N samples by the column's critic; pooled: ranked by the mean over all critics.",
            "",
            table(header, rows),
            "",
            source_line(name, path, data),
        ]
    )


def render_loss_balance(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_loss_balance*.json``: the consistency loss's gradient against the flow loss's, per grid resolution."""
    rows = []
    for ckpt, entry in data["results"].items():
        for points, cell in entry.get("by_points", {}).items():
            grad, lag_free = cell.get("consistency_grad_norm"), cell.get("lag_free_consistency_grad_norm")
            lag_share = 1 - lag_free / grad if grad and lag_free is not None else None
            rows.append(
                [
                    checkpoint_label(ckpt),
                    entry.get("steps"),
                    entry.get("schedule_max_steps"),
                    points,
                    number(grad, 3),
                    number(cell.get("flow_grad_norm"), 3),
                    number(cell.get("ratio"), 3),
                    number(lag_free, 3),
                    "-" if lag_share is None else f"{100 * lag_share:.0f}%",
                ]
            )
    return "\n".join(
        [
            "Gradients with respect to the actor's parameters; `ratio` = |grad L_cons| / |grad L_flow|. The last two "
            "columns use a frozen copy of the student as the consistency teacher instead of the EMA actor: the "
            "consistency signal without the EMA lag, and (computed here from the two norms) the share of "
            "|grad L_cons| that the lag accounts for, 1 - lag-free / with EMA.",
            "",
            table(
                [
                    "checkpoint",
                    "trained steps",
                    "trained s1",
                    "grid levels",
                    "|grad L_cons|",
                    "|grad L_flow|",
                    "ratio",
                    "lag-free |grad L_cons|",
                    "lag's share",
                ],
                rows,
            ),
            "",
            source_line(name, path, data),
        ]
    )


def render_fitted_k2(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_fitted_k2*.json``: K = 2 at Karras' middle time against the fitted one, and K = 5."""
    meta = data.get("meta", {})
    mids = [str(m) for m in meta.get("mids", [])]
    rows = []
    for ckpt, entry in data["results"].items():
        scores, distances = entry.get("scores", {}), entry.get("distances", {})
        rows.append(
            [checkpoint_label(ckpt), number(entry.get("fitted_t_mid"), 3)]
            + [number(scores.get(m)) for m in mids]
            + [number(scores.get("fitted")), number(scores.get("K=5"))]
            + [number(distances.get(m), 3) for m in mids]
            + [number(distances.get("fitted"), 3)]
        )
    header = (
        ["checkpoint", "fitted t_mid"]
        + [f"K=2 at t_mid {m}" for m in mids]
        + ["K=2 fitted", "K=5"]
        + [f"distance at {m}" for m in mids]
        + ["distance fitted"]
    )
    return "\n".join(
        [
            f"D4RL score, {meta.get('episodes')} fresh episodes per cell, acting as `predict(deterministic=True)`; "
            "distance: RMS distance (action units) of the K = 2 plan's actions to the finest trained path, the "
            "quantity the fit minimises (offline, on dataset states).",
            "",
            table(header, rows),
            "",
            source_line(name, path, data),
        ]
    )


def render_refiner_tables(name: str, data: dict, path: Path, page: Page) -> str:
    """``refiner_tables.json``: the CTF paper's Tables 1-3 (methods, k, strength) with the closed-loop truth."""
    header = [
        "",
        "proxy gain",
        "realised gain (replayed)",
        "windows improved",
        "refined fell",
        "action dev",
        "latent dev",
        "dynamics error",
    ]
    titles = {
        "table1": "**Table 1**: the method against the paper's baselines (alpha = 1)",
        "table2": "**Table 2**: neighbourhood size k",
        "table3": "**Table 3**: strength alpha",
        "table3_advantage": "**Table 3b**: strength alpha with advantage feedback",
    }
    out = [
        f"Dataset `{data.get('dataset')}`, H = {data.get('window')}, fit seed {data.get('seed')}, "
        f"{data.get('eval_windows')} held-out windows (gains: mean ± standard error over windows; deviations and "
        "dynamics error: means). Proxy: the learned "
        "return predictor's gain (what the paper reports); realised: the refined actions replayed open loop in "
        "MuJoCo from each window's recorded start state.",
    ]
    for key, title in titles.items():
        rows = [
            [
                label,
                mean_se(row.get("proxy_gain"), 3, True),
                mean_se(row.get("realized_gain"), 3, True),
                number(row.get("realized_gain_positive_fraction"), 3),
                number(row.get("refined_terminated_fraction"), 3),
                number((row.get("action_deviation") or {}).get("mean"), 3),
                number((row.get("latent_deviation") or {}).get("mean"), 3),
                number((row.get("dynamics_error") or {}).get("mean"), 3),
            ]
            for label, row in data.get(key, {}).items()
        ]
        if rows:
            out += ["", title, "", table(header, rows)]
    cost = data.get("cost")
    if cost:
        pairs = ", ".join(f"{n} windows {number(t, 2)} s" for n, t in cost.get("pair_construction_seconds", {}).items())
        out += [
            "",
            f"**Cost**: fit {number(cost.get('fit_seconds'), 0)} s; refining "
            f"{number(cost.get('refine_windows_per_second_batch_1024'), 0)} windows/s at batch 1024, "
            f"{number(cost.get('refine_latency_ms_batch_1_median'), 2)} ms for one window; exact pair search: {pairs}.",
        ]
    out += ["", source_line(name, path, data)]
    return "\n".join(out)


def render_levers(name: str, data: dict, path: Path, page: Page) -> str:
    """``refiner_levers.json``: feedback x execution x strength over fit seeds (realised gain per window)."""
    meta, runs = data.get("meta", {}), data.get("runs", [])
    keys = list(runs[0]["rows"]) if runs else []
    rows = []
    for key in keys:
        feedback, execution, strength = key.split("|")
        cells = [run["rows"][key] for run in runs if key in run["rows"]]
        gains = [c["realized_gain"]["mean"] for c in cells]
        score = [c["realized_score_gain"]["mean"] for c in cells if c.get("realized_score_gain")]
        proxy = [c["proxy_gain"]["mean"] for c in cells if c.get("proxy_gain")]
        rows.append(
            [
                feedback,
                execution,
                strength,
                f"{number(mean(gains), 3, True)} ± {number(standard_error(gains), 3)}",
                f"{sum(g > 0 for g in gains)}/{len(gains)}",
                f"{number(mean(score), 3, True)} ± {number(standard_error(score), 3)}" if score else "-",
                number(mean(proxy), 3, True) if proxy else "-",
                number(mean([c["realized_gain_positive_fraction"] for c in cells]), 2),
                " ".join(number(g, 2, True) for g in gains),
            ]
        )
    return "\n".join(
        [
            f"Dataset `{meta.get('dataset')}`, fit seeds {meta.get('seeds')}, {meta.get('eval_windows')} held-out "
            f"windows per seed, {'a tiny trial budget' if meta.get('quick') else 'package default budget'}. Gains "
            "per 16-step window; the ± is the standard error of the "
            "per-seed means (over seeds, not windows; computed here from the per-seed numbers). Score gain: window "
            "return + gamma^H V_eval(end state), V_eval a dataset value function of another seed. `gaussian`: "
            "GaussianPerturbation (sigma 0.1 x alpha), open loop.",
            "",
            table(
                [
                    "feedback",
                    "execution",
                    "alpha",
                    "realised gain (± se over seeds)",
                    "seeds > 0",
                    "score gain",
                    "proxy gain",
                    "windows improved",
                    "per seed",
                ],
                rows,
            ),
            "",
            source_line(name, path, data),
        ]
    )


REFINER_LABELS = {  # basenames of the temporary refiner folders the policy tables record -> what they were
    "refiner_boot_seed0": "bootstrapped_advantage, fit seed 0",
    "refiner_boot_seed1": "bootstrapped_advantage, fit seed 1",
    "refiner_boot_seed2": "bootstrapped_advantage, fit seed 2",
    "refiner_return_seed1": "return feedback, fit seed 1",
    "refiner_return_seed2": "return feedback, fit seed 2",
    "ensemble_boot": "ensemble of bootstrapped fits 0-2, rotate",
    "ens_bootB": "ensemble of bootstrapped fits 3-5, rotate",
    "ens_boot_mean_g0": "ensemble of fits 0-2, mean",
    "ens_boot_mean_g80": "ensemble of fits 0-2, mean, agreement gate 0.8",
    "ens_bootB_mean_g80": "ensemble of fits 3-5, mean, agreement gate 0.8",
    "selected_medium": "the fit kept by select_refiners (of six)",
    "member_0": "bootstrapped_advantage, fit seed 3 (ensemble B member 0)",
    "member_1": "bootstrapped_advantage, fit seed 4 (ensemble B member 1)",
    "member_2": "bootstrapped_advantage, fit seed 5 (ensemble B member 2)",
}


def refiner_label(recorded: str | None) -> str:
    """A readable name for a refiner the policy tables record by its (temporary) folder."""
    if not recorded:
        return "-"
    return REFINER_LABELS.get(Path(recorded).name, recorded)


def policy_rows(results: dict) -> list[list[str]]:
    """Rows of a refined-policy table: return, paired difference with the policy alone, falls, budget."""
    rows = []
    for label, entry in results.items():
        s = entry.get("summary", {})
        episodes = len(entry.get("episodes", []))
        better = s.get("episodes_better")
        rows.append(
            [
                label,
                mean_se(s.get("return")),
                mean_se(s.get("paired_difference"), 1, True) if label != "alone" else "-",
                percent(s.get("relative_change")) if label != "alone" else "-",
                f"{better}/{episodes}" if better is not None else "-",
                f"{s.get('falls')}/{episodes}" if s.get("falls") is not None else "-",
                number(s.get("windows_refined_fraction"), 2),
                number(s.get("simulator_steps_per_step"), 1),
                number(s.get("ms_per_step"), 2),
            ]
        )
    return rows


POLICY_HEADER = [
    "configuration",
    "return (mean ± se)",
    "paired diff vs alone",
    "change",
    "episodes better",
    "falls",
    "windows refined",
    "sim steps / step",
    "ms / step",
]


def run_label(meta: dict) -> str:
    """The refiner of a policy run and the settings that differ from the usual ones (strength 1, no noise)."""
    label = refiner_label(meta.get("refiner"))
    if meta.get("strength") not in (None, 1.0):
        label += f", strength {meta['strength']}"
    if meta.get("noise"):
        label += f", latent noise {meta['noise']}"
    if meta.get("random_gate"):
        label += f", each window refined with probability {meta['random_gate']} (random gate)"
    return label


def describe_policy_run(meta: dict) -> str:
    value = {"dataset": "a DatasetValueFunction fitted on the shipped data", "critic": "the policy's own SAC critic"}
    return (
        f"Policy `{meta.get('policy')}`; refiner: {run_label(meta)}; {meta.get('episodes')} paired episodes (reset "
        f"seeds {meta.get('seed0')}..); strength {meta.get('strength')} (candidates: a ladder up to it); "
        f"verification value function: {value.get(meta.get('value'), meta.get('value'))}."
    )


def render_refined_policy(name: str, data: dict, path: Path, page: Page) -> str:
    """One ``refined_policy_*.json``: a refiner after a shipped policy, every configuration it ran."""
    return "\n".join(
        [
            describe_policy_run(data.get("meta", {})),
            "",
            table(POLICY_HEADER, policy_rows(data.get("results", {}))),
            "",
            source_line(name, path, data),
        ]
    )


OVERVIEW_COLUMNS = (
    ("refiner, unverified", "unverified"),
    ("refiner, 4 verified", "4 verified"),
    ("refiner, 4 verified +48 steps", "4 verified +48 steps"),
    ("gaussian, 4 verified +48 steps", "Gaussian, 4 verified +48 steps"),
)


def render_refined_policy_overview(name: str, data: dict, path: Path, page: Page) -> str:
    """Every ``refined_policy_*.json`` in one table (``name`` is the glob prefix), then each in full, folded."""
    files = sorted(path.glob(f"{name}*.json"))
    rows, details = [], []
    for file in files:
        result = json.loads(file.read_text())
        meta, results = result.get("meta", {}), result.get("results", {})
        alone = results.get("alone", {}).get("summary", {}).get("return", {})

        def change(key: str) -> str:
            s = results.get(key, {}).get("summary")
            return (
                f"{percent(s.get('relative_change'))}<br>{s.get('episodes_better')}/{len(results[key]['episodes'])}"
                if s
                else ""
            )

        short = file.stem.removeprefix(f"{name}_")
        refiner = run_label(meta)
        rows.append(
            [
                f"`{short}`<br>{meta.get('policy')} policy; {refiner}; value fn: {meta.get('value')}",
                number(alone.get("mean")),
            ]
            + [change(key) for key, _ in OVERVIEW_COLUMNS]
        )
        body = "\n".join(
            [
                describe_policy_run(meta),
                "",
                table(POLICY_HEADER, policy_rows(results)),
                "",
                source_line(file.stem, file, result),
            ]
        )
        title = f"{short}: {meta.get('policy')} policy, {refiner}, value {meta.get('value')}"
        details.append(
            f'??? note "{title}"\n\n' + "\n".join("    " + line if line else "" for line in body.split("\n"))
        )
    header = ["run (file) and refiner", "policy alone"] + [c for _, c in OVERVIEW_COLUMNS]
    return "\n".join(
        [
            "Change of the mean episode return against the policy alone on the same (paired) episodes, with the "
            "number of episodes that did better; blank: not run in that file. The run `x` is the file "
            f"`{name}_x.json`; every file in full below.",
            "",
            table(header, rows),
            "",
            "\n\n".join(details),
        ]
    )


def render_selection(name: str, data: dict, path: Path, page: Page) -> str:
    """``refiner_selection_*.json``: each fit after the policy on validation episodes, and which were kept."""
    meta, base = data.get("meta", {}), data.get("base_returns", [])
    kept = set(data.get("kept", []))
    rows = []
    for refiner, v in zip(data.get("refiners", []), data.get("validations", [])):
        diffs = [r - b for r, b in zip(v["returns"], base)]
        rows.append(
            [
                refiner_label(refiner) if Path(refiner).name in REFINER_LABELS else checkpoint_label(refiner),
                f"{number(mean(diffs), 1, True)} ± {number(standard_error(diffs), 1)}",
                percent(mean(diffs) / mean(base)),
                f"{sum(d > 0 for d in diffs)}/{len(diffs)}",
                "kept" if refiner in kept else "-",
            ]
        )
    return "\n".join(
        [
            f"Policy `{meta.get('policy')}`, unverified, strength {meta.get('strength')}, {meta.get('episodes')} "
            f"validation episodes (reset seeds {meta.get('validation_seeds')}), paired with the policy alone (mean "
            f"return {number(mean(base))}); kept: a refiner whose mean return rose (paired statistics computed here "
            "from the recorded returns).",
            "",
            table(["refiner", "paired gain", "change", "episodes better", "selection"], rows),
            "",
            source_line(name, path, data),
        ]
    )


def render_closed_loop_policy(name: str, data: dict, path: Path, page: Page) -> str:
    """``closed_loop_policy.json``: the near-expert policy with and without refinement, verification rules."""
    rows_data = data.get("rows", {})
    base = rows_data.get("base policy", {}).get("returns", [])
    rows = []
    for label, row in rows_data.items():
        diffs = [r - b for r, b in zip(row.get("returns", []), base)]
        paired = (
            f"{number(mean(diffs), 1, True)} ± {number(standard_error(diffs), 1)}"
            if diffs and label != "base policy"
            else "-"
        )
        rows.append(
            [
                label,
                f"{number(row.get('mean'))} ± {number(row.get('se'))}",
                paired,
                number(row.get("normalized_score")),
                number(row.get("mean_length"), 0),
                row.get("terminated_episodes"),
                f"{row.get('windows_refined')}/{row.get('windows_planned')}",
                number(row.get("ms_per_step"), 2),
            ]
        )
    return "\n".join(
        [
            f"The shipped near-expert SAC policy, {data.get('episodes')} episodes (reset seeds 1000..), "
            + (
                f"refiner fitted on `{data['dataset']}` (default budget, seed {data.get('seed')})"
                if data.get("dataset")
                else f"refiner loaded from `{data.get('refiner')}`"
            )
            + "; paired differences computed here from the recorded returns.",
            "",
            table(
                [
                    "configuration",
                    "return (mean ± se)",
                    "paired diff vs base",
                    "D4RL score",
                    "mean length",
                    "fell",
                    "windows refined / planned",
                    "ms / env step",
                ],
                rows,
            ),
            "",
            source_line(name, path, data),
        ]
    )


def render_scale(name: str, data: dict, path: Path, page: Page) -> str:
    """``scale.json``: a fit on a million transitions, pair search at a million windows, workers."""
    out = []
    fit = data.get("fit")
    if fit:
        out += [
            f"**Refiner fit** on {fit['transitions']} transitions ({fit['episodes']} episodes, {fit['windows']} "
            f"windows, {fit['pairs']} pairs), package defaults: {number(fit['fit_seconds'], 0)} s, peak resident "
            f"memory {number(fit['peak_rss_mb'] / 1024, 2)} GiB.",
            "",
            table(
                ["stage", "seconds", "peak RSS at its end (MiB)"],
                [
                    [stage, number(seconds), number(fit.get("stage_peak_rss_mb", {}).get(stage), 0)]
                    for stage, seconds in fit.get("stage_seconds", {}).items()
                ],
            ),
        ]
    pairs = data.get("pairs")
    if pairs:
        subset, whole = pairs.get("subset", {}), pairs.get("all", {})
        rows = [
            [
                subset.get("windows"),
                f"exact ({index})" if index == "exact" else index,
                number(entry.get("seconds")),
                entry.get("pairs"),
                "1" if index == "exact" else number(subset.get("recall_at_k"), 4),
            ]
            for index, entry in subset.items()
            if isinstance(entry, dict)
        ]
        if whole:
            rows.append(
                [
                    pairs.get("windows"),
                    whole.get("index"),
                    number(whole.get("seconds")),
                    whole.get("pairs"),
                    f"{number(whole.get('recall_at_k_sampled'), 4)} (sampled queries)",
                ]
            )
        out += [
            "",
            f"**Pair search** (neighbour search + improvement rule), k = {pairs.get('k')}, "
            f"{pairs.get('latent_dim')}-d latents:",
            "",
            table(["windows", "index", "seconds", "pairs", "recall@k"], rows),
        ]
    gain = data.get("gain")
    if gain:
        rows = [
            [
                index,
                entry.get("train_windows"),
                entry.get("pairs"),
                number(entry.get("pair_seconds")),
                mean_se(entry.get("realized_gain"), 3, True),
                mean_se(entry.get("proxy_gain"), 3, True),
            ]
            for index, entry in gain.items()
            if isinstance(entry, dict)
        ]
        out += [
            "",
            "**Exact against approximate pairs**, shipped dataset, the same held-out windows, strength 1 (pairs "
            f"shared by both fits: {number(gain.get('shared_pair_fraction'), 4)} of the exact fit's):",
            "",
            table(
                ["pairs", "training windows", "pairs found", "pair seconds", "realised gain / window", "proxy gain"],
                rows,
            ),
        ]
    replay = data.get("replay")
    if replay:
        rows = []
        for mode in ("open_loop", "tracked"):
            one, two = replay.get(f"{mode}_workers1"), replay.get(f"{mode}_workers2")
            windows = replay.get(f"{mode}_windows")
            if one and two and windows:
                rows.append(
                    [
                        mode,
                        windows,
                        number(windows / one["seconds"], 0),
                        number(windows / two["seconds"], 0),
                        f"{number(one['seconds'] / two['seconds'], 2)}x",
                    ]
                )
        out += [
            "",
            "**Replays in worker processes** (windows per second; the same numbers either way):",
            "",
            table(["replay", "windows", "1 worker", "2 workers", "speed-up"], rows),
        ]
    build = data.get("build")
    if build:
        one, two = build.get("workers1", {}), build.get("workers2", {})
        same = one.get("first_actions_sum") == two.get("first_actions_sum")
        out += [
            "",
            f"**Dataset building** in worker processes: {build.get('steps')} medium-policy steps in "
            f"{build.get('shards')} shards, {number(one.get('seconds'), 0)} s with 1 worker, "
            f"{number(two.get('seconds'), 0)} s with 2; the datasets are "
            + ("identical (first episode's action sums agree)." if same else "NOT identical."),
        ]
    out += ["", source_line(name, path, data)]
    return "\n".join(out)


def render_datasets(name: str, data: dict, path: Path, page: Page) -> str:
    """``datasets*.json``: the recipe datasets beside D4RL's, and the shipped behaviour policies' own returns."""
    datasets = [
        [
            r["dataset_id"],
            f"{r['episodes']:,}",
            f"{r['steps']:,}",
            f"{number(r['return_min'])} / {number(r['return_mean'])} / {number(r['return_max'])}",
            number(r["score_mean"]),
            number(r.get("d4rl_score_mean")),
            "matches" if r["checksum_matches_recipe"] else "DIFFERS",
        ]
        for r in data.get("datasets", [])
    ]
    policies = [
        [r["policy"], r["env_id"]]
        + [
            f"{number(r[f'{mode}_return_mean'], 0)} ± {number(r[f'{mode}_return_std'], 0)} "
            f"({number(r[f'{mode}_score'])})"
            for mode in ("deterministic", "stochastic")
        ]
        for r in data.get("policies", [])
    ]
    return "\n".join(
        [
            "Scores are D4RL-normalised (PointMaze: success rate x 100); return ± standard deviation over episodes. "
            "D4RL's column is its v2 dataset's mean as offline RL papers quote it, not recomputed here; checksum: the "
            "built dataset's content against its recipe's.",
            "",
            table(
                ["dataset", "episodes", "steps", "return min / mean / max", "score (mean)", "D4RL v2", "checksum"],
                datasets,
            ),
            "",
            "The shipped behaviour policies, each acting alone:",
            "",
            table(["policy", "env", "deterministic return (score)", "stochastic return (score)"], policies),
            "",
            source_line(name, path, data),
        ]
    )


def render_improve_extract(name: str, data: dict, path: Path, page: Page) -> str:
    """``improve_extract.json``: BC on raw, filtered, FTB-generated and FTB-realised data; the stages behind them."""
    meta, improve, fit = data.get("meta", {}), data.get("improve", {}), data.get("fit", {})
    rows = [
        [
            r["learner"],
            r["transitions"],
            number(r["median"]),
            f"{number(r['min'])} .. {number(r['max'])}",
            len(r["scores"]),
        ]
        for r in data["rows"]
    ]
    realised = improve.get("realised", {})
    rounds = ", ".join(percent(r["accepted"]).lstrip("+") for r in improve.get("rounds", []))
    info = fit.get("fit_info", {})
    seconds = {**info.get("seconds", {}), **improve.get("seconds", {})}
    return "\n".join(
        [
            f"D4RL score of the extracted policy, {meta.get('episodes')} episodes per seed (reset seeds 1000..), "
            f"BC for {meta.get('bc_steps')} steps at batch {meta.get('bc_batch')}; dataset `{meta.get('dataset')}`.",
            "",
            table(["learner", "transitions", "median", "range", "seeds"], rows),
            "",
            f"FTB: windows of {meta.get('window')} steps, generator {meta.get('generator_steps')} steps; score model's "
            f"rank correlation with the window return {number(info.get('score_return_rank_correlation'), 3)}. "
            f"Iterative improvement from the top {meta.get('top_n')} windows: accepted per round {rounds}; "
            f"mean score {number(improve.get('start_mean_score'), 3)} -> {number(improve.get('pool_mean_score'), 3)}; "
            f"one-step dynamics error of the kept generated windows {number(improve.get('pool_dynamics_error'), 2)}. "
            f"Realised in MuJoCo: {realised.get('accepted')} of {realised.get('windows')} pool windows beat their "
            f"source (realised gain of the kept {number(realised.get('realised_gain_accepted'), 2, signed=True)}, "
            f"of all "
            f"{number(realised.get('realised_gain_all'), 2, signed=True)} window return). Seconds: "
            + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
            + ".",
            ""
            if "ctflow" not in improve
            else f"CTFlow (`TrajectoryRefiner`, defaults): {improve['ctflow']['accepted']} of "
            f"{improve['ctflow'].get('windows')} windows of 16 steps realised a gain (kept "
            f"{number(improve['ctflow'].get('realised_gain_accepted'), 2, signed=True)}, all "
            f"{number(improve['ctflow'].get('realised_gain_all'), 2, signed=True)}; by execution "
            f"{improve['ctflow'].get('executions')}).",
            "",
            source_line(name, path, data),
        ]
    )


RENDERERS: dict[str, Callable[[str, dict, Path, Page], str]] = {
    "peers": render_peers,
    "speed": render_speed,
    "agent_speed": render_agent_speed,
    "offline_to_online": render_offline_to_online,
    "paired": render_paired,
    "candidate-count": render_candidate_count,
    "critic-swap": render_critic_swap,
    "loss-balance": render_loss_balance,
    "fitted-k2": render_fitted_k2,
    "refiner-tables": render_refiner_tables,
    "levers": render_levers,
    "refined-policy": render_refined_policy,
    "refined-policy-overview": render_refined_policy_overview,
    "selection": render_selection,
    "closed-loop-policy": render_closed_loop_policy,
    "scale": render_scale,
    "datasets": render_datasets,
    "improve_extract": render_improve_extract,
}


# ---------------------------------------------------------------------------------------------------------------
# MkDocs events


def render_marker(kind: str, name: str, where: str, page: Page) -> str:
    """The Markdown for one marker; ``PluginError`` naming ``where`` for an unknown kind or a missing file."""
    if kind not in RENDERERS:
        raise PluginError(f"{where}: unknown results renderer {kind!r} (known: {', '.join(sorted(RENDERERS))})")
    try:
        if kind == "refined-policy-overview":  # a family of files: name is their prefix
            path, data = find_family(name), {}
        else:
            data, path = load(name)
        return RENDERERS[kind](name, data, path, page)
    except FileNotFoundError as error:
        raise PluginError(f"{where}: results marker '{kind} {name}': {error}") from error
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise PluginError(f"{where}: results marker '{kind} {name}' cannot render: {error!r}") from error


def expand(markdown: str, where: str) -> tuple[str, dict[str, Path]]:
    """``markdown`` with every results marker replaced; also the plots it needs (name -> PNG path)."""
    page = Page()
    text = MARKER.sub(lambda m: render_marker(m["kind"], m["name"], where, page), markdown)
    return text, page.images


def on_files(files, config):
    """Add the analyses as pages and every committed results plot a page may show."""
    from mkdocs.structure.files import File

    for page_name, source in ANALYSES.items():
        path = find_result(source.removesuffix(".md"), ".md")
        note = (
            f'!!! info "Hand-written analysis"\n    Copied at build time from `{path.relative_to(ROOT)}`. '
            "The numbers it quotes come from the result files it names; their tables are on the other Results "
            "pages.\n\n"
        )
        text = path.read_text()
        first, _, rest = text.partition("\n")
        content = first + "\n\n" + note + rest if first.startswith("# ") else note + text
        files.append(File.generated(config, f"results/analyses/{page_name}.md", content=content))
    for png in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"{IMAGE_FOLDER}/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace the results markers of a page with the tables rendered from JSON."""
    if "<!-- results:" not in markdown:
        return markdown
    text, images = expand(markdown, page.file.src_uri)
    missing = [name for name in images if files.get_file_from_path(f"{IMAGE_FOLDER}/{name}") is None]
    if missing:
        raise PluginError(f"{page.file.src_uri}: plots outside benchmarks/results cannot be shown: {missing}")
    return text
