"""Improve, then extract: Flow to Better on the shipped Hopper data, verified by replay, extracted by BC.

Stages (each a cached run under ``<out>/improve_extract_runs/``, so a rerun resumes):

1. fit FTB (``FTBRefiner``) on the dataset and save it under ``--work``;
2. the paper's iterative improvement from the best windows (``FTBRefiner.improve``);
3. four datasets for the same learner: the raw data; the generated pool as FTB extracts
   from it (plans, unverified); the pool realised in MuJoCo from each window's recorded
   start state, keeping the realisations that beat their source (``realise_proposals``);
   and, as the control for "verification is what pays", the generated plans of exactly
   the windows whose realisation was kept (same count, unverified);
4. BC (``BCAgent``, FTB's settings but ``--bc-steps``) on each, plus filtered BC (top 10%
   by return) on the raw data, ``--seeds`` seeds each, scored over ``--episodes`` episodes;
5. augmentation (ours, not the paper's extraction): filtered BC's data (the best episodes
   holding 10% of the steps, ``thin_dataset``) joined with the realised FTB windows, and, as
   its control at equal size, with the generated plans of the same windows. FTB's paper
   extracts from whole generated 1000-step trajectories, which cover the states a policy
   starts from; our windows (``--window`` steps from the best windows) do not, so BC on them
   alone falls at once (the table's FTB rows), while joined to the episodes they came from
   they can only add to what filtered BC learns. With ``--ctflow`` the same two rows for
   CTFlow's verified windows: filtered BC's data + the realised windows ``improve_dataset``
   kept, and at equal size + CTFlow's refined plans of the same windows, unrealised
   (``refine`` at the improvement's strength, deterministic: one proposal per window, where
   verification may have kept another of its candidates; rewards: the source window's, which
   BC does not read).

``--ftb-episodes K`` adds FTB's extraction from whole episodes, the paper's Algorithm 4 on
CPU: the top K episodes by FTB's trajectory score (``FTBRefiner.top_episodes``), each cut
into consecutive windows, every window improved and kept in its final version
(``FTBRefiner.improve(..., keep="each")``), so the generated data covers the start states
the window rows miss. Four rows: BC on those K episodes as recorded (the control FTB must
beat), on the generated episodes (the paper's extraction), on the episodes with every
window whose realisation beat its source replaced by that realisation (verified), and, at
equal size, with those windows' plans instead (unverified). ``--ftb-tolerance T`` (several: a row
set each; 0: off) repeats the improvement with our exact validity check on (a generated window
counts only if its mean one-step MuJoCo dynamics error is at most T, ``FTBConfig.dynamics_tolerance``),
so the extraction can be read against how physical the accepted plans had to be.

``--select-every N`` makes every BC its checkpoint best on ``--select-episodes`` validation
episodes (:class:`agents.KeepBest`, reset seeds from ``--select-seed``), judged every N steps,
instead of its last step: BC swings widely between checkpoints, and a row's median is
otherwise as much the luck of its last step as the data's.

    python benchmarks/improve_extract.py [--generator-steps 4000] [--bc-steps 10000] [--seeds 0 1 2]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from harness import Runs, Settings, option, parse, write_results
from policy_improvement import selection_settings, train_bc

from agents import BCAgent
from ctflow_gym import FTBRefiner, TrajectoryRefiner
from ctflow_gym.data import combine_datasets, default_dataset_path, load_dataset, make_windows, thin_dataset
from ctflow_gym.improve import NothingImprovedError, improve_dataset, realise_proposals
from ctflow_gym.improve.writing import write_improved_dataset, write_unverified_dataset

RECORDED_BEFORE = {"score_steps": 1000}
"""Settings the first committed runs were made with before they were recorded (see ``harness.Runs``)."""


@dataclasses.dataclass
class ImproveExtractSettings(Settings):
    dataset: str = option("", "dataset to improve (default: the shipped Hopper medium-replay data)")
    window: int = option(32, "FTB window length")
    generator_steps: int = option(4000, "FTB generator training steps")
    top_n: int = option(1000, "windows FTB's iterative improvement starts from and keeps")
    improve_stride: int = option(32, "stride of the windows improvement starts from")
    score_steps: int = option(1000, "FTB score-model training steps (the code's 1000)")
    ctflow: bool = option(True, "also improve with CTFlow's TrajectoryRefiner (defaults) and extract from that")
    ctflow_feedback: str = option("return", "the TrajectoryRefiner's feedback")
    ctflow_steps: int = option(0, "the TrajectoryRefiner's training steps per part (0: its defaults)")
    bc_steps: int = option(10000, "BC training steps (FTB: 100k; cut for 2 CPU cores)")
    bc_batch: int = option(1024, "BC batch size (FTB's 1024)")
    seeds: tuple[int, ...] = option((0, 1, 2), "BC seeds")
    episodes: int = option(10, "evaluation episodes per BC seed")
    work: str = option("/tmp/ctflow_improve_extract", "where the fitted FTB and the datasets go")
    ftb_episodes: int = option(0, "also improve FTB's top K episodes whole and extract from them (0: off)")
    ftb_continuation: tuple[int, ...] = option(
        (0,), "judge those realised windows with N steps of BC on the K episodes after them; several: a row pair each"
    )
    ftb_tolerance: tuple[float, ...] = option(
        (0.0,), "FTB's whole-episode improvement with dynamics error <= T as validity (0: off); several: rows each"
    )
    rows: tuple[str, ...] = option((), "only the table rows whose learner names one of these words (default: all)")
    select_every: int = option(0, "every BC keeps its checkpoint best on validation episodes every N steps (0: last)")
    select_episodes: int = option(10, "validation episodes of each of those evaluations")
    select_seed: int = option(3000, "reset seed of the first validation episode")
    name: str | None = option(None, "result file name (default improve_extract[_<dataset>])")


def main(argv: list[str] | None = None) -> Path:
    s = parse(ImproveExtractSettings, argv)
    dataset_path = s.dataset or str(default_dataset_path())
    source = load_dataset(dataset_path)
    work, root = Path(s.work), Path(s.work) / "datasets"
    env_id, family = source.env_spec.id, source.id.rsplit("/", 1)[0]  # ctflow/hopper/medium-replay-v1 -> ctflow/hopper
    generated_id, realised_id, same_id, ctflow_id, ctflow_same_id = (
        f"{family}/{kind}-v0"
        for kind in ("ftb-generated", "ftb-realised", "ftb-generated-same", "ctflow-realised", "ctflow-refined-same")
    )
    name = "improve_extract" if not s.dataset else "improve_extract_" + source.id.replace("/", "_").replace("-", "_")
    name = s.name or name
    if s.dataset:  # each dataset its own work folders (the shipped data's are the top ones)
        work, root = work / name, root / name
    runs = Runs(Path(s.out) / f"{name}_runs")
    selection = selection_settings(s)  # in every BC run's settings
    stage_settings = {
        "dataset": source.id,
        "window": s.window,
        "generator_steps": s.generator_steps,
        "score_steps": s.score_steps,
        "top_n": s.top_n,
        "improve_stride": s.improve_stride,
    }
    ftb_folder = work / "ftb"

    def fit() -> dict:
        started = time.time()
        ftb = FTBRefiner(
            window=s.window, generator_steps=s.generator_steps, score_steps=s.score_steps, top_n=s.top_n
        ).fit(source)
        ftb.save(ftb_folder)
        return {"fit_info": ftb.fit_info, "fit_seconds": time.time() - started}

    fitted = runs.run("fit", stage_settings, fit, RECORDED_BEFORE, stale=lambda _: not ftb_folder.exists())
    ftb = FTBRefiner.load(ftb_folder)
    windows = make_windows(source, s.window, stride=s.improve_stride)

    def improve() -> dict:
        started = time.time()
        pool = ftb.improve(windows)
        improve_seconds = time.time() - started
        rewards = ftb.step_scores(pool.observations, pool.actions)  # what the unverified datasets carry
        started = time.time()
        record = {"improver": {"kind": "refiner:FTBRefiner", "checkpoint": str(ftb_folder)}, "rewards": "FTB score"}
        write_unverified_dataset(
            source, pool.observations, pool.actions, rewards, generated_id,
            root, {**record, "windows": "the whole kept pool"}, "FTB's generated pool, unverified",
        )  # fmt: skip
        predicted = pool.scores - ftb.scores(windows.observations[pool.origins], windows.actions[pool.origins])
        try:
            realised = realise_proposals(
                source, windows.subset(pool.origins), pool.observations, pool.actions, ftb,
                realised_id, root=root, overwrite=True, predicted_gain=predicted,
            )  # fmt: skip
        except NothingImprovedError:
            realised = None
        realise_seconds = time.time() - started
        if realised is not None:
            kept = np.array(realised.kept_rows, dtype=np.int64)
            write_unverified_dataset(
                source, pool.observations[kept], pool.actions[kept], rewards[kept],
                same_id, root, {**record, "windows": "those whose realisation was kept"},
                "FTB's generated windows whose realisation was kept, as planned (unverified)",
            )  # fmt: skip
        return {
            "rounds": pool.rounds,
            "start_mean_score": pool.start_mean_score,
            "pool_mean_score": float(pool.scores.mean()),
            "pool_generated_fraction": float(pool.generated.mean()),
            "pool_dynamics_error": float(np.nanmean(pool.dynamics_error[pool.generated]))
            if pool.generated.any()
            else None,
            "realised": {
                "windows": len(pool.origins),
                "accepted": 0 if realised is None else realised.accepted,
                "realised_gain_accepted": None if realised is None else realised.realised_gain_accepted,
                "realised_gain_all": None if realised is None else realised.realised_gain_all,
                "predicted_gain_accepted": None if realised is None else realised.predicted_gain_accepted,
            },
            "seconds": {"improve": improve_seconds, "realise": realise_seconds},
        }

    improved = runs.run(
        "improve", stage_settings, improve, RECORDED_BEFORE, stale=lambda _: not (root / generated_id).exists()
    )
    if s.ctflow:

        def improve_with_ctflow() -> dict:
            started = time.time()
            steps = s.ctflow_steps or {}
            if steps:
                steps = dict(ae_steps=steps, flow_steps=steps, predictor_steps=steps, inverse_dynamics_steps=steps)
            refiner = TrajectoryRefiner(feedback=s.ctflow_feedback, seed=0, **steps).fit(source, progress_bar=False)
            refiner.save(work / "ctflow")
            fit_seconds = time.time() - started
            try:
                report = improve_dataset(source, refiner, ctflow_id, root=root, overwrite=True)
            except NothingImprovedError:
                return {"windows": None, "accepted": 0, "seconds": {"fit": fit_seconds}}
            kept = make_windows(source, refiner.window, stride=refiner.window).subset(np.array(report.kept_rows))
            plans = refiner.refine(kept)  # the control: the same windows refined, as planned
            write_unverified_dataset(
                source, plans.observations, plans.actions, kept.rewards, ctflow_same_id, root,
                {"improver": {"kind": "refiner:TrajectoryRefiner", "checkpoint": str(work / "ctflow")},
                 "rewards": "the source window's", "windows": "those whose realisation was kept"},
                "CTFlow's refined windows whose realisation was kept, as planned (unverified)",
            )  # fmt: skip
            return {
                "windows": report.windows,
                "accepted": report.accepted,
                "executions": report.executions,
                "realised_gain_accepted": report.realised_gain_accepted,
                "realised_gain_all": report.realised_gain_all,
                "predicted_gain_accepted": report.predicted_gain_accepted,
                "seconds": {"fit": fit_seconds, "improve": report.wall_time_s},
            }

        ctflow_settings = {"dataset": source.id, "ctflow_feedback": s.ctflow_feedback}
        if s.ctflow_steps:  # absent otherwise: the runs stored before the option keep their keys
            ctflow_settings["ctflow_steps"] = s.ctflow_steps
        gone = lambda run: run["windows"] is not None and not (root / ctflow_same_id).exists()  # noqa: E731
        improved["ctflow"] = runs.run("ctflow", ctflow_settings, improve_with_ctflow, stale=gone)
    episode_rows: dict[str, tuple[str, dict]] = {}  # label -> (dataset id, the settings its BC runs add)
    k = s.ftb_episodes

    def continuation_policy(start_path: Path):  # BC on the start episodes, as the "as recorded" row has it
        folder = work / f"policy_top{k}"
        if not folder.exists():
            train_bc(env_id, str(start_path), 0, s.bc_steps, None, selection, batch_size=s.bc_batch)[0].save(folder)
        return BCAgent.load(folder, env=env_id, device="cpu")

    def bounded(tolerance: float) -> FTBRefiner:  # the fitted FTB with our exact validity check at ``tolerance``
        if not tolerance:
            return ftb
        tolerant = FTBRefiner.load(ftb_folder)
        tolerant.config = dataclasses.replace(tolerant.config, dynamics_tolerance=tolerance)
        return tolerant

    for tolerance, steps in [(t, c) for t in s.ftb_tolerance for c in s.ftb_continuation] if k else ():
        judged = {"ftb_continuation": steps} if steps else {}  # absent at 0: the runs stored before the option
        valid = {"ftb_dynamics_tolerance": tolerance} if tolerance else {}  # the same
        episode_datasets = _episode_ids(family, k, steps, tolerance)
        tag = (f"_tol{tolerance:g}" if tolerance else "") + (f"_c{steps}" if steps else "")
        improved["episodes" + tag] = runs.run(
            f"improve_episodes{k}{tag}",
            {**stage_settings, "ftb_episodes": k, **valid, **judged},
            lambda ids=episode_datasets, steps=steps, tolerance=tolerance: improve_top_episodes(
                source, bounded(tolerance), ftb_folder, root, k, ids, steps, continuation_policy if steps else None
            ),
            stale=lambda _, ids=episode_datasets: not (root / ids["realised"]).exists(),
        )
        for kind, label in _episode_labels(k, steps, tolerance).items():
            extra = {"ftb_episodes": k, **(valid if kind != "start" else {})}
            extra.update(judged if kind in ("realised", "same") else {})
            episode_rows.setdefault(label, (episode_datasets[kind], extra))
    datasets = {
        "BC, raw data": (dataset_path, None),
        "filtered BC (top 10%), raw data": (dataset_path, 0.1),
        "BC, FTB generated (paper)": (str(root / generated_id), None),
        "BC, FTB realised (verified)": (str(root / realised_id), None),
        "BC, FTB generated, same windows as realised": (str(root / same_id), None),
    }
    if s.ctflow:
        datasets["BC, CTFlow realised (verified)"] = (str(root / ctflow_id), None)
    datasets.update({label: (str(root / dataset_id), None) for label, (dataset_id, _) in episode_rows.items()})
    best_id = f"{family}/best-v0"
    thin_dataset(source, None, root, best_id, overwrite=True, top_fraction=0.1, progress_bar=False)
    joins = [
        ("filtered BC's data + FTB realised (verified)", realised_id),
        ("filtered BC's data + FTB generated, same windows (unverified)", same_id),
    ]
    if s.ctflow:
        joins += [
            ("filtered BC's data + CTFlow realised (verified)", ctflow_id),
            ("filtered BC's data + CTFlow refined, same windows (unverified)", ctflow_same_id),
        ]
    for label, added_id in joins:
        joined_id = f"{family}/best-and-{added_id.rsplit('/', 1)[1]}"
        if not (root / added_id).exists():  # no realised window: an empty row (never an earlier run's join)
            datasets[label] = (str(root / added_id), None)
            continue
        # joined again each run: the windows may be new
        combine_datasets([root / best_id, root / added_id], joined_id, root=root, overwrite=True)
        datasets[label] = (str(root / joined_id), None)
    rows = []
    for label, (path, top_fraction) in datasets.items():
        if s.rows and not any(word in label for word in s.rows):
            continue
        if not Path(path).exists():  # no realised window beat its source: nothing to learn from
            rows.append({"learner": label, "transitions": 0, "scores": [], "median": None, "min": None, "max": None})
            continue
        scores = []
        for seed in s.seeds:
            settings = {
                **stage_settings,
                **episode_rows.get(label, ("", {}))[1],
                "learner": label,
                "seed": seed,
                "bc_steps": s.bc_steps,
                "bc_batch": s.bc_batch,
                **selection,
            }

            def train(path=path, top_fraction=top_fraction, seed=seed) -> dict:
                agent, chosen = train_bc(env_id, path, seed, s.bc_steps, top_fraction, selection, batch_size=s.bc_batch)
                report = agent.evaluate(s.episodes, seed=1000)
                return {
                    "score": report["normalized_score"],
                    "mean_return": report["mean_return"],
                    "transitions": len(agent.transitions),
                    **chosen,
                }

            key = "bc_" + "".join(c for c in label.replace(" ", "_") if c.isalnum() or c == "_")  # a plain file name
            scores.append(runs.run(f"{key}_seed{seed}", settings, train, RECORDED_BEFORE))
        values = [r["score"] for r in scores]
        rows.append(
            {
                "learner": label,
                "transitions": scores[0]["transitions"],
                "scores": values,
                "median": float(np.median(values)),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
            }
        )
    data = {"meta": {**s.recorded(), "dataset": source.id}, "fit": fitted, "improve": improved, "rows": rows}
    return write_results(s, name, data, "improve_extract", f"Improve, then extract (Flow to Better) on {source.id}")


EPISODE_KINDS = ("start", "generated", "realised", "same")


def _episode_ids(family: str, k: int, continuation: int = 0, tolerance: float = 0.0) -> dict[str, str]:
    """The dataset ids of the ``--ftb-episodes`` stage, by kind (the verified two depend on ``--ftb-continuation``,
    all but the start episodes on ``--ftb-tolerance``)."""
    ids = {}
    for kind in EPISODE_KINDS:
        valid = f"-tol{tolerance:g}".replace(".", "p") if tolerance and kind != "start" else ""  # Minari: no dots
        judged = f"-c{continuation}" if continuation and kind in ("realised", "same") else ""
        ids[kind] = f"{family}/ftb-top{k}{valid}{judged}-{kind}-v0"
    return ids


def _episode_labels(k: int, continuation: int = 0, tolerance: float = 0.0) -> dict[str, str]:
    """The table rows of the ``--ftb-episodes`` stage, by kind."""
    judged = f", judged with {continuation} steps of BC after" if continuation else ""
    valid = f", dynamics error <= {tolerance:g}" if tolerance else ""
    return {
        "start": f"BC, FTB's top {k} episodes as recorded",
        "generated": f"BC, FTB generated from the top {k} episodes (paper{valid})",
        "realised": f"BC, top {k} episodes with realised FTB windows (verified{judged}{valid})",
        "same": f"BC, top {k} episodes with those windows' plans (unverified{judged}{valid})",
    }


def improve_top_episodes(
    source, ftb, ftb_folder: Path, root: Path, k: int, ids: dict[str, str], continuation: int = 0, policy_for=None
) -> dict:
    """FTB's extraction from whole episodes (module docstring): write the four datasets ``ids`` names; the report.

    The start episodes are written as they are (with simulator states, so windows can be
    realised from them); the generated episodes as windows of ``window - 1`` transitions
    (``write_unverified_dataset``), an episode's last ``len % window`` steps left out; the
    realised and the plans rows keep every step of the start episodes outside the windows
    replaced. With ``continuation`` a realised window and its source are both judged by their
    return plus ``continuation`` steps of ``policy_for(start episodes' path)`` after them
    (``ImprovementConfig.continuation``), so a window that buys reward with a state the
    policy cannot go on from is refused.
    """
    started = time.time()
    top = ftb.top_episodes(source, k)
    start_path = thin_dataset(source, None, root, ids["start"], overwrite=True, episodes=top, progress_bar=False)
    windows = make_windows(start_path, ftb.window, stride=ftb.window)
    pool = ftb.improve(windows, keep="each")
    improve_seconds = time.time() - started  # runs stored before 3481a47 include the continuation policy's BC here
    policy = policy_for(start_path) if continuation else None
    record = {"improver": {"kind": "refiner:FTBRefiner", "checkpoint": str(ftb_folder)}}
    rewards = np.where(pool.generated[:, None], ftb.step_scores(pool.observations, pool.actions), windows.rewards)
    write_unverified_dataset(
        source, pool.observations, pool.actions, rewards, ids["generated"], root,
        {**record, "rewards": "FTB score where generated, recorded elsewhere", "windows": f"top {k} episodes"},
        f"FTB's improved top {k} episodes, unverified",
    )  # fmt: skip
    started = time.time()
    generated = np.flatnonzero(pool.generated)
    realised, kept = None, np.zeros(0, np.int64)
    if len(generated):
        predicted = pool.scores[generated] - ftb.scores(windows.observations[generated], windows.actions[generated])
        try:
            realised = realise_proposals(
                start_path, windows.subset(generated), pool.observations[generated], pool.actions[generated], ftb,
                ids["realised"], root=root, overwrite=True, predicted_gain=predicted, source_steps="unimproved",
                progress_bar=False, policy=policy, continuation=continuation,
            )  # fmt: skip
            kept = generated[np.array(realised.kept_rows, dtype=np.int64)]
        except NothingImprovedError:
            pass
    if realised is None:  # nothing realised better: the verified episodes are the start episodes
        thin_dataset(source, None, root, ids["realised"], overwrite=True, episodes=top, progress_bar=False)
    if len(kept):  # the control: the same spans cut out of the start episodes, the plans in their place
        remainder, plans = (f"{ids['same'].rsplit('-v', 1)[0]}-{part}-v0" for part in ("remainder", "plans"))
        replaced = [(e, t, t + ftb.window) for e, t in zip(windows.episode_ids[kept], windows.start_steps[kept])]
        write_improved_dataset(
            load_dataset(start_path), [], remainder, root, {**record, "rewards": "recorded"}, "unimproved", replaced,
            "the start episodes without the windows replaced",
        )  # fmt: skip
        write_unverified_dataset(
            source, pool.observations[kept], pool.actions[kept], rewards[kept], plans, root,
            {**record, "rewards": "FTB score", "windows": "those whose realisation was kept"}, "FTB's plans",
        )  # fmt: skip
        combine_datasets([root / remainder, root / plans], ids["same"], root=root, overwrite=True)
    else:  # nothing replaced: the start episodes
        thin_dataset(source, None, root, ids["same"], overwrite=True, episodes=top, progress_bar=False)
    return {
        "episodes": top.tolist(),
        "windows": len(windows),
        "rounds": pool.rounds,
        "start_mean_score": pool.start_mean_score,
        "final_mean_score": float(pool.scores.mean()),
        "generated_fraction": float(pool.generated.mean()),
        "dynamics_error": float(np.nanmean(pool.dynamics_error[generated])) if len(generated) else None,
        "dynamics_tolerance": ftb.config.dynamics_tolerance,
        "realised": {
            "continuation": continuation,
            "windows": len(generated),
            "accepted": len(kept),
            "realised_gain_accepted": None if realised is None else realised.realised_gain_accepted,
            "realised_gain_all": None if realised is None else realised.realised_gain_all,
            "predicted_gain_accepted": None if realised is None else realised.predicted_gain_accepted,
        },
        "seconds": {"improve": improve_seconds, "realise": time.time() - started},
    }


if __name__ == "__main__":
    main()
