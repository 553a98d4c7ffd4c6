"""The Results-page rendering of ``distillation_*.json`` (``benchmarks/distillation.py``)."""

from __future__ import annotations

import statistics
from pathlib import Path

from .formatting import Page, number, table
from .provenance import source_line

EXPERTS = {
    "refined": "distilled from the verified refined policy",
    "policy": "distilled from the policy itself (plain DAgger, the control)",
    "unverified": "distilled from the refined policy unverified (strength 1, no replay)",
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

    for kind, seeds in data.get("distilled", {}).items():
        for number_ in range(max(len(run["per_round"]) for run in seeds)):
            learners = [run["per_round"][number_]["learner"] for run in seeds if number_ < len(run["per_round"])]
            learners = [learner for learner in learners if learner]
            if learners:
                rows.append(over_seeds(f"{EXPERTS.get(kind, kind)}, round {number_}", learners))
    if data.get("matched"):  # the verified teacher's windows at the unverified teacher's size
        label = f"{EXPERTS['refined']}, all rounds thinned to the unverified one's transitions"
        rows.append(over_seeds(label, data["matched"]))
    png = path.parent / meta["curves_png"] if meta.get("curves_png") else None
    curves = ["", page.image(png, f"Distillation round by round, {name}"), ""] if png and png.is_file() else []
    refined = [r for run in data.get("distilled", {}).get("refined", []) for r in run["per_round"]]
    chosen = sum(r["refined_windows"] for r in refined)
    windows = sum(r["windows"] for r in refined)
    return "\n".join(
        [
            f"Mean return over {meta.get('episodes')} episodes (reset seeds 1000..) of each policy (the teacher: "
            f"{meta.get('teacher_episodes')}); the teacher verifies {meta.get('candidates')} refined windows per "
            f"window (strengths up to {meta.get('strength')}) against the policy's own, each scored by its return "
            f"and {meta.get('continuation')} policy steps after it; distillation: round 0 BC on the teacher's "
            f"rollouts, then {meta.get('rounds')} DAgger rounds of {meta.get('round_episodes')} episodes; BC "
            f"{meta.get('bc_steps')} steps at FTB's settings per round, seeds {meta.get('seeds')}; refiner fitted on "
            f"`{meta.get('dataset')}`.",
            "",
            table(["policy", "transitions", "median return", "range", "against the policy", "median score"], rows),
            "",
            f"The refined teacher chose a refined window in {chosen:,} of the {windows:,} windows it labelled.",
            *curves,
            "",
            source_line(name, path, data),
        ]
    )
