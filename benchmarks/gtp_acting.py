"""How GTP acts, on one dataset: its trained checkpoints scored with N candidates and K flow-map steps.

GTP acts with the best of N = ``action_candidates`` samples by its target critic (the paper's
evaluation, Diffusion-QL's code; N = 50 by default); N = 1 is the policy alone, Eq. 15 as printed.
The critic's choice can only help where the critic knows the actions the flow proposes: on a wide
(replay) dataset it picked the good samples (the Results page's "Why the critic decides"), on
one policy's narrow data it may prefer actions the data never held. This script scores the
checkpoints a ``gtp_vs_peers.py`` curve run left in its work folder
(``<work>/<name>/gtp/seed<k>/model``) at every N of ``--candidates`` and K of
``--sampling-steps``: K = 2 at the agent's own (fitted) stop, as ``predict`` acts, not at the
Karras stop of the curve's ``score_K=2``. ``--pessimism`` adds, for every N > 1, the cells whose
candidates are ranked by the critics' mean less beta times their spread (GTP's ``candidate_pessimism``).

Each cell is evaluated as ``learn`` evaluates (``evaluate(n_envs=--envs)``, resets seeded with the
agent's seed plus its step count), so every cell of a seed plays the same start states and the
N = 50, K = 5 cell repeats the run's own last evaluation. One cached run per seed
(``<out>/<name>_runs``); a checkpoint that has moved on (another step count) is scored again, and
a seed whose checkpoint is gone (a cleared work folder) keeps its stored run, so the results can
be rewritten on any machine.

    python benchmarks/gtp_acting.py --dataset ctflow/walker2d/medium-v1 \\
        --runs /tmp/ctflow_gtp_vs_peers/flow_agents_walker2d_medium_24k
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gtp_vs_peers import seed_statistics
from harness import Runs, Settings, option, parse, write_results

from agents import load_agent
from ctflow_gym.checkpoint import META_FILE, read_checkpoint_meta
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset


@dataclasses.dataclass
class ActingSettings(Settings):
    dataset: str = option(DEFAULT_DATASET_ID, "Minari dataset id or path (the runs' dataset)")
    runs: str = option("", "a gtp_vs_peers work folder, <work>/<name>, holding gtp/seed<k>/model")
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds")
    candidates: tuple[int, ...] = option((1, 5, 50), "N: samples per state the critic chooses from")
    sampling_steps: tuple[int, ...] = option((5, 2), "K: flow-map steps per sample")
    pessimism: tuple[float, ...] = option(
        (0.0,), "beta: candidates ranked by the critics' mean less beta times their spread (N > 1 only)"
    )
    episodes: int = option(10, "episodes per cell")
    envs: int = option(10, "evaluation envs (vectorised)")
    name: str | None = option(None, "result file name (default gtp_acting_<the runs folder's name>)")


PESSIMISM_BEFORE = {"pessimism": [0.0]}
"""How runs stored before ``--pessimism`` existed were made: ranked by the critics' mean."""


def cell(candidates: int, steps: int, pessimism: float = 0.0) -> str:
    """A score's key: ``N=<candidates> K=<steps>``, and `` beta=<pessimism>`` where it is not 0."""
    return f"N={candidates} K={steps}" + (f" beta={pessimism:g}" if pessimism else "")


def cells(s: ActingSettings) -> list[tuple[int, int, float]]:
    """The (N, K, beta) of every cell, K-major; beta > 0 only where there is a choice (N > 1)."""
    betas = lambda n: s.pessimism if n > 1 else (0.0,)  # noqa: E731
    chosen = [(n, k, b) for k in s.sampling_steps for n in s.candidates for b in betas(n)]
    return list(dict.fromkeys(chosen))


def score_seed(model: Path, dataset, s: ActingSettings) -> dict:
    """Every (N, K, beta) cell of one checkpoint: D4RL scores, the same start states for every cell."""
    agent = load_agent(model, dataset=dataset, device="cpu")
    scores = {}
    for candidates, steps, beta in cells(s):
        options = dict(action_candidates=candidates, sampling_steps=steps, candidate_pessimism=beta)
        scores[cell(candidates, steps, beta)] = agent.evaluate(s.episodes, n_envs=s.envs, **options)["normalized_score"]
    return {"step": agent.num_timesteps, "scores": scores}


def summarize(runs: list[dict]) -> dict:
    """Per cell: the seeds and the seed statistics of the cell's scores (``seed_statistics``), seed order."""
    runs = sorted(runs, key=lambda r: r["seed"])
    cells = list(runs[0]["scores"]) if runs else []
    seeds = [r["seed"] for r in runs]
    return {key: {"seeds": seeds, **seed_statistics([r["scores"][key] for r in runs])} for key in cells}


def main(argv: list[str] | None = None) -> Path:
    """Score what is missing (cached per seed), rewrite the results."""
    s = parse(ActingSettings, argv)
    folder = Path(s.runs)
    if not s.runs:
        raise SystemExit("--runs must name a gtp_vs_peers work folder, <work>/<name>, holding gtp/seed<k>/model")
    for name, values in (("--candidates", s.candidates), ("--sampling-steps", s.sampling_steps)):
        if not values or min(values) < 1:
            raise SystemExit(f"{name} must hold integers >= 1; got {list(values)}")
    if not s.pessimism or min(s.pessimism) < 0:
        raise SystemExit(f"--pessimism must hold numbers >= 0; got {list(s.pessimism)}")
    name = s.name or f"gtp_acting_{folder.name}"
    runs = Runs(Path(s.out) / f"{name}_runs")
    dataset = load_dataset(s.dataset)
    settings = {"candidates": list(s.candidates), "sampling_steps": list(s.sampling_steps)}
    settings.update(episodes=s.episodes, envs=s.envs, dataset=s.dataset, pessimism=list(s.pessimism))
    stored = []
    for seed in s.seeds:
        model, key = folder / "gtp" / f"seed{seed}" / "model", f"seed{seed}"
        if not (model / META_FILE).exists():  # a cleared work folder: its stored run, if there is one
            stored.append(runs.get(key, settings, PESSIMISM_BEFORE))
            if stored[-1] is None:
                raise SystemExit(f"--runs {s.runs!r}: no GTP checkpoint for seed {seed} ({model}) and no stored run")
            continue
        print(f"[gtp_acting] seed {seed}: {len(cells(s))} cells", flush=True)
        stale = lambda run, model=model: run["step"] != read_checkpoint_meta(model, "agent")["num_timesteps"]  # noqa: E731
        compute = lambda model=model, seed=seed: {"seed": seed, **score_seed(model, dataset, s)}  # noqa: E731
        stored.append(runs.run(key, settings, compute, PESSIMISM_BEFORE, stale=stale))
    meta = {**s.recorded(), "env_id": dataset.env_spec.id, "steps": sorted({r["step"] for r in stored})}
    meta["run_commits"] = sorted({r["machine"]["commit"] for r in stored})
    data = {"meta": meta, "summary": summarize(stored), "runs": stored}
    return write_results(s, name, data, "gtp_acting", f"How GTP acts: N candidates and K steps ({folder.name})")


if __name__ == "__main__":
    main()
