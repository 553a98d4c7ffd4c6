"""Renderers of GTP against its peers: scores over seeds, curves, speed, latency, offline to online, acting."""

from __future__ import annotations

from pathlib import Path

from .formatting import Page, number, table
from .provenance import first_machine, runs_machines_line, source_line


def render_peers(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_vs_peers*.json``: scores per method over seeds, curves, training speed and action latency."""
    meta, summary = data.get("meta", {}), data.get("summary", {})
    labels = {"gtp": "GTP", "gtp-bc": "GTP-BC", "fql": "FQL", "deflow": "DeFlow"}
    labels.update({"iql": "d3rlpy IQL", "td3+bc": "d3rlpy TD3+BC"})
    seeds = sorted({seed for entry in summary.values() for seed in entry.get("seeds", [])})
    rows, peak_rows, in_runs, time_rows, gtp_rows, gtp_target = [], [], [], [], [], None
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
            row = reached_cells(entry.get("seeds", []), entry["to_90_percent"], seeds, "")
            if "to_90_percent_median_minutes" in entry:  # files rendered before the median was computed have none
                row.append(minutes(entry["to_90_percent_median_minutes"]))
            time_rows.append([labels.get(method, method)] + row)
        if entry.get("to_gtp_score"):
            gtp_target = entry["to_gtp_score"]["target"]
            row = reached_cells(entry.get("seeds", []), entry["to_gtp_score"]["per_seed"], seeds, "never")
            gtp_rows.append([labels.get(method, method)] + row + [minutes(entry["to_gtp_score"].get("median_minutes"))])
    settings = [
        f"dataset `{meta.get('dataset')}` ({meta.get('transitions')} transitions)",
        f"{meta.get('steps')} gradient steps, batch {meta.get('batch_size')}",
        f"seeds {meta.get('seeds')}",
        f"{meta.get('episodes')} evaluation episodes"
        + (f" every {meta['eval_every']} steps" if meta.get("eval_every") else " at the end"),
    ]
    with_gtp = any(method.startswith("gtp") for method in summary) or not summary
    if with_gtp:
        settings.append(f"GTP acts with the best of N = {meta.get('action_candidates')} samples by its critic")
        if "schedule_max_steps" in meta:
            settings.append(f"schedule s1 = {meta['schedule_max_steps']}")
        if "critic_ensemble" in meta:
            settings.append(f"{meta['critic_ensemble']} critic(s)")
    if {"fql", "deflow"} & set(summary):
        sizes = {"gtp": "GTP's network sizes", "paper": "their papers' network sizes (4 x 512)"}
        settings.append(f"FQL and DeFlow with {sizes.get(meta.get('flow_networks'), meta.get('flow_networks'))}")
        if "fql" in summary:
            settings.append(f"FQL's alpha = {meta.get('fql_alpha')}")
        if "deflow" in summary:
            delta = meta.get("deflow_delta")
            settings.append(f"DeFlow's delta = {delta if delta is not None else 'derived from the IAV'}")
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
    noise_rows = []
    for method, entry in summary.items():
        for label, scores in entry.get("final_by_noise", {}).items():
            per_seed = dict(zip(entry.get("seeds", []), scores.get("per_seed", [])))
            noise_rows.append(
                [labels.get(method, method), label, number(scores.get("median"))]
                + [number(per_seed[s]) if s in per_seed else "" for s in seeds]
            )
    if noise_rows:
        out += [
            "",
            "The final agents evaluated both ways on the same reset seeds: with the policy's noise z = 0 "
            "(`predict`'s reproducible default, the curves above) and with z sampled, as the official FQL and "
            "DeFlow code always evaluates.",
            "",
            table(["final agent", "noise", "median"] + [f"seed {s}" for s in seeds], noise_rows),
        ]
    with_median = any("to_90_percent_median_minutes" in entry for entry in summary.values())
    if time_rows and any(any(cell for cell in row[1:]) for row in time_rows):
        out += [
            "",
            "When each seed's evaluation first held 90% of its final score: the step and, where recorded, the "
            "minutes of training before it (one torch thread, evaluations excluded, cores shared with the other runs).",
            "",
            table(["to 90% of final"] + [f"seed {s}" for s in seeds] + ["median"] * with_median, time_rows),
        ]
    if gtp_rows and len(gtp_rows) > 1:
        out += [
            "",
            f"When each seed's evaluation first reached GTP's median final score ({number(gtp_target)}): the step "
            'and the minutes of training before it ("never": not within the budget; it counts as later than any '
            "time in the median).",
            "",
            table([f"to {number(gtp_target)}"] + [f"seed {s}" for s in seeds] + ["median"], gtp_rows),
        ]
    out += ["", source_line(name, path, data, commits=meta.get("run_commits"))]
    where = runs_machines_line(data.get("runs", []), labels, first_machine(data))
    out += ["", where] if where else []
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
    batches = [key for key in latency if key.startswith("batch=")] if with_gtp else []  # GTP's actor's latency
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
    predict = latency.get("predict") if with_gtp else None
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


def minutes(value: float | None) -> str:
    """A median of minutes for a table cell ("" when there is none)."""
    return f"{number(value)} min" if value is not None else ""


def reached_cells(run_seeds: list[int], reached: list[dict], seeds: list[int], missing: str) -> list[str]:
    """One cell per seed of ``seeds``: "20k (8.8 min)" for a ``time_to_reach`` result, ``missing`` where its step is
    ``None``, "" for a seed without a run."""
    cells = dict.fromkeys(seeds, "")
    for seed, point in zip(run_seeds, reached):
        if point.get("step") is None:
            cells[seed] = missing
            continue
        seconds = point.get("training_seconds")
        cells[seed] = f"{point['step'] // 1000}k" + (f" ({number(seconds / 60)} min)" if seconds else "")
    return list(cells.values())


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
    curves = {(r["arm"], r["seed"]): r.get("curve", []) for r in data.get("runs", [])}
    rows = []
    for arm, entry in summary.items():
        for seed, start, final, gain in zip(entry["seeds"], entry["handover"], entry["final"], entry["gain"]):
            evaluations = ", ".join(number(point["score"]) for point in curves.get((arm, seed), []))
            rows.append([arm, seed, number(start), evaluations, number(final), number(gain, 1, True)])
    out = [
        f"Agent {meta.get('agent')} on `{meta.get('dataset')}`: {meta.get('offline_steps')} offline gradient steps, "
        f"then {meta.get('online_steps')} more steps per arm (online: env steps, each followed by a gradient step "
        f"on the dataset and the online transitions; offline: gradient steps on the dataset alone). Final = mean of "
        f"the last {meta.get('last')} evaluations ({meta.get('episodes')} episodes each, every "
        f"{meta.get('eval_every')} steps).",
        "",
        table(["arm", "seed", "hand-over score", "evaluations after it", "final score", "gain"], rows),
        "",
        source_line(name, path, data, commits=meta.get("run_commits")),
    ]
    return "\n".join(out)


def render_gtp_acting(name: str, data: dict, path: Path, page: Page) -> str:
    """``gtp_acting_*.json``: GTP's checkpoints scored with N candidates and K steps, per seed and median."""
    meta, summary = data.get("meta", {}), data.get("summary", {})
    cells = list(summary)
    seeds = next(iter(summary.values()), {}).get("seeds", [])
    rows = [[f"seed {seed}"] + [number(summary[key]["per_seed"][i]) for key in cells] for i, seed in enumerate(seeds)]
    rows.append(["median"] + [number(summary[key]["median"]) for key in cells])
    steps = ", ".join(str(step) for step in meta.get("steps", []))
    out = [
        f"GTP's checkpoints at step {steps} on `{meta.get('dataset')}`, each cell {meta.get('episodes')} episodes "
        "(the same start states in every cell of a seed); N = 1 is the policy alone, N > 1 the best of N samples "
        "by the critic; K = 2 at the agent's fitted stop."
        + (
            " beta > 0: candidates ranked by the critics' mean less beta times their spread (`candidate_pessimism`)."
            if any("beta=" in key for key in cells)
            else ""
        ),
        "",
        table(["checkpoint"] + [key.replace(" ", ", ") for key in cells], rows),
        "",
        source_line(name, path, data, commits=meta.get("run_commits")),
    ]
    return "\n".join(out)
