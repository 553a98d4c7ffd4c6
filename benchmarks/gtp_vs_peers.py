"""GTP and GTP-BC next to d3rlpy's IQL and TD3+BC on the same data: scores, learning curves, speed.

Same dataset (the shipped default unless ``--dataset``), batch size, number of gradient
steps and seeds for every method (GTP's Eq. 76 schedule: ``--schedule-max-steps``, recorded
in each run; a stored GTP run counts only under the same value). Sections of the results
(``<out>/<name>.md`` / ``.json`` / ``.png``; ``--name`` defaults to
``gtp_vs_peers_<steps/1000>k``, ``_final`` added when ``--eval-every 0``):

- **Scores.** With ``--eval-every N`` (default 10000) every run is evaluated every N
  gradient steps, ``--episodes`` episodes each, and its score is the mean D4RL score of
  its last 5 evaluations (how the offline RL literature reports). GTP and GTP-BC train
  through ``gtp_diagnostics.run_seed`` (the K = 5 / K = 2 policies as
  ``predict(deterministic=True)`` acts, ``--envs`` envs at once, resets seeded with the
  agent's seed + the step; checkpoints every N steps in ``--work/<method>/seed<k>``, so an
  interrupted run resumes); the peers' evaluations reset with 10000 + seed each time
  (``peer_d3rlpy.py --eval-every``). The table gives median, mean, standard deviation
  (ddof 1) and per-seed scores. With ``--eval-every 0`` each run is evaluated once at the
  end (the first protocol of this benchmark, kept to re-render its results).
- **Learning curves** (``.png``): score against gradient steps per method, the median
  over seeds as a line and the range of the seeds shaded.
- **Speed** (measured once per ``--name``, cached): ``gtp_speed.measure_speed``'s
  interleaved timing of a GTP step, a GTP-BC step and a plain PyTorch TD3+BC step of
  the same sizes (eager and compiled, unless ``--no-compile``), and d3rlpy's IQL and
  TD3+BC training steps/s from short runs (``--speed-steps``) in the same invocation,
  same device and torch threads. The d3rlpy runs are not interleaved with ours: run the
  speed section on an otherwise idle machine (``--speed-only``).
- **Action latency** of the GTP actor at batch 1 and 256 for K = 1, 2, 5 next to a
  plain MLP actor of the same width and depth, and of ``GTPAgent.predict`` on one
  observation with N = 50 and N = 1 candidates (the default acting costs 50 samples).

d3rlpy 2.8 pins gymnasium 1.0.0, so it runs in its own virtual environment that this
script makes (``--peer-venv``, default ``.bench-venvs/d3rlpy``) with torch 2.13.0,
d3rlpy 2.8.1 and gymnasium[mujoco] 1.0.0, and is handed the same transitions as an
``.npz`` (see ``peer_d3rlpy.py``). Our dependencies are untouched.

Every finished run is written to ``<out>/<name>_runs/<method>-seed<k>.json`` and skipped
when the script runs again; the summary is rewritten after every run from what is there.
``--import-gtp REPORT`` stores the seeds of a ``gtp_diagnostics.py`` report made with the
same settings as GTP curve runs (the same training and evaluation, trained there). GTP's
critic count (``--critic-ensemble``, default the package's) is recorded everywhere; a
folder holding results of another count is refused, never mixed.

    python benchmarks/gtp_vs_peers.py                          # 200k steps, curves, 3 seeds, 4 methods
    python benchmarks/gtp_vs_peers.py --steps 50000 --eval-every 0 --report-only   # the first protocol
    python benchmarks/gtp_vs_peers.py --steps 2000 --eval-every 1000 --seeds 0 --out /tmp/smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import (  # benchmarks/ is the script's folder
    RunCache,
    interleaved_timings,
    machine_info,
    markdown_table,
    matches,
    seed_statistics,
    write_atomic,
    write_results,
)
from gtp_diagnostics import run_seed
from gtp_speed import SPEED_HEADER, measure_speed, speed_rows

from agents import GTPConfig, agent_class
from agents.gtp.networks import FlowMapActor, plain_mlp_actor
from agents.gtp.schedule import sampling_times
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_transitions, normalized_score

METHODS = ("gtp", "gtp-bc", "iql", "td3+bc")
BEFORE_RECORDED = GTPConfig.BEFORE_RECORDED
"""Settings of GTP runs stored before the runs recorded them: what checkpoints of that time hold."""
LABELS = {"gtp": "GTP", "gtp-bc": "GTP-BC", "iql": "d3rlpy IQL", "td3+bc": "d3rlpy TD3+BC"}
LAST_EVALUATIONS = 5
"""A run's score is the mean of its last this-many evaluations."""
PEER_REQUIREMENTS = ("d3rlpy==2.8.1", "gymnasium[mujoco]==1.0.0")


def ensure_peer_venv(folder: Path) -> Path:
    """The Python of a venv with d3rlpy (made on first use: torch 2.13.0 first, from local disk)."""
    python = folder / "bin" / "python"
    check = [str(python), "-c", "import d3rlpy, gymnasium.envs.mujoco"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"[peers] creating {folder} (torch==2.13.0, {', '.join(PEER_REQUIREMENTS)})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + list(PEER_REQUIREMENTS), check=True)
    return python


def export_transitions(dataset, path: Path) -> None:
    """The dataset's transitions as the arrays d3rlpy's MDPDataset takes."""
    t = load_transitions(dataset)
    timeouts = (t.episode_ends & (t.terminations == 0)).astype(np.float32)
    np.savez(
        path,
        observations=t.observations,
        actions=t.actions,
        rewards=t.rewards,
        terminals=t.terminations,
        timeouts=timeouts,
    )


def run_gtp(method: str, seed: int, args, env_id: str, dataset) -> dict:
    """Train GTP (eta from the paper's hopper-medium-replay row) or GTP-BC (eta = 0).

    With ``args.eval_every``: through ``gtp_diagnostics.run_seed`` (curve of K = 5 and
    K = 2 scores, K = 2 with Karras' times, checkpoints in ``args.work``); else evaluated
    once at the end, K = 1, 2, 5 as the agent acts (K = 2 at its fitted stop, recorded
    as ``fitted_sampling_steps``).
    """
    eta = 0.0 if method == "gtp-bc" else args.eta
    run = {"method": method, "seed": seed, "steps": args.steps, "batch_size": args.batch_size, "eta": eta}
    critics = args.critic_ensemble if eta > 0 else None  # GTP-BC trains no critic
    run.update(
        action_candidates=args.action_candidates, schedule_max_steps=args.schedule_max_steps, critic_ensemble=critics
    )
    options = dict(eta=eta, batch_size=args.batch_size, device=args.device, schedule_max_steps=args.schedule_max_steps)
    if critics is not None:
        options["critic_ensemble"] = critics
    if args.eval_every:
        folder = Path(args.work) / method / f"seed{seed}"
        trained = run_seed(dataset, seed, args, folder, **options)
        curve = [{"step": c["step"], "score": c["k5"], "score_K=2": c["k2"]} for c in trained["curve"]]
        return {**run, "eval_every": args.eval_every, "curve": curve, "wall_seconds": trained["wall_seconds"]}
    agent = agent_class("gtp")(env_id, dataset, action_candidates=args.action_candidates, seed=seed, **options)
    run["fitted_sampling_steps"] = list(agent.config.fitted_sampling_steps)
    started = time.perf_counter()
    agent.learn(args.steps, progress_bar=args.progress)
    train_seconds = time.perf_counter() - started
    by_steps = {}
    for steps in (1, 2, 5):
        result = agent.evaluate(args.episodes, seed=10_000 + seed, sampling_steps=steps)
        by_steps[f"K={steps}"] = {"returns": result["returns"], "normalized_score": result["normalized_score"]}
    return {
        **run,
        "returns": by_steps["K=5"]["returns"],
        "by_sampling_steps": by_steps,
        "train_seconds": train_seconds,
        "steps_per_second": args.steps / train_seconds,
    }


IMPORT_SETTINGS = ("steps", "eval_every", "eta", "schedule_max_steps", "critic_ensemble", "action_candidates")


def import_gtp_runs(report: Path, args, cache: RunCache, parser: argparse.ArgumentParser) -> None:
    """Store the seeds of a ``gtp_diagnostics`` report as this comparison's GTP curve runs.

    They are the runs this script would make (``gtp_diagnostics.run_seed``: same training,
    same evaluation protocol, the K = 2 row at Karras' times), trained elsewhere, e.g. by
    ``gtp_diagnostics.py`` alone. The report's settings must be this invocation's (else a
    parser error naming them; batch size and the other fields are the package defaults
    there); a seed already stored here is kept. Each imported run names its report.
    """
    data = json.loads(report.read_text())
    meta = data["meta"]
    mine = {k: getattr(args, k) for k in IMPORT_SETTINGS}
    theirs = {k: meta.get(k, BEFORE_RECORDED.get(k)) for k in IMPORT_SETTINGS}
    differing = {k: (theirs[k], mine[k]) for k in IMPORT_SETTINGS if theirs[k] != mine[k]}
    if differing or args.batch_size != GTPConfig.batch_size or meta.get("tau_sampling") != args.tau_sampling:
        parser.error(f"--import-gtp {report}: made with other settings (report, here): {differing or 'batch/tau'}")
    for run in data["runs"]:
        name = f"gtp-seed{run['seed']}"
        if cache.get(name, {}) is not None:
            continue
        curve = [{"step": c["step"], "score": c["k5"], "score_K=2": c["k2"]} for c in run["curve"]]
        settings = {k: mine[k] for k in IMPORT_SETTINGS}
        stored = {"method": "gtp", "seed": run["seed"], "batch_size": args.batch_size, **settings, "curve": curve}
        cache.put(
            name,
            {**stored, "wall_seconds": run["wall_seconds"], "machine": meta["machine"], "imported_from": str(report)},
        )


def run_peer(method: str, seed: int, args, env_id: str, python: Path, data_file: Path, work: Path) -> dict:
    """Run ``peer_d3rlpy.py`` in the peer venv and read its JSON back (scores of its curve normalised)."""
    out = work / f".{method}-seed{seed}.peer.json"
    command = [
        str(python),
        str(Path(__file__).with_name("peer_d3rlpy.py")),
        "--algo",
        method,
        "--data",
        str(data_file),
        "--env",
        env_id,
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(seed),
        "--episodes",
        str(args.episodes),
        "--eval-seed",
        str(10_000 + seed),
        "--device",
        "cuda:0" if args.device.startswith("cuda") else "cpu:0",
        "--eval-every",
        str(args.eval_every),
        "--out",
        str(out),
        *(["--compile-graph"] if getattr(args, "compile_graph", False) else []),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL if not args.progress else None)
    result = json.loads(out.read_text())
    out.unlink()
    run = {"method": method, **{k: v for k, v in result.items() if k not in ("algo", "curve")}}
    run["wall_seconds"] = time.perf_counter() - started
    if args.eval_every:
        run["curve"] = [
            {
                "step": c["step"],
                "score": float(np.mean(normalized_score(env_id, c["returns"]))),
                "returns": c["returns"],
            }
            for c in result["curve"]
        ]
    else:
        run.pop("eval_every", None)
    return run


PREDICT_SETTINGS = ((5, 50), (2, 50), (5, 1), (2, 1))
"""(K, N) pairs whose ``GTPAgent.predict`` latency is measured: the default and the cheaper ones."""


def predict_latency(dataset, device: str, rounds: int, critic_ensemble: int = GTPConfig.critic_ensemble) -> dict:
    """Median microseconds of ``GTPAgent.predict`` on one observation (numpy in and out) per (K, N).

    What the policy costs per env step as a user calls it: normalisation, N candidates of
    K map steps, the critic's choice among them. The agent is untrained (the time does not
    depend on the weights). ``mlp_us``: a plain MLP actor's forward on a tensor, the
    reference the peers' actors cost.
    """
    agent = agent_class("gtp")(dataset.env_spec.id, dataset, seed=0, device=device, critic_ensemble=critic_ensemble)
    observation = np.asarray(dataset.observation_space.sample(), dtype=np.float32)
    mlp = plain_mlp_actor(agent.obs_dim, agent.act_dim).to(device).eval()
    tensor = torch.as_tensor(observation[None], device=device)
    functions = {"mlp": lambda: mlp(tensor).clamp(-1, 1).cpu()}
    for steps, candidates in PREDICT_SETTINGS:
        functions[f"K={steps} N={candidates}"] = lambda steps=steps, candidates=candidates: agent.predict(
            observation, sampling_steps=steps, action_candidates=candidates
        )
    with torch.inference_mode():
        timings = interleaved_timings(functions, rounds)
    return {f"{name}_us": us for name, us in timings.items()}


def action_latency(obs_dim: int, act_dim: int, device: str, rounds: int) -> dict:
    """Median time per action call: the GTP actor with K = 1, 2, 5 and a plain MLP actor."""
    torch.manual_seed(0)
    actor = FlowMapActor(obs_dim, act_dim).to(device).eval()
    mlp = plain_mlp_actor(obs_dim, act_dim).to(device).eval()
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    rows = {}
    for batch in (1, 256):
        obs = torch.randn(batch, obs_dim, device=device)
        noise = torch.randn(batch, act_dim, device=device)
        functions = {"mlp": lambda: (mlp(obs).clamp(-1, 1), sync())}
        for steps in (1, 2, 5):
            times = sampling_times(steps, 80.0, 0.002)
            for mode, start in (("deterministic", None), ("stochastic", noise)):
                functions[f"K={steps}_{mode}"] = lambda times=times, start=start: (
                    actor.sample(obs, times, start).clamp(-1, 1),
                    sync(),
                )
        with torch.inference_mode():
            timings = interleaved_timings(functions, rounds if batch == 1 else max(1, rounds // 10))
        row = {"mlp_us": timings.pop("mlp")}
        for name, us in timings.items():
            row[f"{name}_us"] = us
            row[f"{name}_vs_mlp"] = us / row["mlp_us"]
        rows[f"batch={batch}"] = row
    return rows


def run_scores(run: dict, env_id: str) -> dict[str, float]:
    """A run's scores: ``"score"`` (K = 5 for GTP) and, for GTP runs, ``"score_K=2"`` (and ``"score_K=1"``).

    Runs with a curve: the mean of the last :data:`LAST_EVALUATIONS` evaluations; runs
    without one (``--eval-every 0``): the final evaluation.
    """
    if "curve" in run:
        last = run["curve"][-LAST_EVALUATIONS:]
        return {key: float(np.mean([point[key] for point in last])) for key in last[0] if key.startswith("score")}
    scores = {"score": float(np.mean(normalized_score(env_id, run["returns"])))}
    for key, result in run.get("by_sampling_steps", {}).items():
        if key != "K=5":
            scores[f"score_{key}"] = float(np.mean(normalized_score(env_id, result["returns"])))
    return scores


def wall_minutes(runs: list[dict]) -> float | None:
    """Summed wall minutes of ``runs`` (training time for final-evaluation runs); None if a run's is unknown."""
    seconds = [r.get("wall_seconds", r.get("train_seconds")) for r in runs]
    return None if any(s is None for s in seconds) else sum(seconds) / 60


def curve_peak(run: dict) -> dict:
    """The best single evaluation of a curve run's main score and its step.

    Chosen in hindsight with the evaluation env: what a run reached, not an offline
    result (the table's score is the last-5 mean). Shown beside it so that a late
    decline is visible in the table.
    """
    best = max(run["curve"], key=lambda point: point["score"])
    return {"score": float(best["score"]), "step": int(best["step"])}


def summarize(runs: list[dict], env_id: str) -> dict:
    """Per method: seeds done, seed statistics of each score, wall minutes and (peers) training steps/s."""
    table = {}
    for method in METHODS:
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        if not mine:
            continue
        scores = [run_scores(r, env_id) for r in mine]
        entry = {
            "seeds": [r["seed"] for r in mine],
            "scores": {key: seed_statistics([s[key] for s in scores]) for key in scores[0]},
            "wall_minutes": wall_minutes(mine),
        }
        if all("curve" in r for r in mine):
            entry["peaks"] = [curve_peak(r) for r in mine]
        if all("steps_per_second" in r for r in mine):
            entry["steps_per_second"] = float(np.mean([r["steps_per_second"] for r in mine]))
        table[method] = entry
    return table


def plot_curves(runs: list[dict], path: Path, title: str) -> bool:
    """Score against gradient steps per method: median over seeds, seeds' range shaded. False: no curves."""
    curves = [r for r in runs if "curve" in r]
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    for i, method in enumerate(METHODS):
        for key, style in (("score", "-"), ("score_K=2", "--")):
            mine = [r["curve"] for r in curves if r["method"] == method and key in r["curve"][0]]
            if not mine:
                continue
            steps = sorted(set.intersection(*({p["step"] for p in c} for c in mine)))
            values = np.array([[next(p[key] for p in c if p["step"] == s) for s in steps] for c in mine])
            label = f"{LABELS[method]}{' K=2' if key != 'score' else ''} ({len(mine)} seeds)"
            axis.plot(steps, np.median(values, axis=0), style, color=f"C{i}", label=label)
            if key == "score":
                axis.fill_between(steps, values.min(axis=0), values.max(axis=0), color=f"C{i}", alpha=0.2)
    axis.set_xlabel("gradient steps")
    axis.set_ylabel("D4RL-normalised score")
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    temporary = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(temporary, dpi=90)
    os.replace(temporary, path)
    plt.close(figure)
    return True


def measure_all_speeds(args, dataset, peer_python: Path, data_file: Path, work: Path) -> dict:
    """Our interleaved step timings and the d3rlpy peers' training steps/s, in one invocation."""
    ours = measure_speed(
        dataset, args.device, args.speed_rounds, 10, compile=not args.no_compile, critic_ensemble=args.critic_ensemble
    )
    short = argparse.Namespace(**{**vars(args), "steps": args.speed_steps, "eval_every": 0, "episodes": 0})
    peers = time_peers(short, dataset.env_spec.id, peer_python, data_file, work)
    return {**ours, "peers": peers, "device": args.device, "threads": args.threads, "machine": machine_info()}


def time_peers(args, env_id: str, python: Path, data_file: Path, work: Path) -> dict[str, dict]:
    """d3rlpy's IQL and TD3+BC training steps/s: one :func:`run_peer` of ``args.steps`` steps each.

    On CUDA also with d3rlpy's ``compile_graph`` (its torch.compile + CUDA graph update), the
    counterpart of our graphed steps. Returns ``{key: {"steps_per_second", "steps", "label"}}``
    with keys ``"iql"``, ``"td3+bc"`` (and ``"iql compile_graph"``, ``"td3+bc compile_graph"``).
    """
    peers = {}
    for compile_graph in (False, True) if str(args.device).startswith("cuda") else (False,):
        for method in ("iql", "td3+bc"):
            run_args = argparse.Namespace(**{**vars(args), "compile_graph": compile_graph})
            result = run_peer(method, 0, run_args, env_id, python, data_file, work)
            suffix = " compile_graph" if compile_graph else ""
            peers[method + suffix] = {
                "steps_per_second": result["steps_per_second"],
                "steps": args.steps,
                "label": LABELS[method] + suffix,
            }
    return peers


def speed_markdown(speed: dict) -> list[str]:
    """The speed section: our interleaved timings, the peers' steps/s and GTP's ratios to them."""
    results, flops = speed["results"], speed["matmul_gflop_per_step"]
    rows = speed_rows(results)
    label = lambda method, peer: peer.get("label", LABELS.get(method, method))  # noqa: E731
    for method, peer in speed["peers"].items():
        rows.append([f"{label(method, peer)} ({peer['steps']}-step run)", f"{peer['steps_per_second']:.1f}"])
        rows[-1] += [f"{1000 / peer['steps_per_second']:.2f}", "-", "-"]
    fastest = max((name for name in results if name.startswith("GTP ")), key=lambda n: results[n]["steps_per_second"])
    ratio_lines = []
    for mode in dict.fromkeys(["GTP eager", fastest]):
        gtp = results[mode]["steps_per_second"]
        ratios = ", ".join(f"{label(m, p)} {gtp / p['steps_per_second']:.2f}x" for m, p in speed["peers"].items())
        ratio_lines.append(f"{mode} against d3rlpy: {ratios}.")
    return [
        "## Training speed (gradient steps per second, one invocation)",
        "",
        (
            f"Device {speed['device']}, {speed['threads']} torch thread(s), batch 256, commit "
            f"{speed['machine']['commit']}. GTP, GTP-BC and the TD3+BC reference step (plain PyTorch, the same "
            "network sizes, policy delay 2) are timed interleaved (`gtp_speed.measure_speed`); the d3rlpy rows "
            "are short training runs right after, not interleaved."
        ),
        "",
        markdown_table(SPEED_HEADER, rows),
        "",
        (
            f"{' '.join(ratio_lines)} Counted matrix-product work per step: GTP {flops['GTP']:.3f} "
            f"GFLOP, TD3+BC {flops['TD3+BC']:.3f} GFLOP ({flops['ratio']:.2f}x GTP's)."
        ),
    ]


def peaks_cell(row: dict) -> str:
    """Each seed's :func:`curve_peak` as ``score (step/1000 k)``; empty without curves."""
    return ", ".join(f"{p['score']:.1f} ({p['step'] // 1000}k)" for p in row.get("peaks", []))


def markdown(summary: dict, latency: dict | None, speed: dict | None, meta: dict) -> str:
    """The results file: protocol, the score table, the curves' file, speed and latency."""
    if meta["eval_every"]:
        protocol = (
            f"evaluated every {meta['eval_every']} steps, {meta['episodes']} episodes each; score = mean "
            f"D4RL score of the last {LAST_EVALUATIONS} evaluations. GTP acts as `predict(deterministic=True)`: "
            f"the best of N = {meta['action_candidates']} samples by the critic (GTP-BC: one sample); "
            "its K=2 rows use Karras' times, the paper's (the fitted K = 2 stop is in gtp_diagnostics' reports)"
        )
    else:
        protocol = f"evaluated once at the end, {meta['episodes']} episodes (first reset seeded 10000 + seed)"
    if meta.get("gtp_before_candidates"):
        protocol += (
            " (the GTP runs predate action candidates: they acted as `predict(deterministic=True)` did then, "
            "one sample from a_T = 0)"
        )
    lines = [
        "# GTP vs d3rlpy peers on the same data",
        "",
        (
            f"Dataset `{meta['dataset']}` ({meta['transitions']} transitions), env {meta['env_id']}; "
            f"{meta['steps']} gradient steps, batch {meta['batch_size']}, seeds {meta['seeds']}; {protocol}. "
            f"GTP's Eq. 76 schedule grows to s1 + 1 = {meta['schedule_max_steps'] + 1} levels "
            f"(`schedule_max_steps`; the paper's s1: 1280); GTP trains {meta['critic_ensemble']} critic(s) "
            "(`critic_ensemble`; the paper: 1). "
            f"Runs made at commit(s) {', '.join(meta['run_commits'])} on {meta['machine']['cores']} CPU cores "
            f"(GPU: {meta['machine']['gpu']}), {meta['machine']['torch_threads']} torch thread per run; "
            f"time of all runs {meta['wall_minutes']:.0f} min (curve runs: training and evaluation, over all "
            "calls of a resumed run; final-evaluation runs: training only; n/a: a GTP run begun before its "
            "time was kept, not counted). Runs sharing the cores, times are not speeds: see the speed section."
            + (
                f" GTP's runs were imported from {', '.join(f'`{p}`' for p in meta['imported_from'])} "
                "(`--import-gtp`: trained by gtp_diagnostics.py with these settings; the commit named for them is "
                "that report's, see it for how they were trained)."
                if meta.get("imported_from")
                else ""
            )
        ),
        "",
    ]
    rows = []
    peaks = any("peaks" in row for row in summary.values())
    for method, row in summary.items():
        for key, stats in row["scores"].items():
            label = LABELS[method] + (f" ({key.split('_')[1]})" if key != "score" else "")
            label += " (K=5)" if method.startswith("gtp") and key == "score" else ""
            rows.append(
                [
                    label,
                    str(len(row["seeds"])),
                    f"{stats['median']:.1f}",
                    f"{stats['mean']:.1f}",
                    f"{stats['std']:.1f}",
                    ", ".join(f"{v:.1f}" for v in stats["per_seed"]),
                    ("n/a" if row["wall_minutes"] is None else f"{row['wall_minutes']:.0f}") if key == "score" else "",
                    f"{row['steps_per_second']:.1f}" if key == "score" and "steps_per_second" in row else "",
                ]
                + ([peaks_cell(row) if key == "score" else ""] if peaks else [])
            )
    header = [
        "method",
        "seeds",
        "median",
        "mean",
        "std",
        "per seed",
        "wall min",
        "train steps/s (in the runs)",
    ] + (["peak per seed (step; hindsight)"] if peaks else [])
    lines += [markdown_table(header, rows), ""]
    if peaks:
        lines += [
            "The peak column is each seed's best single evaluation (K = 5 for GTP) and when it came: "
            "picked in hindsight with the env, so not an offline score; it shows how much a run lost "
            "between its best point and its last five evaluations.",
            "",
        ]
    if meta.get("curves_png"):
        lines += [f"Learning curves: `{meta['curves_png']}` (median over seeds, range shaded; GTP K=2 dashed).", ""]
    if speed:
        lines += speed_markdown(speed) + [""]
    if latency:
        lines += [
            "## Action latency (median per call of the actor network, torch threads as above)",
            "",
            f"Measured at commit {latency['machine']['commit']} with {latency['machine']['torch_threads']} "
            "torch thread(s), the calls interleaved in blocks so that load from other processes hits all of "
            "them alike; one sample per state (no candidates). Deterministic starts from a_T = 0, stochastic "
            "draws a_T.",
            "",
            "| batch | start | plain MLP | K=1 | K=2 | K=5 | K=2 / MLP |",
            "|---|---|---|---|---|---|---|",
        ]
        for batch, row in ((k, v) for k, v in latency.items() if k.startswith("batch=")):
            for mode in ("deterministic", "stochastic"):
                cells = " | ".join(f"{row[f'K={k}_{mode}_us']:.0f} us" for k in (1, 2, 5))
                lines.append(
                    f"| {batch.split('=')[1]} | {mode} | {row['mlp_us']:.0f} us | {cells} "
                    f"| {row[f'K=2_{mode}_vs_mlp']:.2f}x |"
                )
        if "predict" in latency:
            predict = latency["predict"]
            lines += [
                "",
                "`GTPAgent.predict` on one observation (numpy in and out: normalisation, N candidates of K map "
                "steps, the critic's choice), what the policy costs per env step; N = 50, K = 5 is the default:",
                "",
                markdown_table(
                    ["plain MLP forward", *[f"K={k}, N={n}" for k, n in PREDICT_SETTINGS]],
                    [
                        [f"{predict['mlp_us']:.0f} us"]
                        + [f"{predict[f'K={k} N={n}_us']:.0f} us" for k, n in PREDICT_SETTINGS]
                    ],
                ),
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the missing runs (resumable), measure speed and latency once, rewrite the summary files."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DEFAULT_DATASET_ID)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--eval-every", type=int, default=10_000, help="0: one evaluation at the end")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--envs", type=int, default=10, help="GTP's evaluation envs (vectorised)")
    parser.add_argument("--eta", type=float, default=5.0, help="GTP's eta (paper, hopper-medium-replay: 5)")
    parser.add_argument("--action-candidates", type=int, default=GTPConfig.action_candidates)
    parser.add_argument(
        "--schedule-max-steps",
        type=int,
        default=GTPConfig.schedule_max_steps,
        help="GTP's s1 of Eq. 76 (GTPConfig.schedule_max_steps; the paper: 1280)",
    )
    parser.add_argument(
        "--critic-ensemble",
        type=int,
        default=GTPConfig.critic_ensemble,
        help="GTP's critics (GTPConfig.critic_ensemble; the paper: 1)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (ours and the peers')")
    parser.add_argument("--name", default=None, help="results' file names (default gtp_vs_peers_<steps/1000>k)")
    parser.add_argument("--work", default="/tmp/ctflow_gtp_vs_peers", help="GTP checkpoints (curve runs)")
    parser.add_argument(
        "--latency-rounds",
        type=int,
        default=300,
        help="interleaved timing rounds (10 calls each) at batch 1; a tenth at batch 256",
    )
    parser.add_argument("--speed-rounds", type=int, default=30, help="interleaved rounds of 10 training steps")
    parser.add_argument("--speed-steps", type=int, default=3000, help="steps of each d3rlpy timing run")
    parser.add_argument("--no-compile", action="store_true", help="speed: eager only (skips ~3 min of compiling)")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed section")
    parser.add_argument("--speed-only", action="store_true", help="measure speed (if missing) and report only")
    parser.add_argument("--peer-venv", default=".bench-venvs/d3rlpy")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results")))
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--import-gtp",
        default=None,
        help="a gtp_diagnostics.json whose finished seeds (same settings) become this comparison's GTP curve runs",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing; (re)measure latency if its file is missing and rewrite the summary",
    )
    parser.set_defaults(tau_sampling=GTPConfig.tau_sampling)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = f"{args.steps // 1000}k" if args.steps % 1000 == 0 else str(args.steps)
    critics = "" if args.critic_ensemble == 1 else f"_ensemble{args.critic_ensemble}"
    name = args.name or f"gtp_vs_peers_{budget}" + ("" if args.eval_every else "_final") + critics
    args.work = str(Path(args.work) / name)

    out = Path(args.out)
    cache = RunCache(out / f"{name}_runs")
    work = cache.folder
    dataset = load_dataset(args.dataset)
    env_id = dataset.env_spec.id
    meta = {
        "dataset": dataset.id,
        "transitions": int(dataset.total_steps),
        "env_id": env_id,
        "steps": args.steps,
        "eval_every": args.eval_every,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "action_candidates": args.action_candidates,
        "schedule_max_steps": args.schedule_max_steps,
        "critic_ensemble": args.critic_ensemble,
        "machine": machine_info(),
    }
    latency_file, speed_file = work / "latency.json", work / "speed.json"
    stored = {f"gtp-seed{r['seed']}": r for r in cache.runs("gtp-seed*.json")}
    stored.update({f.name: json.loads(f.read_text()) for f in (latency_file, speed_file) if f.exists()})
    held = {key: {**BEFORE_RECORDED, **record}["critic_ensemble"] for key, record in stored.items()}
    other = {key: count for key, count in held.items() if count != args.critic_ensemble}
    if other:  # never mix, relabel or overwrite results of another critic count
        parser.error(
            f"--critic-ensemble {args.critic_ensemble}: {work} holds GTP results with other critic counts {other}; "
            "pass their --critic-ensemble, or another --name"
        )
    if args.import_gtp:
        import_gtp_runs(Path(args.import_gtp), args, cache, parser)
    if not latency_file.exists():
        obs_dim, act_dim = int(dataset.observation_space.shape[0]), int(dataset.action_space.shape[0])
        rows = action_latency(obs_dim, act_dim, args.device, args.latency_rounds)
        rows["predict"] = predict_latency(dataset, args.device, max(1, args.latency_rounds // 10), args.critic_ensemble)
        record = {**rows, "critic_ensemble": args.critic_ensemble, "machine": machine_info()}
        write_atomic(latency_file, json.dumps(record, indent=2))
    latency = json.loads(latency_file.read_text())
    settings = {"steps": args.steps, "eval_every": args.eval_every or None}

    def settings_of(method: str) -> dict:
        """What a stored run of ``method`` must have been made with to count here."""
        if method == "gtp":
            return {**settings, "schedule_max_steps": args.schedule_max_steps, "critic_ensemble": args.critic_ensemble}
        if method.startswith("gtp"):
            return {**settings, "schedule_max_steps": args.schedule_max_steps}
        return settings

    def report() -> None:
        runs = [r for r in cache.runs("*-seed*.json") if matches(r, settings_of(r["method"]), BEFORE_RECORDED)]
        summary = summarize(runs, env_id)
        meta["seeds"] = sorted({r["seed"] for r in runs})
        meta["run_commits"] = sorted({r["machine"]["commit"] for r in runs})
        meta["wall_minutes"] = sum(row["wall_minutes"] or 0.0 for row in summary.values())
        meta["imported_from"] = sorted({r["imported_from"] for r in runs if "imported_from" in r})
        meta["gtp_before_candidates"] = any(
            r["method"].startswith("gtp") and "action_candidates" not in r for r in runs
        )
        meta["curves_png"] = f"{name}.png" if plot_curves(runs, out / f"{name}.png", f"{name}: {env_id}") else None
        speed = json.loads(speed_file.read_text()) if speed_file.exists() else None
        everything = {"meta": meta, "summary": summary, "speed": speed, "latency": latency, "runs": runs}
        write_results(out, name, everything, markdown(summary, latency, speed, meta))

    peer_python = data_file = None

    def peers() -> tuple[Path, Path]:
        nonlocal peer_python, data_file
        if peer_python is None:
            peer_python = ensure_peer_venv(Path(args.peer_venv))
            data_file = work / f".transitions-{os.getpid()}.npz"  # one per process: invocations may run side by side
            export_transitions(dataset, data_file)
        return peer_python, data_file

    try:
        if not (args.report_only or args.no_speed or speed_file.exists()):
            print("[gtp_vs_peers] speed section", flush=True)
            speed = measure_all_speeds(args, dataset, *peers(), work)
            write_atomic(speed_file, json.dumps({**speed, "critic_ensemble": args.critic_ensemble}, indent=2))
        for seed in [] if args.report_only or args.speed_only else args.seeds:
            for method in args.methods:
                run_name = f"{method}-seed{seed}"
                if cache.get(run_name, settings_of(method), BEFORE_RECORDED) is not None:
                    continue
                print(f"[gtp_vs_peers] {method} seed {seed}: {args.steps} steps", flush=True)
                if method.startswith("gtp"):
                    result = run_gtp(method, seed, args, env_id, dataset)
                else:
                    result = run_peer(method, seed, args, env_id, *peers(), work)
                result["machine"] = meta["machine"]  # the code that ran is the commit at start
                cache.put(run_name, result)
                print(f"[gtp_vs_peers] {method} seed {seed}: {run_scores(result, env_id)}", flush=True)
                report()
    finally:
        if data_file is not None and data_file.exists():
            data_file.unlink()
    report()
    print((out / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
