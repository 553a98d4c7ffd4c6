"""GTP and GTP-BC next to d3rlpy's IQL and TD3+BC on the same data (issue 5).

Same dataset (the shipped default unless ``--dataset``), same batch size, same number
of gradient steps, the same seeds; each run is evaluated for ``--episodes`` episodes
whose first reset is seeded with 10000 + seed. Reported: D4RL-normalised score (mean
+- std over seeds), gradient steps per second (training only, no evaluation inside),
and the action latency of the GTP actor at batch 1 and 256 for K = 1, 2, 5 next to a
plain MLP actor of the same width and depth.

d3rlpy 2.8 pins gymnasium 1.0.0, so it runs in its own virtual environment that this
script makes (``--peer-venv``, default ``.bench-venvs/d3rlpy``) with torch 2.13.0,
d3rlpy 2.8.1 and gymnasium[mujoco] 1.0.0, and is handed the same transitions as an
``.npz`` (see ``peer_d3rlpy.py``). Our dependencies are untouched.

Every finished run is written to ``<out>/gtp_vs_peers_runs/<method>-seed<k>.json`` and
skipped when the script runs again, so an interrupted benchmark resumes; the summary
(``gtp_vs_peers.md`` / ``.json``) is rewritten after every run from what is there.

    python benchmarks/gtp_vs_peers.py                      # 50k steps, 3 seeds, 4 methods
    python benchmarks/gtp_vs_peers.py --steps 2000 --seeds 0 --out /tmp/smoke
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
from common import RunCache, machine_info, write_atomic  # benchmarks/ is the script's folder

from agents import agent_class
from agents.gtp.networks import FlowMapActor, plain_mlp_actor
from agents.gtp.schedule import sampling_times
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_transitions, normalized_score

METHODS = ("gtp", "gtp-bc", "iql", "td3+bc")
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
    """Train GTP (eta from the paper's hopper-medium-replay row) or GTP-BC (eta = 0)."""
    eta = 0.0 if method == "gtp-bc" else args.eta
    agent = agent_class("gtp")(env_id, dataset, eta=eta, batch_size=args.batch_size, device=args.device, seed=seed)
    started = time.perf_counter()
    agent.learn(args.steps, progress_bar=args.progress)
    train_seconds = time.perf_counter() - started
    by_steps = {}
    for steps in (1, 2, 5):
        result = agent.evaluate(args.episodes, seed=10_000 + seed, sampling_steps=steps)
        by_steps[f"K={steps}"] = {"returns": result["returns"], "normalized_score": result["normalized_score"]}
    return {
        "method": method,
        "seed": seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "eta": eta,
        "returns": by_steps["K=5"]["returns"],
        "by_sampling_steps": by_steps,
        "train_seconds": train_seconds,
        "steps_per_second": args.steps / train_seconds,
    }


def run_peer(method: str, seed: int, args, env_id: str, python: Path, data_file: Path, work: Path) -> dict:
    """Run ``peer_d3rlpy.py`` in the peer venv and read its JSON back."""
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
        "--out",
        str(out),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL if not args.progress else None)
    result = json.loads(out.read_text())
    out.unlink()
    return {"method": method, **{k: v for k, v in result.items() if k != "algo"}}


def interleaved_timings(functions: dict, rounds: int, block: int = 10) -> dict[str, float]:
    """Median microseconds per call of each function, measured in interleaved blocks.

    Each round times ``block`` calls of every function in turn, so load from other
    processes hits all of them alike; the medians over rounds are returned, and the
    ratios the caller forms from them compare like with like.
    """
    for function in functions.values():
        for _ in range(50):
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter_ns()
            for _ in range(block):
                function()
            samples[name].append((time.perf_counter_ns() - started) / block / 1e3)
    return {name: float(np.median(values)) for name, values in samples.items()}


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


def summarize(runs: list[dict], env_id: str) -> dict:
    """Per method: normalised score mean +- std over seeds, steps/s, seeds done."""
    table = {}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        scores = [float(np.mean(normalized_score(env_id, r["returns"]))) for r in mine]
        entry = {
            "seeds": [r["seed"] for r in mine],
            "score_per_seed": scores,
            "score_mean": float(np.mean(scores)),
            "score_std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0,
            "score_median": float(np.median(scores)),
            "return_mean": float(np.mean([np.mean(r["returns"]) for r in mine])),
            "steps_per_second": float(np.mean([r["steps_per_second"] for r in mine])),
        }
        if "by_sampling_steps" in mine[0]:
            for key in ("K=1", "K=2"):
                per_seed = [
                    float(np.mean(normalized_score(env_id, r["by_sampling_steps"][key]["returns"]))) for r in mine
                ]
                entry[f"score_mean_{key}"] = float(np.mean(per_seed))
                entry[f"score_std_{key}"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
        table[method] = entry
    return table


def markdown(summary: dict, latency: dict | None, meta: dict) -> str:
    """The summary table, the latency table and the run details as the results markdown file."""
    lines = [
        "# GTP vs d3rlpy peers on the same data",
        "",
        f"Dataset `{meta['dataset']}` ({meta['transitions']} transitions), env {meta['env_id']}; "
        f"{meta['steps']} gradient steps, batch {meta['batch_size']}, seeds {meta['seeds']}, "
        f"{meta['episodes']} evaluation episodes per run (first reset seeded 10000 + seed). "
        f"Runs made at commit(s) {', '.join(meta['run_commits'])} on {meta['machine']['cores']} CPU cores "
        f"(GPU: {meta['machine']['gpu']}), {meta['machine']['torch_threads']} torch thread per run; "
        f"training time of all runs {meta['train_minutes']:.0f} min.",
        "",
        "| method | seeds done | D4RL score (mean +- sample std over seeds) | median | per seed | mean return "
        "| gradient steps/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, row in summary.items():
        label = {"gtp": "GTP (K=5)", "gtp-bc": "GTP-BC (K=5)", "iql": "d3rlpy IQL", "td3+bc": "d3rlpy TD3+BC"}[method]
        per_seed = ", ".join(f"{s:.1f}" for s in row["score_per_seed"])
        lines.append(
            f"| {label} | {len(row['seeds'])} | {row['score_mean']:.1f} +- {row['score_std']:.1f} "
            f"| {row['score_median']:.1f} | {per_seed} | {row['return_mean']:.1f} | {row['steps_per_second']:.1f} |"
        )
        for key in ("K=1", "K=2"):
            if f"score_mean_{key}" in row:
                lines.append(
                    f"| {label.split(' ')[0]} ({key}) | {len(row['seeds'])} "
                    f"| {row[f'score_mean_{key}']:.1f} +- {row[f'score_std_{key}']:.1f} | | | | |"
                )
    if latency:
        lines += [
            "",
            "## Action latency (median per call of the actor network, torch threads as above)",
            "",
            f"Measured at commit {latency['machine']['commit']} with {latency['machine']['torch_threads']} "
            "torch thread(s), the calls interleaved in blocks so that",
            "load from other processes hits all of them alike. Deterministic = `predict(deterministic=True)` "
            "(a_T = 0, the default); stochastic draws a_T.",
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
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the missing runs (resumable), measure latency once, rewrite the summary files."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=DEFAULT_DATASET_ID)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--eta", type=float, default=5.0, help="GTP's eta (paper, hopper-medium-replay: 5)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (ours and the peers')")
    parser.add_argument(
        "--latency-rounds",
        type=int,
        default=300,
        help="interleaved timing rounds (10 calls each) at batch 1; a tenth at batch 256",
    )
    parser.add_argument("--peer-venv", default=".bench-venvs/d3rlpy")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results")))
    parser.add_argument("--progress", action="store_true")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing; (re)measure latency if its file is missing and rewrite the summary",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    cache = RunCache(out / "gtp_vs_peers_runs")
    work = cache.folder
    dataset = load_dataset(args.dataset)
    env_id = dataset.env_spec.id
    meta = {
        "dataset": dataset.id,
        "transitions": int(dataset.total_steps),
        "env_id": env_id,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "episodes": args.episodes,
        "machine": machine_info(),
    }
    latency_file = work / "latency.json"
    if not latency_file.exists():
        obs_dim, act_dim = int(dataset.observation_space.shape[0]), int(dataset.action_space.shape[0])
        rows = action_latency(obs_dim, act_dim, args.device, args.latency_rounds)
        write_atomic(latency_file, json.dumps({**rows, "machine": machine_info()}, indent=2))
    latency = json.loads(latency_file.read_text())

    def report() -> None:
        runs = cache.runs("*-seed*.json")
        runs = [r for r in runs if r["steps"] == args.steps]
        summary = summarize(runs, env_id)
        meta["seeds"] = sorted({r["seed"] for r in runs})
        meta["run_commits"] = sorted({r["machine"]["commit"] for r in runs})
        meta["train_minutes"] = sum(r["train_seconds"] for r in runs) / 60
        everything = {"meta": meta, "summary": summary, "latency": latency, "runs": runs}
        write_atomic(out / "gtp_vs_peers.json", json.dumps(everything, indent=2))
        write_atomic(out / "gtp_vs_peers.md", markdown(summary, latency, meta))

    peer_python = data_file = None
    try:
        for seed in [] if args.report_only else args.seeds:
            for method in args.methods:
                name = f"{method}-seed{seed}"
                if cache.get(name, {"steps": args.steps}) is not None:
                    continue
                print(f"[gtp_vs_peers] {method} seed {seed}: {args.steps} steps", flush=True)
                if method.startswith("gtp"):
                    result = run_gtp(method, seed, args, env_id, dataset)
                else:
                    if peer_python is None:
                        peer_python = ensure_peer_venv(Path(args.peer_venv))
                        data_file = work / ".transitions.npz"
                        export_transitions(dataset, data_file)
                    result = run_peer(method, seed, args, env_id, peer_python, data_file, work)
                result["machine"] = meta["machine"]  # the code that ran is the commit at start
                cache.put(name, result)
                score = np.mean(normalized_score(env_id, result["returns"]))
                print(
                    f"[gtp_vs_peers] {method} seed {seed}: score {score:.1f}, {result['steps_per_second']:.1f} steps/s",
                    flush=True,
                )
                report()
    finally:
        if data_file is not None and data_file.exists():
            data_file.unlink()
    report()
    print((out / "gtp_vs_peers.md").read_text())


if __name__ == "__main__":
    main()
