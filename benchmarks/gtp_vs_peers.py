"""GTP, GTP-BC, FQL and DeFlow next to d3rlpy's IQL and TD3+BC on the same data: scores and learning curves.

Every method gets the same dataset, batch size, gradient steps and seeds. With ``--eval-every N``
(default 10000) each run is evaluated every N steps (``--episodes`` episodes) and its score is the
mean D4RL score of its last 5 evaluations, as the offline RL literature reports; the table gives
median, mean, standard deviation (ddof 1) and per-seed scores, and each seed's best evaluation
(picked in hindsight). GTP trains in one ``learn`` call (the schedule of Eq. 76 planned for the
whole run) with checkpoints every N steps in ``--work``, so an interrupted run resumes; it is
evaluated as ``predict(deterministic=True)`` acts (``learn``'s evaluation, K = 5, resets seeded
with the agent's seed + the step, ``--envs`` envs at once) and with K = 2 at Karras' times (the
paper's). GTP's runs in the committed 200k files were trained by ``gtp_diagnostics.run_seed``
(archived: ``benchmarks/archive/README.md``), which evaluated sampled actions in between as well and so drew
from the agent's random stream: a rerun here follows the same protocol on another random stream.
With ``--eval-every 0`` each run is evaluated once at the end (the first protocol, 50k steps).
Every curve point carries the seconds of training before it (:class:`TrainingClock`; d3rlpy's runs
time their own epochs the same way), from which the summary says when each run first held 90% of its
final score and, where GTP ran, when each run first reached GTP's median final score, each with its median
over seeds (issue 31's time to score); runs beside other jobs on the same cores are slower, so read those
seconds within one file.

d3rlpy 2.8 pins gymnasium 1.0.0, so it runs in its own venv that this script makes
(``--peer-venv``: torch 2.13.0, d3rlpy 2.8.1, gymnasium[mujoco] 1.0.0) through ``peer_d3rlpy.py``,
handed the same transitions as an ``.npz``; its evaluations reset with 10000 + seed. A
learning-curve plot is written beside the results. Training speed and action latency are measured
alone, not here: ``gtp_speed.py`` (GTP beside a TD3+BC step, and d3rlpy's steps/s with
``--peer-python``) and ``agent_speed.py`` (GTP, FQL, DeFlow, and ``predict`` latency); the speed and
latency sections of the committed ``gtp_vs_peers_*`` files were measured by an earlier version of
this script (``git show a1f9773:benchmarks/gtp_vs_peers.py``) and are still rendered from them.

Each finished run is cached in ``<out>/<name>_runs/<method>-seed<k>.json`` (its wall time that of
the call that finished it); the summary is rewritten after every run. GTP's critic count is
recorded everywhere, and a folder holding results of another count is refused, never mixed.

    python benchmarks/gtp_vs_peers.py                                  # 200k steps, 3 seeds, 4 methods
    python benchmarks/gtp_vs_peers.py --steps 50000 --eval-every 0 --report-only
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
from harness import ROOT, Runs, Settings, matches, option, parse, pyplot, write_json, write_png, write_results

from agents import DeFlowAgent, FQLAgent, GTPAgent, GTPConfig
from agents.gtp.schedule import sampling_times
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_transitions, normalized_score
from ctflow_gym.envs.point_maze import is_point_maze

METHODS = ("gtp", "gtp-bc", "fql", "deflow", "iql", "td3+bc")
LABELS = {
    "gtp": "GTP",
    "gtp-bc": "GTP-BC",
    "fql": "FQL",
    "deflow": "DeFlow",
    "iql": "d3rlpy IQL",
    "td3+bc": "d3rlpy TD3+BC",
}
FLOW_AGENTS = {"fql": FQLAgent, "deflow": DeFlowAgent}
FLOW_NETWORKS = {
    "gtp": dict(actor_hidden=256, actor_layers=3, critic_hidden=256, critic_layers=2),
    "paper": {},
}
"""FQL's and DeFlow's network sizes: GTP's (the common size) or their papers' (4 x 512 everywhere)."""
BEFORE_RECORDED = {**GTPConfig.BEFORE_RECORDED, "grad_norm": GTPConfig.grad_norm}
"""What GTP runs stored before a setting was recorded were made with (``grad_norm``: the only value ever used)."""
LAST_EVALUATIONS = 5


@dataclasses.dataclass
class PeersSettings(Settings):
    dataset: str = option(DEFAULT_DATASET_ID, "Minari dataset id or path")
    steps: int = option(200_000, "gradient steps of every run")
    eval_every: int = option(10_000, "evaluate every this many steps (0: once at the end)")
    seeds: tuple[int, ...] = option((0, 1, 2), "seeds")
    methods: tuple[str, ...] = option(METHODS, "methods", choices=METHODS)
    batch_size: int = option(256, "minibatch size of every method")
    episodes: int = option(10, "episodes per evaluation")
    envs: int = option(10, "GTP's evaluation envs (vectorised)")
    eta: float = option(5.0, "GTP's eta (the paper's hopper-medium-replay value)")
    action_candidates: int = option(GTPConfig.action_candidates, "GTP's N, the samples its critic chooses from")
    schedule_max_steps: int = option(GTPConfig.schedule_max_steps, "GTP's s1 of Eq. 76 (the paper: 1280)")
    critic_ensemble: int = option(GTPConfig.critic_ensemble, "GTP's critics (the paper: 1)")
    grad_norm: float = option(GTPConfig.grad_norm, "GTP's gradient-norm clip (the paper's Table 4 sets it per dataset)")
    flow_networks: str = option("gtp", "FQL's and DeFlow's network sizes", choices=tuple(FLOW_NETWORKS))
    fql_alpha: float = option(10.0, "FQL's alpha (its code's default)")
    deflow_delta: float | None = option(None, "DeFlow's trust region delta (None: derived from the data's IAV)")
    device: str = option("cpu", "torch device (ours and the peers')")
    name: str | None = option(
        None, "result file name (default gtp_vs_peers_<steps/1000>k[_final][_ensemble<M>][_clip<grad norm>])"
    )
    work: str = option("/tmp/ctflow_gtp_vs_peers", "GTP's checkpoints (curve runs)")
    report_only: bool = option(False, "train nothing, rewrite the summary")
    peer_venv: str = option(".bench-venvs/d3rlpy", "the d3rlpy venv (made on first use)")
    progress: bool = option(False, "progress bars and the peers' output")


# --------------------------------------------------------------------------------------------- d3rlpy, in its venv


PEER_ROBOTICS = "gymnasium-robotics==1.3.1"
"""The last gymnasium-robotics that accepts d3rlpy's gymnasium 1.0 (it brings MuJoCo 3.1.6), for PointMaze."""


def ensure_peer_venv(folder: Path, robotics: bool = False) -> Path:
    """The Python of a venv with d3rlpy (made on first use: torch 2.13.0 first, then d3rlpy and its gymnasium);
    with ``robotics``, also gymnasium-robotics (:data:`PEER_ROBOTICS`, installed into an existing venv if missing)."""
    python = folder / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q"]
    check = [str(python), "-c", "import d3rlpy, gymnasium.envs.mujoco"]
    if not (python.exists() and subprocess.run(check, capture_output=True).returncode == 0):
        print(f"[peers] creating {folder}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run(pip + ["torch==2.13.0"], check=True)
        subprocess.run(pip + ["d3rlpy==2.8.1", "gymnasium[mujoco]==1.0.0"], check=True)
    if robotics and subprocess.run([str(python), "-c", "import gymnasium_robotics"], capture_output=True).returncode:
        # MuJoCo 4's split packages stay behind a downgrade and break `import mujoco`: remove them first
        uninstall = [str(python), "-m", "pip", "uninstall", "-y", "-q"]
        subprocess.run(uninstall + ["mujoco", "mujoco-core", "mujoco-studio", "mujoco-studio-wasm"], check=False)
        subprocess.run(pip + [PEER_ROBOTICS, "mujoco==3.1.6"], check=True)
    return python


def export_transitions(dataset, path: Path) -> Path:
    """The dataset's transitions as the arrays d3rlpy's MDPDataset takes."""
    t = load_transitions(dataset)
    timeouts = (t.episode_ends & (t.terminations == 0)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(observations=t.observations, actions=t.actions, rewards=t.rewards, terminals=t.terminations)
    np.savez(path, **arrays, timeouts=timeouts)
    return path


def run_peer(python: Path, data_file: Path, method: str, seed: int, env_id: str, steps: int, **options) -> dict:
    """One ``peer_d3rlpy.py`` run in the peer venv, read back (its curve's returns also as D4RL scores).

    ``options``: ``batch_size``, ``episodes``, ``eval_every``, ``device``, ``threads``,
    ``compile_graph``, ``progress`` (defaults as in :class:`PeersSettings`).
    """
    o = {"batch_size": 256, "episodes": 10, "eval_every": 0, "device": "cpu", "threads": 1, **options}
    out = data_file.with_name(f".{method}-seed{seed}-{os.getpid()}.peer.json")
    command = [str(python), str(Path(__file__).with_name("peer_d3rlpy.py")), "--algo", method, "--data", str(data_file)]
    command += ["--env", env_id, "--steps", str(steps), "--batch-size", str(o["batch_size"]), "--seed", str(seed)]
    command += ["--episodes", str(o["episodes"]), "--eval-seed", str(10_000 + seed), "--out", str(out)]
    device = "cuda:0" if str(o["device"]).startswith("cuda") else "cpu:0"
    command += ["--device", device, "--eval-every", str(o["eval_every"])]
    command += ["--compile-graph"] if o.get("compile_graph") else []
    if is_point_maze(env_id):  # d3rlpy's venv has no ctflow_gym: the env's module is loaded by itself
        command += ["--point-maze-module", str(ROOT / "ctflow_gym" / "envs" / "point_maze.py")]
    threads = str(o["threads"])
    environment = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    subprocess.run(command, check=True, env=environment, stdout=None if o.get("progress") else subprocess.DEVNULL)
    result = json.loads(out.read_text())
    out.unlink()
    run = {"method": method, **{k: v for k, v in result.items() if k not in ("algo", "curve", "eval_every")}}
    if o["eval_every"]:
        run["eval_every"] = o["eval_every"]
        score = lambda returns: float(np.mean(normalized_score(env_id, returns)))  # noqa: E731
        run["curve"] = [
            {"step": c["step"], "score": score(c["returns"]), "returns": c["returns"]}
            | ({"training_seconds": c["training_seconds"]} if "training_seconds" in c else {})
            for c in result["curve"]
        ]
    return run


# ------------------------------------------------------------------------------------------------------- GTP


class TrainingClock:
    """Seconds of training before each evaluation of a resumable ``learn``, kept in ``folder``.

    Training seconds run from the end of one evaluation (and its checkpoint) to the step before the
    next, summed over resumed calls: evaluations, checkpoints and process start-up are not counted,
    so time-to-score compares training alone. Call :meth:`stamp` from ``learn``'s per-step callback,
    after every evaluation the callback itself runs.
    """

    def __init__(self, folder: Path, eval_every: int):
        self.file, self.eval_every = folder / "training_seconds.json", eval_every
        self.clock = json.loads(self.file.read_text()) if self.file.exists() else {}
        self.trained, self.since = max(self.clock.values(), default=0.0), time.perf_counter()

    def stamp(self, step: int) -> bool:
        """Count the step that just ran; True, so that ``learn`` goes on."""
        now = time.perf_counter()
        if (step + 1) % self.eval_every == 0:
            self.trained += now - self.since
        elif step % self.eval_every == 0:
            self.clock.setdefault(str(step), self.trained)
            write_json(self.file, self.clock)
            self.since = now
        return True

    def seconds(self, step: int) -> float | None:
        """The training seconds before the evaluation at ``step`` (``None``: not timed, e.g. an older run)."""
        return self.clock.get(str(step))


def learn_with_curve(agent, s: PeersSettings, folder: Path, callback) -> None:
    """``learn`` for ``s.steps``, evaluated and checkpointed into ``folder`` every ``s.eval_every`` steps, resumed."""
    agent.learn(
        s.steps,
        callback=callback,
        eval_freq=s.eval_every,
        n_eval_episodes=s.episodes,
        n_eval_envs=s.envs,
        checkpoint_path=folder / "model",
        checkpoint_freq=s.eval_every,
        resume=True,
        progress_bar=s.progress,
    )


def run_gtp(method: str, seed: int, s: PeersSettings, dataset, folder: Path) -> dict:
    """Train GTP (or GTP-BC, eta = 0) and evaluate it: a curve (``s.eval_every``) or once at the end, K = 1, 2, 5."""
    eta = 0.0 if method == "gtp-bc" else s.eta
    critics = s.critic_ensemble if eta > 0 else None  # GTP-BC trains no critic
    options = dict(eta=eta, batch_size=s.batch_size, device=s.device, schedule_max_steps=s.schedule_max_steps)
    options.update(action_candidates=s.action_candidates, grad_norm=s.grad_norm)
    options.update({"critic_ensemble": critics} if critics else {})
    agent = GTPAgent(dataset.env_spec.id, dataset, seed=seed, **options)
    run = {"method": method, "seed": seed, "batch_size": s.batch_size, "eta": eta, "critic_ensemble": critics}
    run.update(action_candidates=s.action_candidates, schedule_max_steps=s.schedule_max_steps, grad_norm=s.grad_norm)
    if not s.eval_every:
        run["fitted_sampling_steps"] = list(agent.config.fitted_sampling_steps)
        agent.learn(s.steps, progress_bar=s.progress)
        by_steps = {}
        for steps in (1, 2, 5):
            result = agent.evaluate(s.episodes, seed=10_000 + seed, sampling_steps=steps)
            by_steps[f"K={steps}"] = {"returns": result["returns"], "normalized_score": result["normalized_score"]}
        return {**run, "returns": by_steps["K=5"]["returns"], "by_sampling_steps": by_steps}
    folder.mkdir(parents=True, exist_ok=True)
    k2_file = folder / "k2.json"
    k2 = json.loads(k2_file.read_text()) if k2_file.exists() else {}
    karras = sampling_times(2, agent.config.max_time, agent.config.min_time)

    clock = TrainingClock(folder, s.eval_every)

    def evaluate_k2(_locals, _globals) -> bool:  # after learn's own evaluation (K = 5) and checkpoint of the step
        step = agent.num_timesteps
        if step % s.eval_every == 0 and str(step) not in k2:
            k2[str(step)] = agent.evaluate(s.episodes, n_envs=s.envs, sampling_times=karras)["normalized_score"]
            write_json(k2_file, k2)
        return clock.stamp(step)  # after the K = 2 evaluation, so that it is not counted as training

    learn_with_curve(agent, s, folder, evaluate_k2)
    curve = [
        {
            "step": e["step"],
            "score": e["normalized_score"],
            "score_K=2": k2[str(e["step"])],
            "training_seconds": clock.seconds(e["step"]),
        }
        for e in agent.eval_history
    ]
    return {**run, "curve": curve}


def run_flow_agent(method: str, seed: int, s: PeersSettings, dataset, folder: Path) -> dict:
    """Train FQL or DeFlow (resumable from ``folder``) with a curve, or evaluate once at the end.

    Evaluated as ``learn`` evaluates (``predict(deterministic=True)``: the noise z = 0), with
    ``s.envs`` envs at once; each curve point also carries the seconds of training before it
    (summed over resumed calls, evaluations excluded), for time-to-score.
    """
    options = dict(batch_size=s.batch_size, device=s.device, **FLOW_NETWORKS[s.flow_networks])
    options.update(alpha=s.fql_alpha) if method == "fql" else options.update(target_divergence=s.deflow_delta)
    agent = FLOW_AGENTS[method](dataset.env_spec.id, dataset, seed=seed, **options)
    run = {"method": method, "seed": seed, "batch_size": s.batch_size, "flow_networks": s.flow_networks}
    run.update(fql_alpha=s.fql_alpha) if method == "fql" else run.update(deflow_delta=s.deflow_delta)
    if method == "deflow":
        run["trust_region"] = agent.trust_region
    if not s.eval_every:
        agent.learn(s.steps, progress_bar=s.progress)
        return {**run, "returns": agent.evaluate(s.episodes, seed=10_000 + seed, n_envs=s.envs)["returns"]}
    folder.mkdir(parents=True, exist_ok=True)
    clock = TrainingClock(folder, s.eval_every)
    learn_with_curve(agent, s, folder, lambda _locals, _globals: clock.stamp(agent.num_timesteps))
    curve = [
        {"step": e["step"], "score": e["normalized_score"], "training_seconds": clock.seconds(e["step"])}
        for e in agent.eval_history
    ]
    return {**run, "curve": curve, "final_by_noise": final_by_noise(agent, s, seed)}


def final_by_noise(agent, s: PeersSettings, seed: int) -> dict[str, float]:
    """The trained FQL / DeFlow agent's D4RL score with noise z = 0 (``deterministic=True``) and with sampled z.

    The official code always samples z (the papers' scores); z = 0 is ``predict``'s reproducible
    default. Same reset seeds (10000 + seed) for both.
    """
    scores = {}
    for label, deterministic in (("z=0", True), ("sampled z", False)):
        result = agent.evaluate(s.episodes, deterministic=deterministic, seed=10_000 + seed, n_envs=s.envs)
        scores[label] = result["normalized_score"]
    return scores


# ----------------------------------------------------------------------------------------------------- summary


def run_scores(run: dict, env_id: str) -> dict[str, float]:
    """``"score"`` (K = 5 for GTP) and GTP's ``"score_K=2"`` (``"score_K=1"``): the last-5 mean, or the final one."""
    if "curve" in run:
        last = run["curve"][-LAST_EVALUATIONS:]
        return {key: float(np.mean([point[key] for point in last])) for key in last[0] if key.startswith("score")}
    scores = {"score": float(np.mean(normalized_score(env_id, run["returns"])))}
    for key, result in run.get("by_sampling_steps", {}).items():
        if key != "K=5":
            scores[f"score_{key}"] = float(np.mean(normalized_score(env_id, result["returns"])))
    return scores


def time_to_reach(curve: list[dict], target: float) -> dict:
    """When a run's evaluation first scored ``target`` or more: the step and, if recorded, the training seconds
    before it; both ``None`` if no evaluation reached it."""
    return reached_at(next((p for p in curve if p["score"] >= target), None))


def reached_at(point: dict | None) -> dict:
    """A curve point's step and, if recorded, its training seconds (both ``None`` for no point)."""
    if point is None:
        return {"step": None, "training_seconds": None}
    return {"step": int(point["step"]), "training_seconds": point.get("training_seconds")}


def time_to_score(curve: list[dict], final: float, fraction: float = 0.9) -> dict:
    """When a run's evaluation first held ``fraction`` of its final score (``None`` for a final score <= 0,
    where the rule means nothing). The final score is a mean of evaluations, so the last one may fall short of
    it: a run that never held the fraction counts as reaching it at its last evaluation."""
    if final <= 0:
        return {"step": None, "training_seconds": None}
    reached = time_to_reach(curve, fraction * final)
    return reached if reached["step"] is not None else reached_at(curve[-1])


def median_minutes(reached: list[dict]) -> float | None:
    """The median over seeds of the training minutes in ``reached`` (``time_to_reach`` results), a seed that never
    reached the target counting as later than any other (for an even count the upper middle value, so that a
    "never" is never averaged); ``None`` when that median is "never" or a seed that got there did not record its
    seconds."""
    if not reached or any(r.get("step") is not None and r.get("training_seconds") is None for r in reached):
        return None
    seconds = [r["training_seconds"] if r.get("step") is not None else float("inf") for r in reached]
    median = sorted(seconds)[len(seconds) // 2]  # the middle value; the upper middle one for an even count
    return median / 60 if np.isfinite(median) else None


def seed_statistics(values: list[float]) -> dict:
    """Median, mean and standard deviation (ddof 1; 0 for one seed) of per-seed scores."""
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"median": float(np.median(values)), "mean": float(values.mean()), "std": std, "per_seed": values.tolist()}


def summarize(runs: list[dict], env_id: str) -> dict:
    """Per method: its seeds, the seed statistics of each score, each seed's peak (curves), steps/s (peers)."""
    table, curves = {}, {}
    for method in METHODS:
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["seed"])
        if not mine:
            continue
        scores = [run_scores(r, env_id) for r in mine]
        entry = {
            "seeds": [r["seed"] for r in mine],
            "scores": {k: seed_statistics([s[k] for s in scores]) for k in scores[0]},
        }
        if all("curve" in r for r in mine):  # the best single evaluation, in hindsight: not an offline score
            best = [max(r["curve"], key=lambda point: point["score"]) for r in mine]
            entry["peaks"] = [{"score": float(b["score"]), "step": int(b["step"])} for b in best]
            entry["to_90_percent"] = [time_to_score(r["curve"], s["score"]) for r, s in zip(mine, scores)]
            entry["to_90_percent_median_minutes"] = median_minutes(entry["to_90_percent"])
            curves[method] = [r["curve"] for r in mine]
        if all("final_by_noise" in r for r in mine):
            labels = mine[0]["final_by_noise"]
            entry["final_by_noise"] = {k: seed_statistics([r["final_by_noise"][k] for r in mine]) for k in labels}
        if all("steps_per_second" in r for r in mine):
            entry["steps_per_second"] = float(np.mean([r["steps_per_second"] for r in mine]))
        table[method] = entry
    add_times_to_gtp_score(table, curves)
    return table


def add_times_to_gtp_score(table: dict, curves: dict[str, list[list[dict]]]) -> None:
    """Issue 31's time to score beside GTP (defaults, K = 5): for every method with ``curves`` (its seeds' curves,
    in seed order), the minutes each seed's evaluation first reached GTP's median final score (``to_gtp_score``;
    ``None`` for a seed that never did) and their median, so "reaches GTP's score in half GTP's wall time" can be
    read off one file."""
    if "gtp" not in curves:
        return
    target = table["gtp"]["scores"]["score"]["median"]
    for method, seeds in curves.items():
        per_seed = [time_to_reach(curve, target) for curve in seeds]
        minutes = median_minutes(per_seed)
        table[method]["to_gtp_score"] = {"target": target, "per_seed": per_seed, "median_minutes": minutes}


def plot_curves(runs: list[dict], path: Path, title: str) -> bool:
    """Score against gradient steps per method: median over seeds, the seeds' range shaded. False: no curves."""
    curves = [r for r in runs if "curve" in r]
    if not curves:
        return False
    figure, axis = pyplot().subplots(figsize=(8, 5))
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
    axis.set(xlabel="gradient steps", ylabel="D4RL-normalised score", title=title)
    axis.legend(fontsize=8)
    write_png(figure, path)
    return True


def main(argv: list[str] | None = None) -> Path:
    """Run what is missing (resumable), rewrite the results."""
    s = parse(PeersSettings, argv)
    budget = f"{s.steps // 1000}k" if s.steps % 1000 == 0 else str(s.steps)
    critics = "" if s.critic_ensemble == 1 else f"_ensemble{s.critic_ensemble}"
    clip = "" if s.grad_norm == GTPConfig.grad_norm else f"_clip{s.grad_norm:g}"
    name = s.name or f"gtp_vs_peers_{budget}" + ("" if s.eval_every else "_final") + critics + clip
    out = Path(s.out)
    runs = Runs(out / f"{name}_runs")
    dataset = load_dataset(s.dataset)
    env_id = dataset.env_spec.id
    latency_file, speed_file = runs.folder / "latency.json", runs.folder / "speed.json"
    held = [f for f in (*runs.folder.glob("gtp-seed*.json"), latency_file, speed_file) if f.exists()]
    counts = {f.name: {**BEFORE_RECORDED, **json.loads(f.read_text())}["critic_ensemble"] for f in held}
    other = {file: count for file, count in counts.items() if count != s.critic_ensemble}
    if other:  # never mix, relabel or overwrite results of another critic count
        raise SystemExit(f"--critic-ensemble {s.critic_ensemble}: {runs.folder} holds other critic counts {other}")
    shared = {"steps": s.steps, "eval_every": s.eval_every or None}

    def settings_of(method: str) -> dict:
        """What a stored run of ``method`` must have been made with to count here."""
        gtp = {"schedule_max_steps": s.schedule_max_steps, "grad_norm": s.grad_norm} if method.startswith("gtp") else {}
        flow = {"flow_networks": s.flow_networks} if method in FLOW_AGENTS else {}
        flow.update({"fql_alpha": s.fql_alpha} if method == "fql" else {})
        flow.update({"deflow_delta": s.deflow_delta} if method == "deflow" else {})
        return {**shared, **gtp, **flow, **({"critic_ensemble": s.critic_ensemble} if method == "gtp" else {})}

    def report() -> Path:
        stored = [r for r in runs.all("*-seed*.json") if matches(r, settings_of(r["method"]), BEFORE_RECORDED)]
        meta = {**s.recorded(), "transitions": int(dataset.total_steps), "env_id": env_id}
        meta.update(
            seeds=sorted({r["seed"] for r in stored}), run_commits=sorted({r["machine"]["commit"] for r in stored})
        )
        meta["wall_minutes"] = sum(r.get("wall_seconds", r.get("train_seconds", 0.0)) for r in stored) / 60
        meta["imported_from"] = sorted({r["imported_from"] for r in stored if "imported_from" in r})
        meta["gtp_before_candidates"] = any(
            r["method"].startswith("gtp") and "action_candidates" not in r for r in stored
        )
        meta["curves_png"] = f"{name}.png" if plot_curves(stored, out / f"{name}.png", f"{name}: {env_id}") else None
        speed, latency = (json.loads(f.read_text()) if f.exists() else None for f in (speed_file, latency_file))
        data = {"meta": meta, "summary": summarize(stored, env_id), "speed": speed, "latency": latency, "runs": stored}
        methods = [LABELS[m] for m in METHODS if any(r["method"] == m for r in stored)] or ["GTP"]
        return write_results(s, name, data, "peers", f"{', '.join(methods)} on the same data")

    peer = {}

    def peers() -> tuple[Path, Path]:  # the venv and the exported transitions, made once, on first need
        if not peer:
            peer["python"] = ensure_peer_venv(Path(s.peer_venv), robotics=is_point_maze(env_id))
            peer["data"] = export_transitions(dataset, runs.folder / f".transitions-{os.getpid()}.npz")
        return peer["python"], peer["data"]

    try:
        for seed in () if s.report_only else s.seeds:
            for method in s.methods:
                key = f"{method}-seed{seed}"
                folder = Path(s.work) / name / method / f"seed{seed}"
                if runs.get(key, settings_of(method), BEFORE_RECORDED) is not None:
                    continue
                print(f"[gtp_vs_peers] {method} seed {seed}: {s.steps} steps", flush=True)
                if method.startswith("gtp"):
                    compute = partial(run_gtp, method, seed, s, dataset, folder)
                elif method in FLOW_AGENTS:
                    compute = partial(run_flow_agent, method, seed, s, dataset, folder)
                else:
                    options = dict(batch_size=s.batch_size, episodes=s.episodes, eval_every=s.eval_every)
                    options.update(device=s.device, threads=s.threads, progress=s.progress)
                    compute = partial(run_peer, *peers(), method, seed, env_id, s.steps, **options)
                runs.run(key, settings_of(method), compute, BEFORE_RECORDED)
                report()
    finally:
        if peer:
            peer["data"].unlink(missing_ok=True)
    return report()


if __name__ == "__main__":
    main()
