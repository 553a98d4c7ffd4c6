"""A policy improved by distilling its verified refined version: DAgger with ``RefinedPolicy`` as the expert.

Goal 3 of the improve-then-extract issue asks for a user's policy made better without a
refiner at run time. ``RefinedPolicy(policy, refiner, env, verify=True, continuation=C)``
is better than the policy when C sees far enough ahead, but needs the refiner and the
simulator; :func:`ctflow_gym.improve.distill` makes a standalone policy of it. Stages
(each a cached run under ``<out>/<name>_runs/``, so a rerun resumes; a distillation
killed in the middle resumes from its dataset in ``--work``):

1. the policy alone, deterministic, ``--episodes`` episodes (reset seeds 1000..);
   ``--policy bc`` makes the policy of logged data without one: BC (seed 0, ``--bc-steps``)
   on ``--dataset``, or on its best episodes holding ``--top-fraction`` of the steps (filtered
   BC, as in ``policy_improvement.py``);
2. CTFlow's ``TrajectoryRefiner`` fitted on ``--dataset`` (the policy's stochastic
   rollouts, as in ``policy_improvement.py``), or ``--refiner``: a refiner fitted elsewhere,
   of any registered family (``FTBRefiner`` as ``improve_extract.py`` fits it);
3. the teacher, ``RefinedPolicy`` verified with the strength ladder ``--strength`` /
   ``--candidates`` and ``--continuation`` policy steps in every score, in closed loop
   (``--teacher-episodes`` episodes, the same reset seeds), and the same teacher judging
   windows over the shorter ``--horizons`` (how far verification must look ahead);
4. per seed, :func:`distill` with that teacher: round 0 BC on the teacher's own rollouts,
   then ``--rounds`` DAgger rounds (``--round-episodes`` episodes each); every round's BC
   (``BCAgent``, FTB's settings, ``--bc-steps``, seeded) evaluated like the policy;
5. the controls: the same distillation with the policy itself as the expert (the teacher
   at strength 0: every window it plans is the policy's own), which is plain DAgger of the
   policy, what extraction alone does with the same states, rounds and steps; and with the
   refined policy unverified (strength 1, no replay: its refined windows are realised, so
   every transition is real, but nothing chose them over the policy's own);
6. at equal data size: the verified teacher's data (all rounds) thinned to as many
   transitions as the unverified teacher's, BC on them, per seed, in two ways: evenly spaced
   recorded windows (``thin_dataset(target_steps=...)``; ``distill`` writes each window as
   an episode) and evenly spaced single steps (``piece=1``). The unverified teacher falls
   sooner, so the same number of episodes gives it fewer transitions; these rows take that
   advantage away. Dropping every other window leaves 16-step holes along each trajectory
   (most of a hop), dropping single steps leaves none: the second row changes only the size
   (``--no-equal-size`` skips these rows, e.g. where the verified teacher's learners fail anyway);
7. ``--bc-seeds``: BC again, with each further seed, on every distillation's final dataset
   (all its rounds; ``--reseed``: only those of some experts) and on every equal-size one. A
   distillation's seed sets both its episodes and its BC's initialisation and batches; these
   runs separate the two (how far BC's seed alone moves a learner on the same data: the Results
   page, "Improve, then extract");
8. ``--split-seeds``: for those distillation seeds, BC (the same seed) on the verified teacher's
   windows split by who chose them: the windows where it kept the policy's plan (their actions
   are the policy's own at their states) and its refined windows, each part alone. Where BC on
   the whole fails, this says whether the refined windows' labels are what it cannot fit.

``--select-every N``: every BC of stages 4-8 keeps its checkpoint best on validation episodes
(:class:`agents.KeepBest`: ``--select-episodes`` episodes from reset seed ``--select-seed``,
evaluated every N steps) instead of its last step; DAgger's later rounds roll out that one. BC on
the same data swings widely from one evaluation to the next (the Results page), so the last step
is a draw. With it, ``--policy bc`` also gets a row of its own BC selected the same way,
one per seed ("filtered BC, selected"): the fair baseline for selected learners. ``--eval-seed``
moves every reported evaluation (default 1000, as before); 5000 puts them on
``receding_horizon.py``'s test episodes, apart from the episodes its settings were chosen on.

    python benchmarks/distillation.py [--seeds 0 1 2] [--rounds 2] [--bc-steps 20000] [--bc-seeds 10 20]
    python benchmarks/distillation.py --dataset ctflow/hopper/medium-replay-v1 --policy bc --top-fraction 0.1 \
        --refiner <improve_extract's work>/ftb
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from harness import Runs, Settings, option, parse, pyplot, write_png, write_results
from policy_improvement import (
    EVALUATION_SEED,
    benchmark_policy,
    closed_loop,
    fitted_refiner,
    policy_data,
    selection_settings,
    train_bc,
)

from ctflow_gym import RefinedPolicy
from ctflow_gym.data import load_dataset, thin_dataset
from ctflow_gym.data.actor_policies import policy_action_fn
from ctflow_gym.data.derived import write_derived_dataset
from ctflow_gym.data.minari_io import build_record, episode_buffer
from ctflow_gym.improve import distill
from ctflow_gym.refine import load_refiner
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY

TEACHERS = ("refined", "policy", "unverified")
"""The experts distilled: the verified refined policy; the policy itself (the control for refinement); the
refined policy unverified, at strength 1 (the control for verification: realised windows nothing chose)."""


LABELS = {"refined": "verified refined teacher", "policy": "the policy (plain DAgger)", "unverified": "unverified"}


def plot_rounds(
    distilled: dict[str, list[dict]],
    policy: float,
    teacher: float,
    path: Path,
    title: str,
    teacher_label: str = "the teacher (refiner and MuJoCo at run time)",
    selected_policy: float | None = None,
) -> bool:
    """The learning curve of distillation, as ``path``: each round's learner return per expert (median over seeds,
    their range as a bar) beside the policy, the teacher and (``--select-every``) the median of the policy's own BC
    selected on validation episodes (dotted). False, nothing written: no learner evaluated."""
    series = {}  # expert -> (seeds, rounds) returns, over the rounds every seed has
    for kind, seeds in distilled.items():
        curves = [[r["learner"]["mean_return"] for r in run["per_round"] if r.get("learner")] for run in seeds]
        length = min(map(len, curves), default=0)
        if length:
            series[kind] = np.array([curve[:length] for curve in curves])
    if not series:
        return False
    figure, axis = pyplot().subplots(figsize=(7, 4.5))
    for i, (kind, values) in enumerate(series.items()):
        rounds = np.arange(values.shape[1]) + 0.04 * (i - (len(series) - 1) / 2)  # the experts side by side
        median = np.median(values, axis=0)
        label = f"BC distilled from {LABELS.get(kind, kind)} ({len(values)} seeds)"
        spread = [median - values.min(axis=0), values.max(axis=0) - median]
        axis.errorbar(rounds, median, yerr=spread, fmt="o-", color=f"C{i}", capsize=4, label=label)
    axis.axhline(policy, color="k", linestyle=":", label="the policy")
    axis.axhline(teacher, color="C3", linestyle=":", label=teacher_label)
    if selected_policy is not None:
        axis.axhline(selected_policy, color="C2", linestyle=":", label="the policy's own BC, selected (median)")
    axis.set(xlabel="DAgger round (0: BC on the teacher's rollouts)", ylabel="mean return")
    axis.set_title(title, fontsize=9)
    length = max(values.shape[1] for values in series.values())
    axis.set(xticks=range(length), xlim=(-0.5, length - 0.5))
    axis.legend(fontsize=7)
    write_png(figure, path)
    return True


def split_by_chooser(path: Path, policy, root: Path, prefix: str) -> dict[str, tuple[Path | None, int]]:
    """The windows of the distilled dataset at ``path`` written as two datasets under ``root``: ``(path, windows)``.

    ``"policy_windows"``: those whose actions are ``policy``'s own (deterministic) at their
    states, the windows where the teacher kept the policy's plan; ``"refined_windows"``: the
    rest. A part without windows is ``(None, 0)``.
    """
    act = policy_action_fn(policy, deterministic=True)
    parts: dict[str, list] = {"policy_windows": [], "refined_windows": []}
    source = load_dataset(path)
    for episode in source.iterate_episodes():
        own = np.array([act(observation) for observation in episode.observations[:-1]])
        kept = np.allclose(own, episode.actions, rtol=0.0, atol=1e-5)
        parts["policy_windows" if kept else "refined_windows"].append(episode)
    written = {}
    for part, episodes in parts.items():
        if not episodes:
            written[part] = (None, 0)
            continue
        buffers = [episode_buffer(i, episode, SIM_STATE_INFO_KEY) for i, episode in enumerate(episodes)]
        dataset_id = f"{prefix}-{part.replace('_', '-')}-v0"
        target = write_derived_dataset(
            source, buffers, dataset_id, root, {"split_from": str(path), "part": part},
            algorithm_name="distillation.py, the verified teacher's windows by who chose them",
            code_permalink="benchmarks/distillation.py", description=f"{part} of {path}", scratch_prefix=".split-",
        )  # fmt: skip
        written[part] = (target, len(episodes))
    return written


@dataclasses.dataclass
class DistillationSettings(Settings):
    dataset: str = option("ctflow/hopper/medium-v1", "the policy's rollouts the refiner is fitted on (id or path)")
    policy: str = option(
        "shipped:hopper-medium", "the policy: shipped:NAME, an actor folder, an SB3 zip, or bc (BC on the data)"
    )
    top_fraction: float = option(0.0, "with --policy bc: BC on the best episodes holding this fraction of the steps")
    refiner: str | None = option(None, "a fitted refiner's folder (any family, e.g. FTB's) instead of fitting CTFlow's")
    window: int = option(16, "the refiner's window (TrajectoryRefiner's default)")
    refiner_steps: int = option(4000, "the refiner's autoencoder, flow and inverse-dynamics steps")
    strength: float = option(4.0, "the teacher's largest strength (candidates at strength x i / candidates)")
    candidates: int = option(3, "refined windows the teacher verifies per window")
    continuation: int = option(400, "policy steps after each window in the teacher's verified score")
    replan_every: int | None = option(
        None, "every teacher plans again after this many steps (a Markov teacher; default: whole windows)"
    )
    teacher_episodes: int = option(20, "closed-loop episodes of the teacher itself")
    horizons: tuple[int, ...] = option((0, 48), "shorter continuations the teacher is measured with (not distilled)")
    rounds: int = option(2, "DAgger rounds after round 0")
    round_episodes: int = option(10, "episodes rolled out per round")
    bc_steps: int = option(20000, "BC training steps per round (FTB: 100k; cut for 2 CPU cores)")
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds: each a distillation (reset seeds and BC)")
    bc_seeds: tuple[int, ...] = option((), "further BC seeds trained on each distillation's final dataset")
    reseed: tuple[str, ...] = option(TEACHERS, "experts whose final datasets --bc-seeds clones", choices=TEACHERS)
    equal_size: bool = option(True, "the verified teacher's data thinned to the unverified one's size (step 6)")
    split_seeds: tuple[int, ...] = option((), "distillations whose verified teacher's data is cloned split (step 8)")
    teachers: tuple[str, ...] = option(TEACHERS, "experts to distill: refined, policy, unverified", choices=TEACHERS)
    episodes: int = option(50, "evaluation episodes of the policy and of every round's learner")
    eval_seed: int = option(EVALUATION_SEED, "reset seed of the first of those episodes (and the teachers')")
    select_every: int = option(0, "every BC keeps its checkpoint best on validation episodes every N steps (0: last)")
    select_episodes: int = option(10, "validation episodes of each of those evaluations")
    select_seed: int = option(3000, "reset seed of the first validation episode (apart from --eval-seed's)")
    work: str = option("/tmp/ctflow_distillation", "where the fitted refiner and the distilled datasets go")
    name: str | None = option(None, "result file name (default distillation_<dataset>)")


def main(argv: list[str] | None = None) -> Path:
    s = parse(DistillationSettings, argv)
    dataset = load_dataset(s.dataset)
    env_id = dataset.env_spec.id
    name = s.name or "distillation_" + dataset.id.replace("/", "_").replace("-", "_")
    work = Path(s.work) / name
    runs = Runs(Path(s.out) / f"{name}_runs")
    base = {"dataset": dataset.id, "policy": s.policy, "episodes": s.episodes}
    if s.eval_seed != EVALUATION_SEED:  # absent otherwise: the runs stored before the option keep their keys
        base["eval_seed"] = s.eval_seed
    if s.top_fraction and s.policy != "bc":
        raise SystemExit(f"--top-fraction selects the data of --policy bc; got --policy {s.policy}")
    selection = selection_settings(s)  # in the settings of every BC run
    policy, naming, described = benchmark_policy(s, dataset, work)
    base.update(naming)

    def evaluated(agent_or_policy, episodes: int = s.episodes, env=None) -> dict:
        return closed_loop(env_id, agent_or_policy, episodes, env, seed=s.eval_seed)

    def selected_bc(path, seed: int) -> tuple[Any, dict]:
        """BC (``--bc-steps``, ``seed``, selected with ``--select-every``) on ``path``, evaluated; and the agent."""
        agent, chosen = train_bc(env_id, path, seed, s.bc_steps, selection=selection)
        return agent, {**evaluated(agent), **chosen, "transitions": len(agent.transitions)}

    policy_alone = runs.run("policy", base, lambda: evaluated(policy))
    paired = {**base, "episodes": s.teacher_episodes}  # the policy on the teacher's episodes (its first ones)
    policy_paired = runs.run("policy_teacher_episodes", paired, lambda: evaluated(policy, s.teacher_episodes))
    policy_selected = []  # --policy bc's own BC, selected like the learners: their fair baseline
    if s.policy == "bc" and s.select_every:
        source = policy_data(s, dataset, work)
        for seed in s.seeds:

            def selected(seed=seed) -> dict:
                return selected_bc(source, seed)[1]

            settings = {**base, **selection, "seed": seed, "bc_steps": s.bc_steps}
            policy_selected.append({**runs.run(f"policy_selected_seed{seed}", settings, selected), "seed": seed})
    if s.refiner:  # fitted elsewhere (e.g. FTBRefiner by improve_extract.py): its folder names it
        refiner = load_refiner(s.refiner)
        fit_settings = {"dataset": dataset.id, "refiner": str(Path(s.refiner).resolve())}
        fitted = {"refiner": fit_settings["refiner"], "kind": type(refiner).__name__, "window": refiner.window}
    else:
        fit_settings = {"dataset": dataset.id, "window": s.window, "refiner_steps": s.refiner_steps}
        fitted, refiner = fitted_refiner(runs, fit_settings, dataset, s.window, s.refiner_steps, work / "refiner")
    teacher_settings = {"strength": s.strength, "candidates": s.candidates, "continuation": s.continuation}
    experts = {  # the refined teacher, and the policy itself as a teacher (strength 0 keeps every base window)
        "refined": teacher_settings,
        "policy": {"strength": 0.0, "candidates": 1, "continuation": 0},
        "unverified": {"strength": 1.0, "candidates": 1, "continuation": 0},
    }
    if s.replan_every is not None:  # absent otherwise: the runs stored before the option keep their keys
        for options in experts.values():
            options["replan_every"] = s.replan_every

    def teacher(options: dict, verify: bool = True) -> RefinedPolicy:
        return RefinedPolicy(policy, refiner, gym.make(env_id), verify=verify, execution="open_loop", **options)

    def teacher_run(key: str, options: dict, verify: bool = True) -> dict:
        """The teacher with ``options``, in closed loop in its own env (cached as ``key``)."""
        settings = {**fit_settings, **base, **options, "episodes": s.teacher_episodes}
        if not verify:
            settings["verify"] = False

        def measure() -> dict:
            refined = teacher(options, verify)
            return evaluated(refined, s.teacher_episodes, refined.env)

        return runs.run(key, settings, measure)

    teacher_alone = teacher_run("teacher", teacher_settings)
    horizons = {  # the same teacher judging each window over fewer policy steps after it
        str(horizon): teacher_run(f"teacher_continuation{horizon}", {**teacher_settings, "continuation": horizon})
        for horizon in s.horizons
    }
    unverified_alone = None
    if "unverified" in s.teachers:  # the unverified teacher in closed loop, beside the verified one
        unverified_alone = teacher_run("teacher_unverified", experts["unverified"], verify=False)
    distilled = {}
    for kind in s.teachers:
        distilled[kind] = []
        for seed in s.seeds:

            def run(kind=kind, seed=seed) -> dict:
                evaluations = {}  # round -> its learner's evaluation (a resumed run has only the rounds it trained)

                def learn(path):
                    agent, evaluation = selected_bc(path, seed)
                    evaluations[len(build_record(load_dataset(path))["distillation"]["rounds"]) - 1] = evaluation
                    return agent

                started = time.time()
                expert = teacher(experts[kind], verify=kind != "unverified")
                report = distill(
                    expert, learn, f"distilled/{kind}-seed{seed}-v0", root=work / "datasets",
                    rounds=s.rounds, episodes=s.round_episodes, seed=100_000 * (seed + 1), progress_bar=False,
                    overwrite=True,
                )  # fmt: skip
                per_round = [{**dataclasses.asdict(r), "learner": evaluations.get(r.round)} for r in report.rounds]
                # not under "rounds": that is a setting of the run, stored beside the result
                return {"per_round": per_round, "seconds": time.time() - started}

            settings = {**fit_settings, **base, **experts[kind], **selection, "teacher": kind, "seed": seed}
            settings.update(rounds=s.rounds, round_episodes=s.round_episodes, bc_steps=s.bc_steps)
            distilled[kind].append(runs.run(f"distill_{kind}_seed{seed}", settings, run))

    def cloned(path: Path, seed: int) -> dict:
        """BC (``--bc-steps``, seeded, selected with ``--select-every``) on the dataset at ``path``, evaluated."""
        return selected_bc(path, seed)[1]

    matched = {"matched": [], "matched_steps": []}  # the verified teacher's data at the unverified one's size,
    pieces = {"matched": None, "matched_steps": 1}  # thinned as whole recorded windows or as single steps
    pairs = zip(s.seeds, distilled.get("refined", []), distilled.get("unverified", [])) if s.equal_size else ()
    for seed, refined, unverified in pairs:
        size = unverified["per_round"][-1]["learner"]["transitions"]
        if refined["per_round"][-1]["learner"]["transitions"] <= size:
            continue  # the verified teacher's data is no larger: nothing to take away
        source = work / "datasets" / f"distilled/refined-seed{seed}-v0"
        for key, piece in pieces.items():
            thinned_id = f"distilled/refined-seed{seed}-{key.replace('_', '-')}-v0"

            def thinned(size=size, source=source, seed=seed, thinned_id=thinned_id, piece=piece) -> dict:
                target = thin_dataset(source, None, work / "datasets", thinned_id, overwrite=True, target_steps=size,
                                      progress_bar=False, piece=piece)  # fmt: skip
                return cloned(target, seed)

            settings = {**fit_settings, **base, **teacher_settings, **selection, "seed": seed, "bc_steps": s.bc_steps}
            settings.update(rounds=s.rounds, round_episodes=s.round_episodes, target_steps=size)
            if piece:
                settings["piece"] = piece
            run = runs.run(f"{key}_seed{seed}", settings, thinned)
            matched[key].append({**run, "dataset_id": thinned_id})
    finals = {
        kind: [(run["seed"], f"distilled/{kind}-seed{run['seed']}-v0") for run in done]
        for kind, done in distilled.items()
    }
    finals.update({key: [(run["seed"], run["dataset_id"]) for run in done] for key, done in matched.items()})
    reseeded = {}  # expert (or equal-size row) -> BC with each further seed on each distillation's final dataset
    for kind, datasets in finals.items():
        if kind in TEACHERS and kind not in s.reseed:
            continue
        for seed, dataset_id in datasets:
            for bc_seed in s.bc_seeds:

                def again(path=work / "datasets" / dataset_id, bc_seed=bc_seed) -> dict:
                    return cloned(path, bc_seed)

                settings = {**fit_settings, **base, **selection, "teacher": kind, "seed": seed, "bc_seed": bc_seed}
                settings.update(rounds=s.rounds, round_episodes=s.round_episodes, bc_steps=s.bc_steps)
                reseeded.setdefault(kind, []).append(runs.run(f"bc_{kind}_seed{seed}_bc{bc_seed}", settings, again))
    split = {}  # part -> BC on the verified teacher's windows of that part, per --split-seeds seed
    for seed in s.split_seeds if "refined" in distilled else ():
        source = work / "datasets" / f"distilled/refined-seed{seed}-v0"

        def parted(seed=seed, source=source) -> dict:
            written = split_by_chooser(source, policy, work / "datasets", f"split/refined-seed{seed}")
            return {part: {**(cloned(path, seed) if path else {}), "windows": count}
                    for part, (path, count) in written.items()}  # fmt: skip

        settings = {**fit_settings, **base, **teacher_settings, **selection, "seed": seed, "bc_steps": s.bc_steps}
        settings.update(rounds=s.rounds, round_episodes=s.round_episodes)
        for part, result in runs.run(f"split_seed{seed}", settings, parted).items():
            if part in ("policy_windows", "refined_windows"):
                split.setdefault(part, []).append({**result, "seed": seed})
    png = Path(s.out) / f"{name}.png"
    shown, label = teacher_alone, "the verified teacher (refiner and MuJoCo at run time)"
    if "refined" not in s.teachers and unverified_alone:  # only the unverified one distilled: it is the teacher
        shown, label = unverified_alone, "the refined policy unverified (refiner and MuJoCo at run time)"
    selected = float(np.median([run["mean_return"] for run in policy_selected])) if policy_selected else None
    drawn = plot_rounds(distilled, policy_alone["mean_return"], shown["mean_return"], png, name, label, selected)
    data = {
        "meta": {**s.recorded(), "dataset": dataset.id, "env_id": env_id, "curves_png": png.name if drawn else None},
        "policy": policy_alone,
        "policy_teacher_episodes": policy_paired,
        "policy_selected": policy_selected,
        "fit": fitted,
        "teacher": teacher_alone,
        "teacher_horizons": horizons,
        "teacher_unverified": unverified_alone,
        "distilled": distilled,
        **matched,
        "reseeded": reseeded,
        "split": split,
    }
    version = "verified refined version" if "refined" in s.teachers else "refined version, unverified"
    title = f"A policy distilled from its {version} ({described})"
    return write_results(s, name, data, "distillation", title)


if __name__ == "__main__":
    main()
