"""Renderers of the datasets: the recipe datasets beside D4RL's, and improving data before extracting a policy."""

from __future__ import annotations

import statistics
from pathlib import Path

from .formatting import Page, number, percent, table
from .provenance import source_line


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
            f"BC for {meta.get('bc_steps')} steps at batch {meta.get('bc_batch')}; dataset `{meta.get('dataset')}`."
            + (
                f" Every BC is its checkpoint best on {meta['select_episodes']} validation episodes (reset seeds "
                f"{meta['select_seed']}..), judged every {meta['select_every']} steps (`agents.KeepBest`)."
                if meta.get("select_every")
                else ""
            ),
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
            *[_episode_stage(meta, improve[key]) for key in sorted(improve) if key.startswith("episodes")],
            "",
            source_line(name, path, data),
        ]
    )


def _episode_stage(meta: dict, stage: dict) -> str:
    """One line on an ``--ftb-episodes`` stage of ``improve_extract``: its improvement and what realised."""
    realised = stage.get("realised", {})
    steps = realised.get("continuation")
    judged = f", each judged with {steps} steps of BC after it" if steps else ""
    rounds = ", ".join(percent(r["accepted"]).lstrip("+") for r in stage.get("rounds", []))
    tolerance = stage.get("dynamics_tolerance")
    valid = ""
    if tolerance:
        refused = ", ".join(str(r.get("invalid_dynamics")) for r in stage.get("rounds", []))
        valid = f" with our validity check (dynamics error <= {tolerance:g}; samples refused by it per round {refused})"
    return (
        f"FTB from the top {meta.get('ftb_episodes')} episodes{valid}: {stage.get('windows')} consecutive windows, "
        f"accepted per round {rounds}; mean score {number(stage.get('start_mean_score'), 3)} -> "
        f"{number(stage.get('final_mean_score'), 3)}, {percent(stage.get('generated_fraction')).lstrip('+')} of the "
        f"windows improved, dynamics error {number(stage.get('dynamics_error'), 2)}. Realised: "
        f"{realised.get('accepted')} of {realised.get('windows')} improved windows beat their source{judged} "
        f"(gain of the kept {number(realised.get('realised_gain_accepted'), 2, signed=True)}, of all "
        f"{number(realised.get('realised_gain_all'), 2, signed=True)}). Seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in stage.get("seconds", {}).items())
        + "."
    )


def render_policy_improvement(name: str, data: dict, path: Path, page: Page) -> str:
    """``policy_improvement_*.json``: a policy, BC on its rollouts, and BC on them after verified improvement."""
    meta, policy = data.get("meta", {}), data["policy"]
    extracted = meta.get("policy") == "bc"  # the policy is BC on the data improved, seed 0
    rows = [
        [
            "the policy: BC on the data improved, seed 0" if extracted else "the policy itself (deterministic)",
            "-",
            f"{number(policy['mean_return'], 0)} ± {number(policy['std_return'], 0)}",
            "-",
            f"{policy['falls']} of {meta.get('episodes')} episodes fall",
            "-",
        ]
    ]
    rows += [
        [
            r["learner"],
            f"{r['transitions']:,}",
            number(r["median"], 0),
            f"{number(r['min'], 0)} .. {number(r['max'], 0)}",
            f"{r['above_policy']} of {len(r['returns'])} seeds above the policy",
            number(statistics.median(r["scores"])),
        ]
        for r in data["rows"]
    ]
    improved = [
        f"{label}: {r['accepted']:,} of {r.get('windows', 0):,} windows kept (realised gain of the kept "
        f"{number(r.get('realised_gain_accepted'), 2, signed=True)}, of all "
        f"{number(r.get('realised_gain_all'), 2, signed=True)}; by execution {r.get('executions')}; "
        f"{number(r.get('seconds'), 0)} s)"
        for label, r in data.get("improve", {}).items()
    ]
    return "\n".join(
        [
            f"Mean return over {meta.get('episodes')} episodes (reset seeds 1000..) of each policy; BC "
            f"{meta.get('bc_steps')} steps at FTB's settings; data improved `{meta.get('dataset')}`"
            + (
                f" (the best {percent(meta['top_fraction']).lstrip('+')} of `{meta.get('whole_dataset')}`'s steps)"
                if meta.get("top_fraction")
                else ""
            )
            + f"; improvement with strengths {meta.get('strengths')}, each kept window written in place of the "
            "span it improved.",
            "",
            table(["policy", "transitions", "median return", "range", "against the policy", "median score"], rows),
            "",
            f"Verified improvement (`TrajectoryRefiner` fitted on `{meta.get('whole_dataset', meta.get('dataset'))}`, "
            f"{number(data.get('fit', {}).get('fit_seconds'), 0)} s): " + "; ".join(improved) + ".",
            "",
            "Action components at the edge of the box (|a| > 0.99) in what BC imitates: "
            + ", ".join(f"{label} {percent(v).lstrip('+')}" for label, v in data.get("saturated_actions", {}).items())
            + ".",
            "",
            source_line(name, path, data),
        ]
    )
