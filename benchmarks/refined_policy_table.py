"""A refiner attached to a shipped policy, in closed loop: alone, unverified, verified with candidates.

Usage::

    python benchmarks/refined_policy_table.py [--policy medium] [--episodes 50] [--seed0 1000]
        [--candidates 1 4 8] [--strength 1.0] [--sigma 0.1] [--workers 1] [--work /tmp/ctflow_bench]

Every configuration runs the same episodes (``env.reset(seed=seed0 + i)``, Hopper-v5,
deterministic policy), so differences are paired. Configurations:

- ``alone``: the policy;
- ``refiner, unverified``: ``RefinedPolicy(policy, refiner, env, strength, verify=False)``;
- ``gaussian, unverified``: the same with ``GaussianPerturbation(sigma)`` (blind perturbation:
  what changing the policy's windows at random does to whole episodes);
- ``refiner, n verified``: n candidates (strength ladder up to ``--strength``), each
  replayed from a snapshot and scored by window return + gamma^16 V(end state); the best
  is executed when it beats the policy's own window;
- ``gaussian, n verified``: the same with ``GaussianPerturbation(sigma)`` candidates:
  random search at the same simulator budget (every look-ahead and replayed step is
  counted in ``sim steps / step``);
- ``... +L steps``: verification continues the policy L steps after each replayed
  window before scoring (``RefinedPolicy(continuation=L)``), so a window that makes the
  policy fall soon after is charged for it.

The refiner is ``TrajectoryRefiner(seed=0).fit(shipped dataset)`` with package defaults
(tracked execution), or ``--refiner FOLDER``. V is a ``DatasetValueFunction(seed=0)``
fitted on the whole shipped dataset (no policy-specific critic), or with ``--value
critic`` the SB3 policy's own critic (``sb3_value_function``). Both are cached in
``--work``. Writes ``refined_policy_<policy>.md`` / ``.json``; finished configurations
are cached in ``<out>/refined_policy_runs/`` so a rerun resumes.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from common import (
    RunCache,
    machine_info,
    markdown_table,
    write_results,
)  # benchmarks/ is the script's folder

from ctflow_gym import DatasetValueFunction, GaussianPerturbation, RefinedPolicy, TrajectoryRefiner, load_refiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_sb3_policy, shipped_policy_path
from ctflow_gym.refine.ensemble import EnsembleRefinement
from ctflow_gym.replay import sb3_value_function
from ctflow_gym.statistics import mean_se


class RandomlyGated:
    """Control for an agreement gate: refines each window with probability ``rate``, chosen blindly.

    Delegates everything else to ``refiner``. With the same refiner ungated inside, it
    says whether a gate helps by choosing *which* windows to refine or only by refining
    fewer of them.
    """

    def __init__(self, refiner, rate: float, seed: int):
        self.refiner, self.rate = refiner, rate
        self.rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        return getattr(self.refiner, name)

    def refine(self, observations, actions=None, strength: float = 1.0, **options):
        result = self.refiner.refine(observations, actions, strength=strength, **options)
        gated = self.rng.random(len(result.actions)) >= self.rate
        source_obs = np.asarray(observations, np.float32).reshape(result.observations.shape)
        source_act = np.asarray(actions, np.float32).reshape(result.actions.shape)
        return EnsembleRefinement(
            np.where(gated[:, None, None], source_obs, result.observations),
            np.where(gated[:, None, None], source_act, result.actions),
            gated=gated,
        )


def configurations(candidates: list[int], continuations: list[int]) -> dict[str, dict | None]:
    """Name -> RefinedPolicy settings (None: the policy alone)."""
    configs: dict[str, dict | None] = {
        "alone": None,
        "refiner, unverified": {"family": "refiner", "verify": False},
        "gaussian, unverified": {"family": "gaussian", "verify": False},
    }
    for continuation in continuations:
        suffix = f" +{continuation} steps" if continuation else ""
        for family in ("refiner", "gaussian"):
            for n in candidates:
                configs[f"{family}, {n} verified{suffix}"] = {
                    "family": family,
                    "verify": True,
                    "candidates": n,
                    "continuation": continuation,
                }
    return configs


def prepare(work: Path, refiner_folder: str | None) -> tuple[str, str]:
    """Fit (or reuse) the default refiner and the dataset value function; returns their folders."""
    work.mkdir(parents=True, exist_ok=True)
    refiner_path = Path(refiner_folder) if refiner_folder else work / "refiner_seed0"
    if not refiner_path.exists():
        TrajectoryRefiner(seed=0).fit(DEFAULT_DATASET_ID, progress_bar=False).save(refiner_path)
    value_path = work / "value_seed0"
    if not value_path.exists():
        DatasetValueFunction(seed=0).fit(DEFAULT_DATASET_ID, progress_bar=False).save(value_path)
    return str(refiner_path), str(value_path)


@lru_cache(maxsize=None)
def _parts(policy_name: str, refiner_path: str, value_path: str):
    policy = load_sb3_policy(shipped_policy_path(policy_name), env="Hopper-v5")
    value_fn = sb3_value_function(policy) if value_path == "critic" else DatasetValueFunction.load(value_path)
    return policy, load_refiner(refiner_path), value_fn


def run_episode(job: tuple) -> dict:
    """One episode of one configuration: return, fall, length, simulator steps, seconds."""
    policy_name, refiner_path, value_path, config, seed, strength, sigma, noise, replan_every, random_gate = job
    policy, refiner, value_fn = _parts(policy_name, refiner_path, value_path)
    if random_gate is not None:
        refiner = RandomlyGated(refiner, random_gate, seed)
    env = gym.make("Hopper-v5")
    actor = policy
    if config is not None:
        chosen = refiner if config["family"] == "refiner" else GaussianPerturbation("Hopper-v5", refiner.window, sigma)
        actor = RefinedPolicy(
            policy,
            chosen,
            env,
            strength=strength,
            verify=config["verify"],
            value_fn=value_fn,
            candidates=config.get("candidates", 1),
            continuation=config.get("continuation", 0),
            refine_options={"noise": noise} if noise and config["family"] == "refiner" else None,
            replan_every=replan_every,
        )
    obs, _ = env.reset(seed=seed)
    total, steps, done, terminated = 0.0, 0, False, False
    started = time.perf_counter()
    while not done:
        action, _ = actor.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps += 1
        done = terminated or truncated
    seconds = time.perf_counter() - started
    refined = [h for h in getattr(actor, "history", []) if h.get("refined")]
    windows = len(getattr(actor, "history", []))
    return {
        "seed": seed,
        "return": total,
        "fell": bool(terminated),
        "steps": steps,
        "simulator_steps": getattr(actor, "simulator_steps", 0),
        "seconds": seconds,
        "windows": windows,
        "windows_refined": len(refined),
    }


def summarise(episodes: list[dict], alone: list[dict] | None) -> dict:
    """Mean return, paired difference to the policy alone, falls, cost."""
    returns = np.array([e["return"] for e in episodes])
    steps = sum(e["steps"] for e in episodes)
    summary = {
        "return": mean_se(returns),
        "falls": int(sum(e["fell"] for e in episodes)),
        "simulator_steps_per_step": sum(e["simulator_steps"] for e in episodes) / steps,
        "ms_per_step": 1000 * sum(e["seconds"] for e in episodes) / steps,
        "windows_refined_fraction": sum(e["windows_refined"] for e in episodes)
        / max(1, sum(e["windows"] for e in episodes)),
    }
    if alone is not None:
        base = np.array([e["return"] for e in alone])
        summary["paired_difference"] = mean_se(returns - base)
        summary["relative_change"] = float(returns.mean() / base.mean() - 1.0)
        summary["episodes_better"] = int(np.sum(returns > base))
    return summary


def markdown(policy: str, results: dict, meta: dict) -> str:
    """The policy table."""
    last_seed = meta["seed0"] + meta["episodes"] - 1
    rows = []
    for name, result in results.items():
        s = result["summary"]
        paired = s.get("paired_difference")
        rows.append(
            [
                name,
                f"{s['return']['mean']:.1f} ± {s['return']['se']:.1f}",
                "-" if paired is None else f"{paired['mean']:+.1f} ± {paired['se']:.1f}",
                "-" if paired is None else f"{100 * s['relative_change']:+.1f}%",
                "-" if paired is None else f"{s['episodes_better']}/{meta['episodes']}",
                f"{s['falls']}/{meta['episodes']}",
                f"{s['windows_refined_fraction']:.2f}",
                f"{s['simulator_steps_per_step']:.1f}",
                f"{s['ms_per_step']:.2f}",
            ]
        )
    header = [
        "configuration",
        "return (mean ± se)",
        "paired diff vs alone",
        "change",
        "episodes better",
        "falls",
        "windows refined",
        "sim steps / step",
        "ms / step",
    ]
    return (
        "\n".join(
            [
                f"# Refiner attached to the shipped `{policy}` policy (closed loop, Hopper-v5)",
                "",
                (
                    f"{meta['episodes']} paired episodes (reset seeds {meta['seed0']}..{last_seed}), "
                    f"deterministic policy, strength {meta['strength']} (candidates: a ladder up to it; refiner "
                    f"latent noise {meta.get('noise', 0.0)}), "
                    "Gaussian sigma "
                    f"{meta['sigma']}, verification score = return + 0.99^steps V(end), V = "
                    + (
                        "the policy's own SAC critic"
                        if meta.get("value") == "critic"
                        else "DatasetValueFunction fitted on the shipped dataset"
                    )
                    + f". Refiner: `{meta['refiner']}`"
                    + (f", replanning every {meta['replan_every']} steps" if meta.get("replan_every") else "")
                    + (
                        f", each window refined with probability {meta['random_gate']} only (random gate)"
                        if meta.get("random_gate") is not None
                        else ""
                    )
                    + f". Machine: {meta['machine']}. "
                    f"Wall time {meta['wall_minutes']:.0f} min ({meta['workers']} worker processes)."
                ),
                "",
                markdown_table(header, rows),
                "",
                (
                    "`windows refined`: share of windows where the executed window was a refined one (verified: "
                    "it beat the policy's own window). `sim steps / step`: look-ahead and replayed simulator steps "
                    "per executed env step (the verification budget)."
                ),
            ]
        )
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="medium")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed0", type=int, default=1000)
    parser.add_argument("--candidates", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument(
        "--continuations", type=int, nargs="+", default=[0, 48], help="policy steps after each scored window"
    )
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument(
        "--noise", type=float, default=0.0, help="refiner latent noise (samples around the refinement; default 0)"
    )
    parser.add_argument(
        "--replan-every", type=int, default=None, help="receding horizon: steps executed per plan (default: H)"
    )
    parser.add_argument(
        "--random-gate",
        type=float,
        default=None,
        help="control: refine each window with this probability only, chosen at random (default: off)",
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--refiner", default=None, help="refiner checkpoint folder (default: fit seed 0)")
    parser.add_argument("--work", default="/tmp/ctflow_bench")
    parser.add_argument("--only", nargs="*", default=None, help="run only these configuration names")
    parser.add_argument("--tag", default="", help="suffix of the result files (e.g. for another refiner)")
    parser.add_argument(
        "--value",
        choices=["dataset", "critic"],
        default="dataset",
        help="V of the verification score: fitted on the dataset, or the SB3 policy's own critic",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    shipped_policy_path(args.policy)  # a clear error for an unknown name, before anything is fitted
    out = Path(args.out)
    refiner_path, value_path = prepare(Path(args.work), args.refiner)
    if args.value == "critic":
        value_path = "critic"
    cache = RunCache(out / "refined_policy_runs")
    settings = {
        "episodes": args.episodes,
        "seed0": args.seed0,
        "strength": args.strength,
        "sigma": args.sigma,
        "refiner": args.refiner or "default fit, seed 0",
        "value": args.value,
        "noise": args.noise,
    }
    if args.replan_every is not None:  # only when set, so runs cached before the option still match
        settings["replan_every"] = args.replan_every
    if args.random_gate is not None:
        settings["random_gate"] = args.random_gate
    results: dict[str, dict] = {}
    started = time.perf_counter()
    for name, config in configurations(args.candidates, args.continuations).items():
        if args.only is not None and name not in args.only and name != "alone":
            continue
        key = f"{args.policy}{args.tag}__{name.replace(', ', '_').replace(' ', '_').replace('+', '')}"
        run = cache.get(key, settings)
        if run is None:
            jobs = [
                (
                    args.policy,
                    refiner_path,
                    value_path,
                    config,
                    args.seed0 + i,
                    args.strength,
                    args.sigma,
                    args.noise,
                    args.replan_every,
                    args.random_gate,
                )
                for i in range(args.episodes)
            ]
            config_started = time.perf_counter()
            if args.workers > 1:
                with ProcessPoolExecutor(args.workers) as pool:
                    episodes = list(pool.map(run_episode, jobs))
            else:
                episodes = [run_episode(job) for job in jobs]
            run = cache.put(
                key,
                {**settings, "episodes_run": episodes, "wall_seconds": time.perf_counter() - config_started},
            )
        results[name] = {"episodes": run["episodes_run"], "wall_seconds": run["wall_seconds"]}
        alone = results.get("alone", {}).get("episodes") if name != "alone" else None
        results[name]["summary"] = summarise(results[name]["episodes"], alone)
        s = results[name]["summary"]
        print(f"{name}: return {s['return']['mean']:.1f}, falls {s['falls']}", flush=True)
    meta = {
        **settings,
        "policy": args.policy,
        "workers": args.workers,
        "machine": machine_info(),
        "wall_minutes": sum(r["wall_seconds"] for r in results.values()) / 60,
        "this_run_minutes": (time.perf_counter() - started) / 60,
    }
    name = f"refined_policy_{args.policy}{args.tag}"
    write_results(out, name, {"meta": meta, "results": results}, markdown(args.policy, results, meta))
    print((out / f"{name}.md").read_text())


if __name__ == "__main__":
    main()
