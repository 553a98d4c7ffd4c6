"""Renderers of the refiner on held-out windows (the CTF paper's tables, its levers) and at scale."""

from __future__ import annotations

from pathlib import Path

from .formatting import Page, mean, mean_se, number, standard_error, table
from .provenance import source_line


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
