"""A user's policy improved from its own rollouts: verified improvement, then BC, against the policy itself.

Goal 3 of the improve-then-extract issue: "the medium policy's own windows (its rollouts,
as a dataset) improved and extracted give a policy above the medium policy's return". The
policy never runs beside a refiner; what reaches it is a dataset. Stages (each a cached run
under ``<out>/<name>_runs/``, so a rerun resumes):

1. the policy alone, deterministic, ``--episodes`` episodes (reset seeds 1000..);
2. CTFlow's ``TrajectoryRefiner`` (defaults) fitted on the policy's rollouts (``--dataset``,
   default ``ctflow/hopper/medium-v1``: the shipped medium policy's stochastic actions;
   ``ctflow dataset build ctflow/hopper/medium-v1`` makes it);
3. its verified improvement (``improve_dataset``, the best realisation of the proposals kept
   and written in place of the window it improved: ``source_steps="unimproved"``) three
   ways: strength 1 judged by the window's own return (the defaults); strength 1 judged by
   the window followed by ``--continuation`` steps of the policy (what the window is worth
   *to that policy*); and every strength of ``--strengths`` proposed, judged the same way
   (larger verified gains, larger changes to the actions); and every strength again with only
   each proposal's first ``--commit-steps`` steps realised before the policy's continuation
   (``commit_steps``: what is verified is then "these few actions, then the policy", a decision
   a reactive policy can take, where a whole window is a better *sequence*); and strength 1
   realised open loop only (``execution="open_loop"``: the refined actions as they are, where
   the default also tries the inverse-dynamics tracking and keeps whichever realises more),
   judged by the window's return and by the window and the continuation;
4. BC (``BCAgent``, FTB's settings but ``--bc-steps``) on the rollouts, filtered BC (top 10%)
   on them, and BC on each improved dataset, ``--seeds`` seeds, ``--episodes`` episodes each
   (reset seeds 1000.., the policy's).

    python benchmarks/policy_improvement.py [--bc-steps 20000] [--seeds 0 1 2] [--episodes 50]

``--learners`` trains only some rows (e.g. ``raw filtered`` in a second process while the
first improves: both share the run cache); a last run with every learner assembles the table.

The same question for logged data without a policy (goal 2, e.g. the shipped Hopper
medium-replay data): ``--top-fraction 0.1 --policy bc`` improves the dataset's best episodes
(filtered BC's data, written as a dataset of their own by ``thin_dataset``), with BC on them as
the policy whose continuation judges each window (the policy row is that BC, seed 0). The
refiner is fitted on the whole dataset (its better neighbours are what it learns from); the
"raw" row is then filtered BC, and there is no separate filtered row.

    python benchmarks/policy_improvement.py --dataset <medium-replay> --top-fraction 0.1 --policy bc
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from harness import Runs, Settings, option, parse, write_results

from agents import BCAgent, KeepBest
from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import load_dataset, normalized_score, thin_dataset
from ctflow_gym.data.actor_policies import behaviour_policy
from ctflow_gym.data.recipes import policy_path
from ctflow_gym.improve import NothingImprovedError, improve_dataset
from ctflow_gym.wrappers.episodes import record_episodes

LEARNERS = ("raw", "filtered", "improved")
"""The rows: BC on the rollouts, filtered BC on them, BC on each improved dataset."""

SATURATED = 0.99
"""An action component beyond this (in absolute value) counts as at the edge of the [-1, 1] box."""

EVALUATION_SEED = 1000
"""Reset seed of the first evaluation episode (the policy's and every extracted policy's)."""


@dataclasses.dataclass
class PolicyImprovementSettings(Settings):
    dataset: str = option("ctflow/hopper/medium-v1", "the policy's rollouts (Minari id or path)")
    policy: str = option(
        "shipped:hopper-medium", "the policy: shipped:NAME, an actor folder, an SB3 zip, or bc (BC on the data)"
    )
    top_fraction: float = option(0.0, "improve only the best episodes holding this fraction of the steps (0: all)")
    window: int = option(16, "the refiner's window (TrajectoryRefiner's default)")
    refiner_steps: int = option(4000, "the refiner's autoencoder, flow and inverse-dynamics steps (its defaults)")
    strengths: tuple[float, ...] = option((1.0, 2.0, 4.0), "refinement strengths proposed per window")
    continuation: int = option(48, "steps of the policy after each window in its verified score")
    commit_steps: int = option(4, "steps of each proposal realised before the continuation (the last variant)")
    bc_steps: int = option(20000, "BC training steps (FTB: 100k; cut for 2 CPU cores)")
    seeds: tuple[int, ...] = option((0, 1, 2), "BC seeds")
    learners: tuple[str, ...] = option(LEARNERS, "rows to train: raw, filtered, improved")
    episodes: int = option(50, "evaluation episodes (the policy's and each BC seed's)")
    work: str = option("/tmp/ctflow_policy_improvement", "where the fitted refiner and the datasets go")
    name: str | None = option(None, "result file name (default policy_improvement_<dataset>[_best<pct>][_bc])")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way of improving the windows (:class:`~ctflow_gym.improve.ImprovementConfig` fields)."""

    strengths: tuple[float, ...]
    continuation: int = 0
    commit_steps: int | None = None
    execution: str = "best"

    def options(self) -> dict:
        """``improve_dataset`` keywords."""
        return {
            "strength": self.strengths,
            "continuation": self.continuation,
            "commit_steps": self.commit_steps,
            "execution": self.execution,
        }

    def settings(self) -> dict:
        """As recorded with its runs (JSON)."""
        return {
            "strengths": list(self.strengths),
            "continuation": self.continuation,
            "commit_steps": self.commit_steps,
            "execution": self.execution,
        }


def _policy(spec: str, env_id: str):
    return behaviour_policy(policy_path(spec), None, env_id, deterministic=True, seed=0)


def closed_loop(env_id: str, policy, episodes: int, env: gym.Env | None = None, seed: int = EVALUATION_SEED) -> dict:
    """Mean and std of the return, D4RL score and falls of ``policy`` in ``episodes`` episodes (reset seeds ``seed``..).

    ``env``: the env to step (default: a new one); a ``RefinedPolicy`` must be run in its own.
    """
    env = gym.make(env_id) if env is None else env
    records = record_episodes(env, policy, episodes, seed=seed)
    returns = [r.episode_return for r in records]
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "score": float(normalized_score(env_id, np.mean(returns))),
        "falls": int(sum(r.terminated for r in records)),
    }


def fitted_refiner(
    runs: Runs, settings: dict, dataset, window: int, steps: int, folder: Path, seed: int = 0, key: str = "fit"
):
    """``(fit record, TrajectoryRefiner)``: the run ``key`` (``seed``, ``steps`` for each part, the predictor half).

    Fitted on ``dataset`` and saved to ``folder`` unless a stored run with ``settings`` and
    the folder are both there (a cleared work folder is refitted).
    """

    def fit() -> dict:
        started = time.time()
        budget = dict(
            ae_steps=steps, flow_steps=steps, predictor_steps=max(steps // 2, 1), inverse_dynamics_steps=steps
        )
        TrajectoryRefiner(window=window, seed=seed, **budget).fit(dataset, progress_bar=False).save(folder)
        return {"fit_seconds": time.time() - started}

    fitted = runs.run(key, settings, fit, stale=lambda _: not folder.exists())
    return fitted, TrajectoryRefiner.load(folder)


def _saturated(path: str) -> float:
    """Fraction of a dataset's action components at the edge of the box (|a| > 0.99; Hopper's box is [-1, 1])."""
    actions = np.concatenate([episode.actions for episode in load_dataset(path).iterate_episodes()])
    return float(np.mean(np.abs(actions) > SATURATED))


def _summary(scores: list[float]) -> dict:
    return {"median": float(np.median(scores)), "min": float(np.min(scores)), "max": float(np.max(scores))}


def selection_settings(s: Settings) -> dict:
    """A benchmark's ``--select-every/--select-episodes/--select-seed`` as its BC runs record them ({}: off).

    Checked before any work (``SystemExit`` naming the flags), not at the first BC hours later.
    Without selection the runs' settings hold none of the three, as before the options existed.
    """
    if s.select_every < 0 or s.select_episodes < 1 or s.select_seed < 0:
        raise SystemExit("--select-every must be >= 0, --select-episodes >= 1 and --select-seed >= 0")
    if not s.select_every:
        return {}
    return {"select_every": s.select_every, "select_episodes": s.select_episodes, "select_seed": s.select_seed}


def train_bc(
    env_id: str, path, seed: int, steps: int, top_fraction: float | None = None, selection: dict | None = None, **config
) -> tuple[BCAgent, dict]:
    """``(agent, what selection chose)``: BC (``seed``, ``steps``, ``config`` fields) on the dataset at ``path``.

    With ``selection`` (:func:`selection_settings`'s dict) the agent is its checkpoint best on the validation
    episodes (:class:`agents.KeepBest`) and the second item holds ``selected_step`` and the ``validation`` history;
    else the last step's agent and ``{}``.
    """
    keep = None
    if selection:
        keep = KeepBest(selection["select_every"], selection["select_episodes"], selection["select_seed"])
    agent = BCAgent(env_id, path, device="cpu", seed=seed, top_fraction=top_fraction, **config)
    agent.learn(steps, callback=keep)
    return agent, {} if keep is None else {"selected_step": keep.best_step, "validation": keep.history}


def best_episodes_path(whole, top_fraction: float, folder: Path) -> str:
    """The path of ``whole``'s best episodes holding ``top_fraction`` of its steps, a dataset under ``folder``.

    Written by ``thin_dataset`` as ``<env>/best-v0`` unless it is there already (a cleared work folder rebuilds it).
    """
    best_id = f"{whole.id.rsplit('/', 1)[0]}/best-v0"
    best_path = folder / best_id
    if not best_path.exists():
        thin_dataset(whole, None, folder, best_id, top_fraction=top_fraction, progress_bar=False)
    return str(best_path)


def bc_policy(env_id: str, path: str, folder: Path, steps: int) -> BCAgent:
    """The policy ``--policy bc`` names: BC (seed 0, ``steps``) on the dataset at ``path``, kept in ``folder``."""
    if not folder.exists():
        train_bc(env_id, path, 0, steps)[0].save(folder)
    return BCAgent.load(folder, env=env_id, device="cpu")


def policy_data(s: Settings, dataset, work: Path) -> str:
    """What ``--policy bc`` learns from: ``dataset``, or its best episodes holding ``top_fraction`` of the steps."""
    return best_episodes_path(dataset, s.top_fraction, work / "datasets") if s.top_fraction else s.dataset


def benchmark_policy(s: Settings, dataset, work: Path) -> tuple[Any, dict, str]:
    """``(policy, the settings naming it, a description)`` of a benchmark's ``--policy``.

    ``s`` has ``policy``, ``dataset``, ``top_fraction`` and ``bc_steps``. ``bc``: logged data
    without a policy of its own, so BC (seed 0, ``bc_steps``) on ``dataset``, or on its best
    episodes holding ``top_fraction`` of the steps (filtered BC), kept under ``work``; anything
    else: ``shipped:NAME``, an actor folder or an SB3 zip, deterministic.
    """
    env_id = dataset.env_spec.id
    if s.policy != "bc":
        return _policy(s.policy, env_id), {}, s.policy
    policy = bc_policy(env_id, policy_data(s, dataset, work), work / "policy_bc", s.bc_steps)
    described = f"BC on the best {s.top_fraction:.0%} of {dataset.id}" if s.top_fraction else f"BC on {dataset.id}"
    return policy, {"policy_bc_steps": s.bc_steps, "top_fraction": s.top_fraction}, described


def main(argv: list[str] | None = None) -> Path:
    s = parse(PolicyImprovementSettings, argv)
    if not 0 <= s.top_fraction <= 1:
        raise SystemExit(f"--top-fraction must be in [0, 1]; got {s.top_fraction}")
    whole = load_dataset(s.dataset)
    env_id = whole.env_spec.id
    name = "policy_improvement_" + whole.id.replace("/", "_").replace("-", "_")
    if s.top_fraction:
        name += f"_best{100 * s.top_fraction:g}".replace(".", "_")
    if s.policy == "bc":  # runs judged by another policy are other runs
        name += "_bc"
    name = s.name or name
    work = Path(s.work) / name
    runs = Runs(Path(s.out) / f"{name}_runs")
    source, source_path = whole, s.dataset
    if s.top_fraction:  # the best episodes, a dataset of their own
        source_path = best_episodes_path(whole, s.top_fraction, work / "datasets")
        source = load_dataset(source_path)
    base = {"dataset": source.id, "policy": s.policy}
    if s.top_fraction:
        base["top_fraction"] = s.top_fraction
    if s.policy == "bc":  # the policy is BC on the data the improvement starts from, seed 0
        policy = bc_policy(env_id, source_path, work / "policy_bc", s.bc_steps)
        base["policy_bc_steps"] = s.bc_steps
    else:
        policy = _policy(s.policy, env_id)

    policy_alone = runs.run("policy", {**base, "episodes": s.episodes}, lambda: closed_loop(env_id, policy, s.episodes))
    fit_settings = {**base, "window": s.window, "refiner_steps": s.refiner_steps}
    fitted = runs.get("fit", fit_settings) or {}
    if "improved" in s.learners:
        fitted, refiner = fitted_refiner(runs, fit_settings, whole, s.window, s.refiner_steps, work / "refiner")
    several = f"strengths {', '.join(f'{x:g}' for x in s.strengths)}"
    after = f"{s.continuation} policy steps"
    improvements = {  # label -> how the windows are improved (the variant's number names its dataset and runs)
        "strength 1, window return": Variant((1.0,)),
        f"strength 1, window + {after}": Variant((1.0,), s.continuation),
        f"{several}, window + {after}": Variant(tuple(s.strengths), s.continuation),
        f"{several}, first {s.commit_steps} steps + {after}": Variant(
            tuple(s.strengths), s.continuation, s.commit_steps
        ),
        "strength 1, window return, open loop only": Variant((1.0,), execution="open_loop"),
        f"strength 1, window + {after}, open loop only": Variant((1.0,), s.continuation, execution="open_loop"),
    }
    earlier = {"commit_steps": None, "execution": "best"}  # what runs stored before these settings existed did
    improved = {}
    for number, (label, variant) in enumerate(improvements.items() if "improved" in s.learners else []):
        dataset_id = f"improved/variant{number}-v0"

        def improve(dataset_id=dataset_id, variant=variant) -> dict:
            try:
                report = improve_dataset(
                    source, refiner, dataset_id, root=work / "datasets", overwrite=True, progress_bar=False,
                    policy=policy, source_steps="unimproved", **variant.options(),
                )  # fmt: skip
            except NothingImprovedError:
                return {"path": None, "accepted": 0}
            return {
                "path": str(report.path),
                "windows": report.windows,
                "accepted": report.accepted,
                "executions": report.executions,
                "realised_gain_accepted": report.realised_gain_accepted,
                "realised_gain_all": report.realised_gain_all,
                "seconds": report.wall_time_s,
            }

        settings = {**fit_settings, **variant.settings()}
        gone = lambda run: run["path"] is not None and not Path(run["path"]).exists()  # noqa: E731
        improved[label] = runs.run(f"improve_variant{number}", settings, improve, earlier, stale=gone)
    learners = {}  # label -> (dataset, top fraction, variant); the improved first: a second process can take the rest
    for label, result in improved.items():
        if result["path"] is not None:  # else no window improved: nothing new to learn from
            learners[f"BC, improved ({label})"] = (result["path"], None, improvements[label])
    if "raw" in s.learners:
        raw = f"BC, best {100 * s.top_fraction:g}% episodes" if s.top_fraction else "BC, rollouts"
        learners[raw] = (source_path, None, None)
    if "filtered" in s.learners and not s.top_fraction:
        learners["filtered BC (top 10%), rollouts"] = (s.dataset, 0.1, None)
    rows = []
    for label, (path, top_fraction, variant) in learners.items():
        results = []
        for seed in s.seeds:

            def train(path=path, top_fraction=top_fraction, seed=seed) -> dict:
                started = time.time()
                agent, _ = train_bc(env_id, path, seed, s.bc_steps, top_fraction)
                report = agent.evaluate(s.episodes, seed=EVALUATION_SEED)
                return {
                    "score": report["normalized_score"],
                    "mean_return": report["mean_return"],
                    "transitions": len(agent.transitions),
                    "seconds": time.time() - started,
                }

            settings = {**base, "learner": label, "seed": seed, "bc_steps": s.bc_steps, "episodes": s.episodes}
            if variant is not None:
                settings.update(fit_settings, **variant.settings())
            key = "bc_" + "".join(c if c.isalnum() else "_" for c in label.lower()).strip("_")
            results.append(runs.run(f"{key}_seed{seed}", settings, train, earlier))
        returns = [r["mean_return"] for r in results]
        rows.append(
            {
                "learner": label,
                "transitions": results[0]["transitions"],
                "returns": returns,
                "scores": [r["score"] for r in results],
                **_summary(returns),
                "above_policy": int(sum(r > policy_alone["mean_return"] for r in returns)),
            }
        )
    rows.sort(key=lambda row: not row["learner"].startswith(("BC, rollouts", "BC, best")))
    rows.sort(key=lambda row: "improved" in row["learner"])  # shown: raw, filtered, then the improved
    source_label = f"best {100 * s.top_fraction:g}% episodes" if s.top_fraction else "rollouts"
    saturated = {source_label: _saturated(source_path)}  # what the extracted policies imitate
    saturated.update({label: _saturated(r["path"]) for label, r in improved.items() if r["path"] is not None})
    data = {
        "meta": {**s.recorded(), "dataset": source.id, "whole_dataset": whole.id, "env_id": env_id},
        "saturated_actions": saturated,
        "policy": policy_alone,
        "fit": fitted,
        "improve": improved,
        "rows": rows,
    }
    title = f"A policy improved from its own rollouts ({s.policy})"
    if s.top_fraction:
        title = f"The best episodes of {whole.id} improved, then extracted (policy: {s.policy})"
    return write_results(s, name, data, "policy_improvement", title)


if __name__ == "__main__":
    main()
