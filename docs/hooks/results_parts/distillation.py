"""The Results-page rendering of ``distillation_*.json`` (``benchmarks/distillation.py``)."""

from __future__ import annotations

import statistics
from pathlib import Path

from .formatting import Page, number, policy_label, table
from .provenance import source_line

EXPERTS = {
    "refined": "distilled from the verified refined policy",
    "policy": "distilled from the policy itself (plain DAgger, the control)",
    "unverified": "distilled from the refined policy unverified (strength 1, no replay)",
}

EQUAL_SIZE = {
    "matched": f"{EXPERTS['refined']}, all rounds thinned to the unverified one's transitions (evenly spaced windows)",
    "matched_steps": f"{EXPERTS['refined']}, thinned to the same size as evenly spaced single steps",
}

SPLIT = {
    "policy_windows": f"{EXPERTS['refined']}: only the windows where it kept the policy's plan",
    "refined_windows": f"{EXPERTS['refined']}: only its refined windows",
}


def render_distillation(name: str, data: dict, path: Path, page: Page) -> str:
    """The policy, its verified refined version (the teacher), and BC distilled from each expert, round by round."""
    meta, policy, teacher = data.get("meta", {}), data["policy"], data["teacher"]

    def alone(label: str, run: dict, episodes) -> list:
        return [label, "-", f"{number(run['mean_return'], 0)} ± {number(run['std_return'], 0)}", "-",
                f"{run['falls']} of {episodes} episodes fall", number(run["score"])]  # fmt: skip

    episodes = meta.get("teacher_episodes")
    rows = [alone("the policy itself (deterministic)", policy, meta.get("episodes"))]
    if "policy_teacher_episodes" in data:  # the policy on the teacher's episodes (its first ones): paired
        rows.append(alone("the policy itself, on the teacher's episodes", data["policy_teacher_episodes"], episodes))
    rows.append(alone("the teacher: the refined policy, verified (refiner and MuJoCo at run time)", teacher, episodes))
    for horizon, run in data.get("teacher_horizons", {}).items():
        rows.append(alone(f"the teacher judging windows over {horizon} policy steps after them", run, episodes))
    if data.get("teacher_unverified"):
        unverified = data["teacher_unverified"]
        rows.append(alone("the refined policy unverified (strength 1, no replay)", unverified, episodes))

    def over_seeds(label: str, learners: list[dict]) -> list:
        returns = [learner["mean_return"] for learner in learners]
        return [
            label,
            f"{statistics.median(learner['transitions'] for learner in learners):,.0f}",
            number(statistics.median(returns), 0),
            f"{number(min(returns), 0)} .. {number(max(returns), 0)}",
            f"{sum(r > policy['mean_return'] for r in returns)} of {len(returns)} seeds above the policy",
            number(statistics.median(learner["score"] for learner in learners)),
        ]

    if data.get("policy_selected"):  # --select-every with --policy bc: the policy's BC selected like the learners
        label = "the policy's own BC, each seed's checkpoint best on validation"
        rows.append(over_seeds(label, data["policy_selected"]))
    for kind, seeds in data.get("distilled", {}).items():
        for number_ in range(max(len(run["per_round"]) for run in seeds)):
            learners = [run["per_round"][number_]["learner"] for run in seeds if number_ < len(run["per_round"])]
            learners = [learner for learner in learners if learner]
            if learners:
                rows.append(over_seeds(f"{EXPERTS.get(kind, kind)}, round {number_}", learners))
    for key, label in EQUAL_SIZE.items():  # the verified teacher's data at the unverified teacher's size
        if data.get(key):
            rows.append(over_seeds(label, data[key]))
    for part, label in SPLIT.items():  # --split-seeds: the verified teacher's windows by who chose them
        learners = [learner for learner in data.get("split", {}).get(part, []) if "mean_return" in learner]
        if learners:
            rows.append(over_seeds(label, learners))
    seeded = reseeded_table(data, policy["mean_return"])
    png = path.parent / meta["curves_png"] if meta.get("curves_png") else None
    curves = ["", page.image(png, f"Distillation round by round, {name}"), ""] if png and png.is_file() else []
    fit = data.get("fit") or {}
    if meta.get("refiner"):  # a refiner fitted elsewhere (distillation.py --refiner)
        refiner = f"refiner {fit.get('kind', 'fitted elsewhere')} (window {fit.get('window')}) from `{meta['refiner']}`"
    else:
        refiner = f"refiner fitted on `{meta.get('dataset')}`"
    if meta.get("policy") == "bc":  # logged data without a policy: BC on it is the policy
        refiner += f"; the policy: {policy_label(meta)}"
    replanning = ""
    if meta.get("replan_every"):  # --replan-every: Markov teachers
        replanning = (
            f" Every teacher (the unverified one too) plans again after {meta['replan_every']} steps and is recorded "
            "for those steps only (a receding horizon), where it otherwise executes and records whole windows."
        )
    if meta.get("select_every"):  # --select-every: every BC is its checkpoint best on validation episodes
        replanning += (
            " Every BC here but the policy itself (the first rows) is its checkpoint best on "
            f"{meta.get('select_episodes')} validation episodes (reset seeds {meta.get('select_seed')}..), "
            f"evaluated every {meta['select_every']} steps (`agents.KeepBest`); {selected_steps(data)}."
        )
    refined = [r for run in data.get("distilled", {}).get("refined", []) for r in run["per_round"]]
    chosen = sum(r["refined_windows"] for r in refined)
    windows = sum(r["windows"] for r in refined)
    return "\n".join(
        [
            f"Mean return over {meta.get('episodes')} episodes (reset seeds {meta.get('eval_seed', 1000)}..) of each "
            f"policy (the teacher: "
            f"{meta.get('teacher_episodes')}); the teacher verifies {meta.get('candidates')} refined windows per "
            f"window (strengths up to {meta.get('strength')}) against the policy's own, each scored by its return "
            f"and {meta.get('continuation')} policy steps after it; distillation: round 0 BC on the teacher's "
            f"rollouts, then {meta.get('rounds')} DAgger rounds of {meta.get('round_episodes')} episodes; BC "
            f"{meta.get('bc_steps')} steps at FTB's settings per round, seeds {meta.get('seeds')}; {refiner}."
            + replanning,
            "",
            table(["policy", "transitions", "median return", "range", "against the policy", "median score"], rows),
            "",
            *(
                [f"The refined teacher chose a refined window in {chosen:,} of the {windows:,} windows it labelled."]
                if windows
                else []
            ),
            *seeded,
            *curves,
            "",
            source_line(name, path, data),
        ]
    )


def selected_steps(data: dict) -> str:
    """Which steps the learners' selection kept: their median and range."""
    learners = [r["learner"] for runs in data.get("distilled", {}).values() for run in runs for r in run["per_round"]]
    learners += data.get("policy_selected", [])
    steps = [learner["selected_step"] for learner in learners if learner and learner.get("selected_step")]
    if not steps:
        return "no selected step recorded"
    return f"the steps kept: median {statistics.median(steps):,.0f}, {min(steps):,} .. {max(steps):,}"


def reseeded_table(data: dict, policy_return: float) -> list[str]:
    """Each expert's final learners over every (distillation seed, BC seed) pair, when ``--bc-seeds`` gave more
    BC seeds; beside each, how often one of its learners beats one of the unverified teacher's (all pairs)."""
    reseeded = data.get("reseeded") or {}
    if not reseeded:
        return []
    finals = {kind: [run["per_round"][-1]["learner"] for run in runs] for kind, runs in data["distilled"].items()}
    finals.update({key: list(data.get(key, [])) for key in EQUAL_SIZE})
    labels = {**EXPERTS, **EQUAL_SIZE}
    learners = {kind: finals.get(kind, []) + runs for kind, runs in reseeded.items()}
    returns = {kind: [r["mean_return"] for r in runs] for kind, runs in learners.items()}
    rows = []
    for kind, values in returns.items():
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
        against = "-"
        if kind != "unverified" and returns.get("unverified"):
            others = returns["unverified"]
            wins = sum((a > b) + 0.5 * (a == b) for a in values for b in others)
            against = f"{wins / (len(values) * len(others)):.0%}"
        rows.append([
            labels.get(kind, kind), str(len(values)), number(statistics.median(values), 0),
            f"{number(quartiles[0], 0)} .. {number(quartiles[2], 0)}",
            f"{number(min(values), 0)} .. {number(max(values), 0)}",
            f"{sum(v > policy_return for v in values)} of {len(values)}", against,
            number(statistics.median(r["score"] for r in learners[kind])),
        ])  # fmt: skip
    bc_seeds = sorted({run["bc_seed"] for runs in reseeded.values() for run in runs})
    header = ["final learner", "runs", "median return", "middle half", "range", "above the policy",
              "beats an unverified learner", "median score"]  # fmt: skip
    return [
        "",
        f"Every final dataset again with BC seeds {bc_seeds} beside its distillation's own: runs are distillation "
        "seeds x BC seeds. The last column: the share of all (this learner, unverified learner) pairs in which "
        "this one returns more (ties count half; 50% is a coin).",
        "",
        table(header, rows),
    ]
