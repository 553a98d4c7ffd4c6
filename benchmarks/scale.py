"""Past one machine's comfort: pairs at a million windows, a refiner fit on a million transitions, workers.

The big dataset is built with the package (not shipped; about 15 minutes with 2 workers)::

    ctflow dataset build --kind random --steps 100000 --shards 2 --workers 2 --seed 11 \\
        --dataset-id scale/hopper/random-v0 --out ROOT
    ctflow dataset build --kind medium --policy <shipped medium_policy.zip> --steps 1150000 --shards 4 \\
        --workers 2 --seed 12 --dataset-id scale/hopper/medium-v0 --out ROOT
    ctflow dataset combine ROOT/scale/hopper/random-v0 ROOT/scale/hopper/medium-v0 \\
        --dataset-id scale/hopper/random-medium-v0 --out ROOT
    python benchmarks/scale.py --dataset ROOT/scale/hopper/random-medium-v0

Sections, each run in a fresh process (so that its peak memory is its own) and cached in
``--work`` (a rerun skips finished sections made with the same settings; ``--redo`` runs them again):

- ``fit``: a ``TrajectoryRefiner`` with the package defaults fitted on the big dataset: wall time
  and peak resident memory per stage and in all.
- ``pairs``: the fitted autoencoder's latents of every window; pair construction (``local_pairs``:
  neighbour search and improvement rule) with the approximate index at all windows, exact against
  approximate on the first ``--subset-windows`` windows (time, recall@k), and at all windows
  recall@k of ``--recall-queries`` random queries against exact search of those queries. (The
  committed file's latents were standardised twice, ``LatentCodec.encode`` already standardising
  them; they are standardised once here: the times do not depend on it, pair counts and recall
  may differ slightly. Not rerun: the section takes hours on the committed machine.)
- ``gain``: ``--gain-dataset``'s refiner fitted with exact and with approximate pairs (same seed),
  realised gain on the same held-out windows.
- ``replay``: open-loop replays of ``--replay-windows`` windows of the big dataset with 1 and 2
  worker processes, and a tracked evaluation of ``--tracked-windows``.
- ``build``: a ``--build-steps`` medium dataset in 2 shards built by 1 and by 2 workers.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import Runs, Settings, option, parse, write_results

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import (
    DEFAULT_DATASET_ID,
    BuildConfig,
    build_dataset,
    load_dataset,
    make_windows,
    shipped_policy_path,
)
from ctflow_gym.refine import load_refiner, local_pairs
from ctflow_gym.refine.evaluation import evaluate_refinement, held_out_windows
from ctflow_gym.refine.neighbours import nearest_neighbours, recall, resolve_index
from ctflow_gym.replay import closed_loop_returns
from ctflow_gym.timing import peak_rss_mb

SECTIONS = ("fit", "pairs", "gain", "replay", "build")
DEPENDS = {  # the settings each section's result depends on: a change of another setting keeps it
    "fit": ("dataset", "fit_steps", "window"),
    "pairs": ("dataset", "fit_steps", "window", "subset_windows", "recall_queries"),
    "gain": ("gain_dataset", "fit_steps", "window", "gain_windows"),
    "replay": ("dataset", "fit_steps", "window", "replay_windows", "tracked_windows"),
    "build": ("build_steps",),
}
STAGES = ("ae_steps", "flow_steps", "predictor_steps", "value_steps", "inverse_dynamics_steps")


@dataclasses.dataclass
class ScaleSettings(Settings):
    threads: int = option(torch.get_num_threads(), "torch threads (default: torch's own, as the committed run)")
    dataset: str | None = option(None, "the big dataset's path (required)")
    work: str = option("/tmp/ctflow_scale/work", "the sections' results and the big refiner")
    sections: tuple[str, ...] = option(SECTIONS, "sections to run", choices=SECTIONS)
    redo: bool = option(False, "run finished sections again")
    fit_steps: int | None = option(None, "training steps of every fit stage (default: the package's)")
    window: int = option(16, "window length H")
    subset_windows: int = option(100_000, "windows of the exact-against-approximate pair search")
    recall_queries: int = option(2000, "random query windows of the recall at all windows")
    gain_dataset: str = option(DEFAULT_DATASET_ID, "the dataset of the exact-against-approximate fits")
    gain_windows: int = option(500, "held-out windows of the gain section")
    replay_windows: int = option(20_000, "windows replayed open loop")
    tracked_windows: int = option(2000, "windows of the tracked evaluation")
    build_steps: int = option(40_000, "steps of the dataset built by 1 and 2 workers")
    processes: bool = option(True, "each section in a fresh process (--no-processes: in this one, for trials)")
    child: str | None = option(None, "(internal) run this one section", choices=SECTIONS)


def budget(s: ScaleSettings) -> dict:
    return {} if s.fit_steps is None else dict.fromkeys(STAGES, s.fit_steps)


def section_fit(s: ScaleSettings) -> dict:
    dataset = load_dataset(s.dataset)
    started = time.perf_counter()
    refiner = TrajectoryRefiner(window=s.window, seed=0, **budget(s)).fit(dataset, progress_bar=False)
    seconds = time.perf_counter() - started
    refiner.save(Path(s.work) / "refiner_big")
    info = refiner.fit_info
    return {
        "transitions": int(dataset.total_steps),
        "episodes": int(dataset.total_episodes),
        **{key: info[key] for key in ("windows", "train_windows", "pairs")},
        "fit_seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "stage_seconds": info["stage_seconds"],
        "stage_peak_rss_mb": info["peak_rss_mb"],
    }


def section_pairs(s: ScaleSettings) -> dict:
    refiner = load_refiner(Path(s.work) / "refiner_big")
    windows, codec, h = make_windows(load_dataset(s.dataset), window=s.window), refiner.codec, s.window
    chunks = [slice(i, i + 65536) for i in range(0, len(windows), 65536)]
    with torch.no_grad():  # standardised latents, as the refiner's fit pairs them
        latents = np.concatenate(
            [
                codec.encode(*codec.normalized_tensors(windows.observations[c], windows.actions[c])).numpy()
                for c in chunks
            ]
        )
    feedback, ids, starts = windows.rewards.sum(axis=1), windows.episode_ids, windows.start_steps
    margin, k = 0.1 * float(np.std(feedback)), refiner.config.k
    result = {"windows": len(latents), "k": k, "latent_dim": latents.shape[1]}

    def timed_pairs(part: slice, index: str) -> dict:
        started = time.perf_counter()
        pairs = local_pairs(latents[part], feedback[part], ids[part], starts[part], h, k, margin, index=index)
        return {"seconds": time.perf_counter() - started, "pairs": len(pairs)}

    result["all"] = {"index": resolve_index("ivf", len(latents)), **timed_pairs(slice(None), "ivf")}
    queries = np.sort(np.random.default_rng(0).choice(len(latents), min(s.recall_queries, len(latents)), replace=False))
    exact, _ = nearest_neighbours(latents, ids, starts, h, k, index="exact", queries=queries)
    approximate, _ = nearest_neighbours(latents, ids, starts, h, k, index="ivf", queries=queries)
    result["all"]["recall_at_k_sampled"] = recall(approximate, exact)
    part = slice(0, min(s.subset_windows, len(latents)))
    result["subset"] = {"windows": part.stop, **{index: timed_pairs(part, index) for index in ("exact", "ivf")}}
    found = {i: nearest_neighbours(latents[part], ids[part], starts[part], h, k, index=i)[0] for i in ("exact", "ivf")}
    result["subset"]["recall_at_k"] = recall(found["ivf"], found["exact"])
    return result


def section_gain(s: ScaleSettings) -> dict:
    dataset, result, fitted = load_dataset(s.gain_dataset), {}, {}
    for index in ("exact", "ivf"):
        started = time.perf_counter()
        config = dict(window=s.window, seed=0, neighbour_index=index, **budget(s))
        refiner = fitted[index] = TrajectoryRefiner(**config).fit(dataset, progress_bar=False)
        report = evaluate_refinement(
            refiner, held_out_windows(refiner, dataset, s.gain_windows, seed=0), validity=False
        )
        result[index] = {
            **{key: refiner.fit_info[key] for key in ("train_windows", "pairs")},
            "pair_seconds": refiner.fit_info["stage_seconds"]["pairs"],
            "fit_seconds": time.perf_counter() - started,
            "realized_gain": report["realized_gain"],
            "proxy_gain": report.get("proxy_gain"),
        }
    exact, approximate = (
        set(zip(fitted[i].pairs.sources.tolist(), fitted[i].pairs.targets.tolist())) for i in ("exact", "ivf")
    )
    result["shared_pair_fraction"] = len(exact & approximate) / max(len(exact), 1)
    return result


def section_replay(s: ScaleSettings) -> dict:
    windows = make_windows(load_dataset(s.dataset), window=s.window)
    rng = np.random.default_rng(1)
    some = windows.subset(np.sort(rng.choice(len(windows), min(s.replay_windows, len(windows)), replace=False)))
    tracked = some.subset(slice(0, min(s.tracked_windows, len(some))))
    refiner = load_refiner(Path(s.work) / "refiner_big")
    result = {"open_loop_windows": len(some), "tracked_windows": len(tracked)}
    for workers in (1, 2):
        started = time.perf_counter()
        returns, _, _ = closed_loop_returns(
            "Hopper-v5", some.sim_states, some.actions, some.sim_state_spec, workers=workers
        )
        result[f"open_loop_workers{workers}"] = {
            "seconds": time.perf_counter() - started,
            "returns_sum": float(returns.sum()),
        }
        started = time.perf_counter()
        report = evaluate_refinement(refiner, tracked, execution="tracked", validity=False, workers=workers)
        gain = report["realized_gain"]["mean"]
        result[f"tracked_workers{workers}"] = {"seconds": time.perf_counter() - started, "realized_gain": gain}
    return result


def section_build(s: ScaleSettings) -> dict:
    result = {"steps": s.build_steps, "shards": 2}
    with tempfile.TemporaryDirectory() as root:
        for workers in (1, 2):
            started = time.perf_counter()
            config = BuildConfig(
                kind="medium", policy=str(shipped_policy_path("medium")), n_steps=s.build_steps, shards=2,
                workers=workers, seed=5, root=f"{root}/w{workers}", progress_bar=False,
            )  # fmt: skip
            dataset = load_dataset(build_dataset(config))
            first = float(next(dataset.iterate_episodes()).actions.sum())
            result[f"workers{workers}"] = {"seconds": time.perf_counter() - started, "first_actions_sum": first}
    return result


def main(argv: list[str] | None = None) -> Path | None:
    s = parse(ScaleSettings, argv)
    if s.dataset is None:
        raise SystemExit("--dataset: the big dataset's path is required (see --help for how to build it)")
    runs, recorded = Runs(Path(s.work)), s.recorded()
    settings = {name: {key: recorded[key] for key in DEPENDS[name]} for name in SECTIONS}
    compute = {name: (lambda name=name: globals()[f"section_{name}"](s)) for name in SECTIONS}
    if s.child:  # one section, in this (fresh) process
        runs.put(s.child, {**settings[s.child], **compute[s.child]()})
        return None
    for section in s.sections:
        if s.redo or runs.get(section, settings[section]) is None:
            if s.processes:
                subprocess.run([sys.executable, __file__, *shlex.split(s.command)[2:], "--child", section], check=True)
            else:
                runs.put(section, {**settings[section], **compute[section]()})
    results = {name: run for name in SECTIONS if (run := runs.get(name, settings[name])) is not None}
    data = {"meta": s.recorded(), **results}
    if "pairs" in results:
        data["pairs_1M_windows_seconds"] = results["pairs"]["all"]["seconds"]
        data["pairs_1M_windows_recall_at_k"] = results["pairs"]["all"]["recall_at_k_sampled"]
    if "fit" in results:
        data["fit_1M_transitions_peak_rss_gib"] = results["fit"]["peak_rss_mb"] / 1024
    title = "Scale: pairs at a million windows, a refiner fit on a million transitions, workers"
    return write_results(s, "scale", data, "scale", title)


if __name__ == "__main__":
    main()
