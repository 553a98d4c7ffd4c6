"""GTP's training, watched: learning curves and the quantities that explain seed variance.

Usage::

    python benchmarks/gtp_diagnostics.py [--seeds 0 1 2] [--steps 50000] [--eval-every 5000]
        [--episodes 10] [--envs 10] [--action-candidates 50] [--tau-sampling grid] [--schedule-max-steps 1280]
        [--work /tmp/ctflow_gtp] [--out benchmarks/results]

Each seed trains ``GTPAgent`` (package defaults: the GTP paper's hopper-medium-replay
row, eta 5, lr 3e-4, gradient-norm clip 4) on the shipped dataset for ``--steps``
gradient steps, in one ``learn`` call (so the noise-level schedule of Eq. 76 is planned
for the whole run), checkpointed every ``--eval-every`` steps into ``--work``: an
interrupted run resumes where its last checkpoint was. Every ``--eval-every`` steps the
policy is evaluated as ``predict(deterministic=True)`` acts (the best of
``--action-candidates`` samples by Q, from seeded start noise) with K = 5 (the agent's
default) and K = 2 flow-map jumps (Karras' times, the paper's), with K = 2 at its stop
fitted to the trained map (``GTPAgent.fit_sampling_times``: refitted at every
evaluation, its t_mid and distances recorded), and as one sample a_T ~ N(0, T^2 I) per
action (stochastic, N = 1: the paper's Eq. 15 as printed) with K = 5 and K = 2,
``--episodes`` episodes in ``--envs`` envs at once (seeded with the agent's seed + the
step). Training metrics (averaged over 1000 steps) are kept: critic loss, Q of the data
actions, TD error, advantage statistics, the advantage weights (mean, max, fraction at
the clip), saturation of the policy's actions, consistency and flow losses, gradient
norms. The score of a run is the mean of its last 5 evaluations (D4RL-normalised), as
the offline RL literature reports.

Writes ``gtp_diagnostics.md`` / ``.json`` and ``gtp_diagnostics.png`` (score and
diagnostics against steps, one line per seed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from common import (
    machine_info,
    markdown_table,
    seed_statistics,
    write_atomic,
    write_results,
)  # benchmarks/ is the script's folder

from agents import GTPAgent, GTPConfig
from agents.gtp.schedule import sampling_times
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

WATCHED = (
    "critic_loss",
    "q_mean",
    "td_error",
    "advantage_std",
    "advantage_positive_fraction",
    "weight_mean",
    "weight_max",
    "weight_clipped_fraction",
    "weight_ess_fraction",
    "policy_action_saturation",
    "consistency_loss",
    "flow_loss",
    "critic_grad_norm",
    "actor_grad_norm",
)


class MetricsFile:
    """A run logger that keeps every logged record in a JSON file (one entry per step, the last kept)."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}

    def log(self, metrics: dict, step: int | None = None) -> None:
        """Merge ``metrics`` into the record of ``step`` and write the file (atomically)."""
        self.records.setdefault(str(step), {}).update({k: float(v) for k, v in metrics.items()})
        write_atomic(self.path, json.dumps(self.records))

    def log_image(self, *args, **kwargs) -> None:
        """No images here."""

    def update_config(self, values: dict) -> None:
        """Nothing to record."""

    def finish(self) -> None:
        """Nothing to close."""


class WallClock:
    """Wall seconds of a run over all its calls, kept in a JSON file (saved at each evaluation).

    ``save()`` returns the total, or None when the run started before the file existed
    (its earlier calls were not timed). A call interrupted between saves loses the time
    since the last one (at most one evaluation interval).
    """

    def __init__(self, path: Path, fresh: bool):
        self.path = path
        state = json.loads(path.read_text()) if path.exists() and not fresh else {"seconds": 0.0, "complete": fresh}
        self.before, self.complete = state["seconds"], state["complete"]
        self.started = time.perf_counter()

    def save(self) -> float | None:
        """Write and return the run's wall seconds so far (None: not timed from its start)."""
        seconds = self.before + time.perf_counter() - self.started
        write_atomic(self.path, json.dumps({"seconds": seconds, "complete": self.complete}))
        return seconds if self.complete else None


def run_seed(dataset, seed: int, args, folder: Path | None = None, **agent_options) -> dict:
    """Train (or resume) one seed in ``folder`` (default ``args.work/seed<k>``); returns its curve and metrics.

    ``args`` needs ``steps``, ``eval_every``, ``episodes``, ``envs``, ``tau_sampling`` and
    ``action_candidates``; ``agent_options`` are further :class:`GTPConfig` fields (``eta=0``: GTP-BC).
    With ``args.keep_every`` (optional, a multiple of ``eval_every``), a copy of the checkpoint
    is kept every that many steps as ``model_<step>`` (for probes of the training's
    course, e.g. ``gtp_loss_balance.py``).
    """
    folder = Path(args.work) / f"seed{seed}" if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metrics = MetricsFile(folder / "metrics.json")
    agent = GTPAgent(
        dataset.env_spec.id,
        dataset,
        seed=seed,
        tau_sampling=args.tau_sampling,
        action_candidates=args.action_candidates,
        **agent_options,
    )

    clock = WallClock(folder / "wall.json", fresh=not (folder / "model").exists())
    keep_every = getattr(args, "keep_every", 0)

    def evaluate_more(local_vars, global_vars) -> bool:
        step = agent.num_timesteps
        if step % args.eval_every:
            return True
        clock.save()
        if keep_every and step % keep_every == 0:  # the checkpoint of this step is written already
            keep_snapshot(folder / "model", folder / f"model_{step}")
        record = metrics.records.get(str(step), {})
        karras = sampling_times(2, agent.config.max_time, agent.config.min_time)
        scores = {}
        if "eval_k2/normalized_score" not in record:
            k2 = agent.evaluate(args.episodes, n_envs=args.envs, sampling_times=karras)
            scores["eval_k2/normalized_score"] = k2["normalized_score"]
            for steps, key in ((5, "eval_stochastic"), (karras, "eval_stochastic_k2")):
                options = {"sampling_steps": steps} if isinstance(steps, int) else {"sampling_times": steps}
                one = agent.evaluate(
                    args.episodes, n_envs=args.envs, deterministic=False, action_candidates=1, **options
                )
                scores[f"{key}/normalized_score"] = one["normalized_score"]
            scores.update({f"consistency/{k}": v for k, v in agent.flow_map_consistency().items()})
        if "eval_k2_fitted/normalized_score" not in record:
            fit = agent.fit_sampling_times((2,))[2]
            fitted = agent.evaluate(args.episodes, n_envs=args.envs, sampling_times=fit.times)
            scores["eval_k2_fitted/normalized_score"] = fitted["normalized_score"]
            scores.update({"fitted_k2/t_mid": fit.times[1], "fitted_k2/distance": fit.distance})
            scores["fitted_k2/karras_distance"] = fit.start_distance
        if scores:
            metrics.log(scores, step=step)
        return True

    started = time.perf_counter()
    agent.learn(
        args.steps,
        callback=evaluate_more,
        log_interval=1000,
        eval_freq=args.eval_every,
        n_eval_episodes=args.episodes,
        n_eval_envs=args.envs,
        checkpoint_path=folder / "model",
        checkpoint_freq=args.eval_every,
        resume=True,
        run_logger=metrics,
    )
    curve = []
    for entry in agent.eval_history:
        record = metrics.records[str(entry["step"])]
        point = {"step": entry["step"], "k5": entry["normalized_score"], "k2": record["eval_k2/normalized_score"]}
        for key, name in (("eval_stochastic", "stochastic_k5"), ("eval_stochastic_k2", "stochastic_k2")):
            if f"{key}/normalized_score" in record:
                point[name] = record[f"{key}/normalized_score"]
        if "eval_k2_fitted/normalized_score" in record:
            point["k2_fitted"] = record["eval_k2_fitted/normalized_score"]
            point.update(
                {f"fitted_k2_{k.split('/', 1)[1]}": v for k, v in record.items() if k.startswith("fitted_k2/")}
            )
        point.update({k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("consistency/")})
        curve.append(point)
    train = {
        int(step): {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("train/")}
        for step, record in metrics.records.items()
    }
    return {
        "seed": seed,
        "curve": curve,
        "train": {str(step): values for step, values in sorted(train.items()) if values},
        "score_k5": float(np.mean([c["k5"] for c in curve[-5:]])),
        "score_k2": float(np.mean([c["k2"] for c in curve[-5:]])),
        "score_k2_fitted": float(np.mean([c.get("k2_fitted", np.nan) for c in curve[-5:]])),
        "score_stochastic_k5": float(np.mean([c.get("stochastic_k5", np.nan) for c in curve[-5:]])),
        "score_stochastic_k2": float(np.mean([c.get("stochastic_k2", np.nan) for c in curve[-5:]])),
        "this_call_seconds": time.perf_counter() - started,
        "wall_seconds": clock.save(),
        "critic_ensemble": agent.config.critic_ensemble,
    }


def critics_of(run: dict, folder: Path) -> int:
    """The critic count a stored seed was trained with: its ``run.json``'s, else its checkpoint's.

    Runs and checkpoints stored before the count was recorded count as ``GTPConfig.BEFORE_RECORDED``
    says (one critic, then the default).
    """
    if "critic_ensemble" in run:
        return run["critic_ensemble"]
    checkpoint = folder / "model" / "checkpoint.json"
    config = json.loads(checkpoint.read_text())["config"] if checkpoint.exists() else {}
    return {**GTPConfig.BEFORE_RECORDED, **config}["critic_ensemble"]


def keep_snapshot(model: Path, snapshot: Path) -> None:
    """Copy the checkpoint folder ``model`` to ``snapshot`` (whole or not at all); an existing one stays."""
    if snapshot.exists():
        return
    partial = snapshot.with_name(f".{snapshot.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(model, partial)
    partial.rename(snapshot)


K_SCAN = (1, 2, 3, 5, 8, 12)


def k_scan(folder: Path, episodes: int, envs: int, dataset) -> dict:
    """The trained policy at K = 1..12 map steps with Karras' times, and at K = 2 with its fitted stop.

    Each as ``predict(deterministic=True)`` acts, and as one sample per action.
    """
    agent = GTPAgent.load(folder / "model", dataset=dataset)
    cfg = agent.config
    plans = {f"K={k}": sampling_times(k, cfg.max_time, cfg.min_time) for k in K_SCAN}
    plans["K=2 fitted"] = agent.fit_sampling_times((2,))[2].times
    scan = {}
    for name, times in plans.items():
        for mode, options in (("deterministic", {}), ("stochastic", {"deterministic": False, "action_candidates": 1})):
            result = agent.evaluate(episodes, seed=123, n_envs=envs, sampling_times=times, **options)
            scan[f"{mode} {name}"] = {"score": result["normalized_score"], "std": result["normalized_score_std"]}
    return scan


def plot(runs: list[dict], path: Path) -> None:
    """Score (K=5 solid, K=2 dashed) and four diagnostics against steps, one colour per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ("score", "q_mean", "td_error", "weight_clipped_fraction", "advantage_positive_fraction", "flow_loss")
    figure, axes = plt.subplots(2, 3, figsize=(15, 8))
    for i, run in enumerate(runs):
        colour = f"C{i}"
        steps = [c["step"] for c in run["curve"]]
        axes[0, 0].plot(steps, [c["k5"] for c in run["curve"]], colour, label=f"seed {run['seed']} K=5")
        axes[0, 0].plot(steps, [c["k2"] for c in run["curve"]], colour, linestyle="--", label=f"seed {run['seed']} K=2")
        stochastic = [c.get("stochastic_k5", np.nan) for c in run["curve"]]
        axes[0, 0].plot(steps, stochastic, colour, linestyle=":", label=f"seed {run['seed']} K=5 stochastic")
        train_steps = sorted(int(s) for s in run["train"])
        for ax, name in zip(axes.flat[1:], panels[1:]):
            ax.plot(train_steps, [run["train"][str(s)].get(name, np.nan) for s in train_steps], colour)
    for ax, name in zip(axes.flat, panels):
        ax.set_title("D4RL score (last-5 mean reported)" if name == "score" else name)
        ax.set_xlabel("gradient step")
    axes[0, 0].legend(fontsize=7)
    figure.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    figure.savefig(tmp, dpi=80)
    tmp.replace(path)
    plt.close(figure)


def seed_summary(scores: list[float], seeds: list[int]) -> str:
    """'median m, mean m, std s' of per-seed scores (:func:`common.seed_statistics`).

    Seeds without the score (nan: their code version did not record it) are left out,
    and then the seeds it covers are named.
    """
    kept = [(seed, score) for seed, score in zip(seeds, scores) if not np.isnan(score)]
    if not kept:
        return "not recorded"
    stats = seed_statistics([score for _, score in kept])
    text = f"median {stats['median']:.1f}, mean {stats['mean']:.1f}, std {stats['std']:.1f}"
    return text if len(kept) == len(scores) else f"{text} (seeds {', '.join(str(seed) for seed, _ in kept)})"


def markdown(runs: list[dict], meta: dict) -> str:
    """Per-seed scores and the diagnostics at the end of training."""
    rows = []
    for run in runs:
        last = run["train"][max(run["train"], key=int)]
        rows.append(
            [
                str(run["seed"]),
                f"{run['score_k5']:.1f}",
                f"{run['score_k2']:.1f}",
                f"{run.get('score_k2_fitted', float('nan')):.1f}",
                f"{run.get('score_stochastic_k5', float('nan')):.1f}",
                f"{run.get('score_stochastic_k2', float('nan')):.1f}",
            ]
            + [f"{last.get(name, float('nan')):.3g}" for name in WATCHED]
        )
    summary = "; ".join(
        f"{label}: {seed_summary([r.get(key, float('nan')) for r in runs], [r['seed'] for r in runs])}"
        for label, key in (
            ("K=5", "score_k5"),
            ("K=2", "score_k2"),
            ("K=2 fitted", "score_k2_fitted"),
            ("K=5 stochastic", "score_stochastic_k5"),
            ("K=2 stochastic", "score_stochastic_k2"),
        )
    )
    candidates = meta.get("action_candidates")
    if candidates is None:  # runs of the code before action candidates
        acting = "Deterministic starts from a_T = 0 (the prior's mean; what `predict(deterministic=True)` did then)"
    else:
        acting = (
            f"Deterministic is `predict(deterministic=True)`: the best of N = {candidates} samples by the target "
            "critic's min Q, from start noise seeded anew at every call"
        )
    acting += "; stochastic is one sample a_T ~ N(0, T^2 I) per action (N = 1, the GTP paper's Eq. 15)."
    return "\n".join(
        [
            "# GTP training, watched (learning curves and diagnostics)",
            "",
            (
                f"GTPAgent (package defaults except as named: tau_sampling {meta['tau_sampling']!r}, "
                f"schedule_max_steps {meta.get('schedule_max_steps', 1280)}, eta {meta.get('eta', 5.0)}, "
                f"max_weight {meta.get('max_weight', 100.0)}, teacher_ema {meta.get('teacher_ema')}, "
                f"critic_ensemble {meta.get('critic_ensemble', 1)}) "
                f"on `{meta['dataset']}`, "
                f"{meta['steps']} gradient steps, seeds "
                f"{meta['seeds']}; evaluation every {meta['eval_every']} steps ({meta['episodes']} episodes in "
                f"{meta['envs']} envs); score = mean of the last 5 evaluations. Machine: {meta['machine']}."
            ),
            "",
            summary + ".",
            "",
            acting,
            "",
            markdown_table(
                ["seed", "score K=5", "score K=2", "score K=2 fitted", "score K=5 stochastic", "score K=2 stochastic"]
                + list(WATCHED),
                rows,
            ),
            "",
            (
                "Diagnostics are the training means over the last 1000 steps; nan: not recorded by the code "
                "version the seed was trained with. Curves: `gtp_diagnostics.png`."
            ),
            "",
            *k_scan_section([run for run in runs if "k_scan" in run], acting),
        ]
    )


def k_scan_section(runs: list[dict], acting: str) -> list[str]:
    """The K scan's table, or one line saying it was not run (``--report-only`` on runs without it)."""
    title = "## The final policy at other K (20 episodes, reset seeds 123.., D4RL score)"
    if not runs:
        return [title, "", "Not run for these seeds (the scan runs after training, unless --report-only).", ""]
    names = [f"K={k}" for k in K_SCAN] + ["K=2 fitted"]
    cell = lambda run, key: f"{run['k_scan'][key]['score']:.1f}" if key in run["k_scan"] else "-"  # noqa: E731
    rows = [
        [str(run["seed"])]
        + [cell(run, f"deterministic {name}") for name in names]
        + [cell(run, f"stochastic {name}") for name in names]
        for run in runs
    ]
    header = ["seed", *[f"det {name}" for name in names], *[f"sto {name}" for name in names]]
    note = "K = 1..12 with Karras' times; K = 2 fitted: its stop fitted to the trained map (-: not run then)."
    return [title, "", acting, note, "", markdown_table(header, rows), ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--work", default="/tmp/ctflow_gtp")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument(
        "--tau-sampling", default="grid", choices=["grid", "time", "grid_zero"], help="GTPConfig.tau_sampling"
    )
    parser.add_argument(
        "--schedule-max-steps",
        type=int,
        default=GTPConfig.schedule_max_steps,
        help="GTPConfig.schedule_max_steps, s1 of Eq. 76 (the paper: 1280)",
    )
    parser.add_argument("--eta", type=float, default=GTPConfig.eta, help="GTPConfig.eta, the advantage temperature")
    parser.add_argument(
        "--max-weight", type=float, default=GTPConfig.max_weight, help="GTPConfig.max_weight, the weights' clip"
    )
    parser.add_argument(
        "--teacher-ema", type=float, default=None, help="GTPConfig.teacher_ema (default None: the shared ema)"
    )
    parser.add_argument(
        "--critic-ensemble",
        type=int,
        default=GTPConfig.critic_ensemble,
        help="GTPConfig.critic_ensemble, critics ranking by their mean (default: the package's, 5; 1: the paper's)",
    )
    parser.add_argument(
        "--action-candidates",
        type=int,
        default=GTPConfig.action_candidates,
        help="GTPConfig.action_candidates, N of predict(deterministic=True) (default: the package's)",
    )
    parser.add_argument(
        "--keep-every",
        type=int,
        default=0,
        help="keep a copy of the checkpoint every N steps (multiple of --eval-every)",
    )
    parser.add_argument("--report-only", action="store_true", help="summarise the seeds in --work, train nothing")
    args = parser.parse_args()
    dataset = load_dataset(DEFAULT_DATASET_ID)
    runs = []
    for seed in args.seeds:
        run_file = Path(args.work) / f"seed{seed}" / "run.json"
        if run_file.exists():
            run = json.loads(run_file.read_text())
            critics = critics_of(run, run_file.parent)
            if critics != args.critic_ensemble:  # never relabel a seed's critic count
                parser.error(
                    f"--critic-ensemble {args.critic_ensemble}: {run_file.parent} was trained with "
                    f"{critics} critic(s); pass that, or another --work"
                )
        elif args.report_only:
            continue
        else:
            run = run_seed(
                dataset,
                seed,
                args,
                schedule_max_steps=args.schedule_max_steps,
                eta=args.eta,
                max_weight=args.max_weight,
                teacher_ema=args.teacher_ema,
                critic_ensemble=args.critic_ensemble,
            )
            write_atomic(run_file, json.dumps(run))
        if "k_scan" not in run and not args.report_only:
            run["k_scan"] = k_scan(run_file.parent, 2 * args.episodes, args.envs, dataset)
            write_atomic(run_file, json.dumps(run))
        runs.append(run)
    meta = {
        "dataset": DEFAULT_DATASET_ID,
        "steps": args.steps,
        "seeds": [r["seed"] for r in runs],
        "eval_every": args.eval_every,
        "episodes": args.episodes,
        "envs": args.envs,
        "tau_sampling": args.tau_sampling,
        "schedule_max_steps": args.schedule_max_steps,
        "eta": args.eta,
        "max_weight": args.max_weight,
        "teacher_ema": args.teacher_ema,
        "critic_ensemble": args.critic_ensemble,
        "action_candidates": args.action_candidates,
        "machine": machine_info(),
    }
    out = Path(args.out)
    write_results(out, "gtp_diagnostics", {"meta": meta, "runs": runs}, markdown(runs, meta), indent=None)
    plot(runs, out / "gtp_diagnostics.png")
    print((out / "gtp_diagnostics.md").read_text())


if __name__ == "__main__":
    main()
