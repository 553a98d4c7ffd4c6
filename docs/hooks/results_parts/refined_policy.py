"""Renderers of a refiner acting after a shipped policy: its configurations, fit selection, verification rules."""

from __future__ import annotations

import json
from pathlib import Path

from .formatting import Page, checkpoint_label, mean, mean_se, number, percent, policy_label, standard_error, table
from .provenance import source_line

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
    """The settings of a refined-policy run in a sentence: policy, refiner, episodes, strength, value."""
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


def render_receding_horizon(name: str, data: dict, path: Path, page: Page) -> str:
    """``receding_horizon_*.json``: the grid of executed steps m x strength per fit (validation episodes), then the
    selected and the fixed setting of each fit beside the policy on the test episodes."""
    meta, policy = data.get("meta", {}), data["policy"]
    seeds = [fit["seed"] for fit in data.get("fits", [])]
    cells: dict[tuple, dict[int, dict]] = {}
    for run in data.get("grid", []):
        cells.setdefault((run["replan_every"], run["strength"]), {})[run["refiner_seed"]] = run
    validation = policy["validation"]

    def score(run: dict | None) -> str:
        return "-" if run is None else f"{number(run['score'])} ({run['falls']})"

    grid_rows = [["the policy alone", "-", *[score(validation) for _ in seeds]]]
    for (m, alpha), by_seed in sorted(cells.items()):
        grid_rows.append([f"m = {m}", number(alpha, 2), *[score(by_seed.get(seed)) for seed in seeds]])
    test, test_policy = data.get("test", []), policy["test"]
    test_rows = [["the policy alone", "-", "-", score(test_policy), "-", "-"]]
    for run in test:
        test_rows.append([
            f"fit {run['refiner_seed']}, {run['which']}", str(run["replan_every"]), number(run["strength"], 2),
            score(run), number(run["score"] - test_policy["score"], 1, True), f"{run.get('simulator_steps', 0):,}",
        ])  # fmt: skip
    return "\n".join(
        [
            f"Policy: {policy_label(meta)}; CTFlow's refiner fitted on `{meta.get('dataset')}` (window "
            f"{meta.get('window')}, {meta.get('refiner_steps')} steps per part) with seeds {seeds}, attached "
            f"unverified: every m steps the policy's next {meta.get('window')} steps are looked ahead, refined at "
            f"strength alpha and their first m executed ({meta.get('execution', 'open_loop').replace('_', ' ')}). "
            f"D4RL score (falls) over {meta.get('select_episodes')} validation episodes (reset seeds 1000..), per fit:",
            "",
            table(["executed steps m", "strength", *[f"fit {seed}" for seed in seeds]], grid_rows),
            "",
            f"On {meta.get('episodes')} test episodes (reset seeds 5000.., none used to choose): per fit, the setting "
            f"best on its validation episodes (selected) and m = {int(meta.get('fixed', [0, 0])[0])}, alpha = "
            f"{meta.get('fixed', [0, 0])[1]} for every fit (fixed); the change in score from the policy's on the same "
            "episodes, and the simulator steps of the look-aheads (the policy's own episodes take none).",
            "",
            table(["run", "m", "strength", "score (falls)", "change", "look-ahead steps"], test_rows),
            "",
            source_line(name, path, data),
        ]
    )
