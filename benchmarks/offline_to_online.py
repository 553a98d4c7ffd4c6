"""Offline-to-online fine-tuning (DeFlow's second claim): online steps against the same number of offline steps.

For each seed, one offline-trained agent (FQL or DeFlow at GTP's network sizes by default, the
checkpoint ``gtp_vs_peers.py`` left in its work folder, or trained here, resumable) is continued
two ways for the same number of gradient steps:

- ``online``: ``learn_online`` (:mod:`agents.online`, FQL's online phase): each env step, acting
  with the policy's own noise, is appended to the dataset's rows and followed by one gradient step
  on minibatches drawn from both;
- ``offline``: ``learn`` on the dataset alone, the offline-only control.

Both are evaluated every ``--eval-every`` steps as ``learn`` evaluates (``predict(deterministic=True)``,
``--episodes`` episodes in ``--envs`` envs); a run's score is the mean D4RL score of its last
``--last`` evaluations, its start the offline agent's score at the hand-over (evaluated once here
with the same protocol). Checkpoints every evaluation make each arm resumable; finished arms are
cached in ``<out>/<name>_runs``.

    python benchmarks/offline_to_online.py --offline-from /tmp/ctflow_gtp_vs_peers/flow_agents_hopper_30k
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import numpy as np
from gtp_vs_peers import FLOW_AGENTS, FLOW_NETWORKS
from harness import Runs, Settings, option, parse, write_results

from agents import load_agent
from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

ARMS = ("online", "offline")


@dataclasses.dataclass
class OnlineSettings(Settings):
    dataset: str = option(DEFAULT_DATASET_ID, "Minari dataset id or path")
    agent: str = option("deflow", "agent to fine-tune", choices=tuple(FLOW_AGENTS))
    flow_networks: str = option("gtp", "network sizes of an agent trained here", choices=tuple(FLOW_NETWORKS))
    offline_steps: int = option(30_000, "offline gradient steps before the hand-over")
    online_steps: int = option(20_000, "steps after it: env steps online, gradient steps in both arms")
    eval_every: int = option(5_000, "evaluate every this many steps after the hand-over")
    last: int = option(2, "a run's score: the mean of its last this many evaluations")
    episodes: int = option(10, "episodes per evaluation")
    envs: int = option(10, "evaluation envs (vectorised)")
    seeds: tuple[int, ...] = option((0,), "seeds")
    arms: tuple[str, ...] = option(ARMS, "arms to run", choices=ARMS)
    offline_from: str | None = option(None, "a gtp_vs_peers work folder holding <agent>/seed<k>/model checkpoints")
    work: str = option("/tmp/ctflow_offline_to_online", "checkpoints")
    name: str | None = option(None, "result file name (default offline_to_online_<agent>)")


def offline_agent(s: OnlineSettings, seed: int, dataset, folder: Path) -> Path:
    """The checkpoint of the offline agent at ``s.offline_steps``: copied from ``--offline-from`` or trained here."""
    model = folder / "handover"  # never written by an arm (they checkpoint into folder / arm)
    if s.offline_from:
        source = Path(s.offline_from) / s.agent / f"seed{seed}" / "model"
        if not model.exists():
            scratch = model.with_name(f".offline-{os.getpid()}.tmp")  # arms may run in parallel processes
            shutil.copytree(source, scratch)
            try:
                os.replace(scratch, model)
            except OSError:  # another arm's process put it there first
                shutil.rmtree(scratch)
        return model
    agent = FLOW_AGENTS[s.agent](dataset.env_spec.id, dataset, seed=seed, **FLOW_NETWORKS[s.flow_networks])
    agent.learn(s.offline_steps, checkpoint_path=model, checkpoint_freq=s.eval_every, resume=True)
    return model


def run_arm(arm: str, seed: int, s: OnlineSettings, dataset, folder: Path) -> dict:
    """Continue the offline agent ``arm``'s way for ``s.online_steps``; its curve, start included."""
    start = offline_agent(s, seed, dataset, folder)
    agent = load_agent(start, dataset=dataset, device="cpu")
    if agent.num_timesteps != s.offline_steps:
        raise SystemExit(f"{start}: an agent at step {agent.num_timesteps}, not at --offline-steps {s.offline_steps}")
    handover = agent.evaluate(s.episodes, n_envs=s.envs)["normalized_score"]
    options = dict(eval_freq=s.eval_every, n_eval_episodes=s.episodes, n_eval_envs=s.envs, resume=True)
    options.update(checkpoint_path=folder / arm, checkpoint_freq=s.eval_every)
    if arm == "online":
        agent.learn_online(total_timesteps=s.online_steps, **options)
    else:
        agent.learn(s.offline_steps + s.online_steps, **options)
    after = [e for e in agent.eval_history if e["step"] > s.offline_steps]  # the offline run's own are in it too
    curve = [{"step": e["step"], "score": e["normalized_score"]} for e in after]
    run = {"arm": arm, "seed": seed, "handover_step": s.offline_steps, "handover_score": handover, "curve": curve}
    if s.agent == "deflow":
        run["trust_region"] = agent.trust_region
    return run


def summarize(runs: list[dict], last: int) -> dict:
    """Per arm: seeds, hand-over and final scores (mean of the last ``last`` evaluations) and their gains."""
    table = {}
    for arm in ARMS:
        mine = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
        if not mine:
            continue
        final = [float(np.mean([p["score"] for p in r["curve"][-last:]])) for r in mine]
        start = [r["handover_score"] for r in mine]
        table[arm] = {
            "seeds": [r["seed"] for r in mine],
            "handover": start,
            "final": final,
            "gain": [f - b for f, b in zip(final, start)],
            "median_final": float(np.median(final)),
            "median_gain": float(np.median([f - b for f, b in zip(final, start)])),
        }
    return table


def main(argv: list[str] | None = None) -> Path:
    s = parse(OnlineSettings, argv)
    name = s.name or f"offline_to_online_{s.agent}"
    runs = Runs(Path(s.out) / f"{name}_runs")
    dataset = load_dataset(s.dataset)
    recorded = {"agent": s.agent, "offline_steps": s.offline_steps, "online_steps": s.online_steps}
    recorded.update(eval_every=s.eval_every, episodes=s.episodes, dataset=s.dataset)
    for seed in s.seeds:
        for arm in s.arms:
            folder = Path(s.work) / name / f"seed{seed}"
            print(f"[offline_to_online] {s.agent} seed {seed}: {arm}, {s.online_steps} steps", flush=True)
            runs.run(f"{arm}-seed{seed}", recorded, lambda arm=arm, seed=seed: run_arm(arm, seed, s, dataset, folder))
    stored = [r for r in runs.all("*-seed*.json") if all(r.get(k) == v for k, v in recorded.items())]
    meta = {**s.recorded(), "env_id": dataset.env_spec.id, "seeds": sorted({r["seed"] for r in stored})}
    meta["run_commits"] = sorted({r["machine"]["commit"] for r in stored})
    data = {"meta": meta, "summary": summarize(stored, s.last), "runs": stored}
    title = f"Offline-to-online fine-tuning of {s.agent}: online steps against offline steps"
    return write_results(s, name, data, "offline_to_online", title)


if __name__ == "__main__":
    main()
