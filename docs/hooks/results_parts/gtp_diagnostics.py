"""Renderers of GTP's diagnostic studies: paired arms, candidate count, critic swap, loss balance, fitted K = 2."""

from __future__ import annotations

from pathlib import Path

from .formatting import Page, checkpoint_label, number, table
from .provenance import source_line


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
