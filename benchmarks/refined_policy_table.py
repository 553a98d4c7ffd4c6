"""A refiner attached to a shipped policy, in closed loop: alone, unverified, verified with candidates.

Every configuration runs the same episodes (``env.reset(seed=seed0 + i)``, Hopper-v5, the
policy deterministic), so differences are paired:

- ``alone``: the policy;
- ``refiner, unverified``: ``RefinedPolicy(policy, refiner, env, strength, verify=False)``;
- ``gaussian, unverified``: the same with ``GaussianPerturbation(sigma)`` (blind perturbation);
- ``refiner, n verified``: n candidates (a strength ladder up to ``--strength``), each replayed
  from a snapshot and scored by window return + gamma^16 V(end state); the best is executed
  when it beats the policy's own window;
- ``gaussian, n verified``: Gaussian candidates the same way, random search at the same simulator
  budget (every look-ahead and replayed step is counted in ``sim steps / step``);
- ``... +L steps``: verification runs the policy L more steps after each replayed window before
  scoring (``RefinedPolicy(continuation=L)``), so a window that makes the policy fall soon after
  is charged for it.

The refiner is ``TrajectoryRefiner(seed=0).fit(shipped dataset)`` (package defaults, tracked
execution) or ``--refiner FOLDER``; V is a ``DatasetValueFunction(seed=0)`` fitted on the shipped
dataset, or with ``--value critic`` the SB3 policy's own critic; both fits are kept in ``--work``.
``--random-gate p`` is a control for an agreement gate: each window is refined with probability p
only, chosen blindly. Each finished configuration is cached in ``<out>/refined_policy_runs/``.

    python benchmarks/refined_policy_table.py [--policy medium] [--episodes 50] [--candidates 1 4 8]
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import gymnasium as gym
import numpy as np
from harness import Runs, Settings, option, parse, write_results

from ctflow_gym import DatasetValueFunction, GaussianPerturbation, RefinedPolicy, TrajectoryRefiner, load_refiner
from ctflow_gym.data import DEFAULT_DATASET_ID, load_sb3_policy, shipped_policy_path
from ctflow_gym.refine.ensemble import EnsembleRefinement
from ctflow_gym.replay import sb3_value_function
from ctflow_gym.statistics import mean_se
from ctflow_gym.wrappers import record_episodes


@dataclasses.dataclass
class PolicyTableSettings(Settings):
    policy: str = option("medium", "shipped policy")
    episodes: int = option(50, "paired episodes per configuration")
    seed0: int = option(1000, "reset seed of the first episode")
    candidates: tuple[int, ...] = option((1, 4, 8), "verified candidates per window")
    continuations: tuple[int, ...] = option((0, 48), "policy steps run after each scored window")
    strength: float = option(1.0, "refinement strength (candidates: a ladder up to it)")
    sigma: float = option(0.1, "Gaussian candidates' sigma")
    noise: float = option(0.0, "refiner latent noise (samples around the refinement)")
    replan_every: int | None = option(None, "receding horizon: steps executed per plan (default: the window)")
    random_gate: float | None = option(None, "control: refine each window with this probability only")
    workers: int = option(1, "worker processes (episodes in parallel)")
    refiner: str | None = option(None, "refiner checkpoint folder (default: fit seed 0 on the shipped dataset)")
    value: str = option("dataset", "V of the verification score", choices=("dataset", "critic"))
    work: str = option("/tmp/ctflow_bench", "where the default refiner and value function are kept")
    only: tuple[str, ...] | None = option(None, "run only these configurations (and alone)", nargs="*")
    tag: str = option("", "suffix of the result files (e.g. for another refiner)")
    max_episode_steps: int | None = option(None, "cut episodes at this many steps (default: the env's 1000)")


class RandomlyGated:
    """Refines each window with probability ``rate``, chosen blindly; otherwise ``refiner``'s windows."""

    def __init__(self, refiner, rate: float, seed: int):
        self.refiner, self.rate, self.rng = refiner, rate, np.random.default_rng(seed)

    def __getattr__(self, name):
        return getattr(self.refiner, name)

    def refine(self, observations, actions=None, strength: float = 1.0, **options):
        result = self.refiner.refine(observations, actions, strength=strength, **options)
        gated = self.rng.random(len(result.actions))[:, None, None] >= self.rate
        source_obs = np.asarray(observations, np.float32).reshape(result.observations.shape)
        source_actions = np.asarray(actions, np.float32).reshape(result.actions.shape)
        return EnsembleRefinement(
            np.where(gated, source_obs, result.observations),
            np.where(gated, source_actions, result.actions),
            gated=gated[:, 0, 0],
        )


def configurations(candidates, continuations) -> dict[str, dict | None]:
    """Name -> RefinedPolicy settings (None: the policy alone)."""
    configs: dict[str, dict | None] = {"alone": None}
    configs.update({f"{f}, unverified": {"family": f, "verify": False} for f in ("refiner", "gaussian")})
    for continuation in continuations:
        for family in ("refiner", "gaussian"):
            for n in candidates:
                name = f"{family}, {n} verified" + (f" +{continuation} steps" if continuation else "")
                configs[name] = {"family": family, "verify": True, "candidates": n, "continuation": continuation}
    return configs


@lru_cache(maxsize=None)
def parts(policy_name: str, refiner_path: str, value_path: str):
    """The policy, the refiner and the value function, loaded once per process."""
    policy = load_sb3_policy(shipped_policy_path(policy_name), env="Hopper-v5")
    value_fn = sb3_value_function(policy) if value_path == "critic" else DatasetValueFunction.load(value_path)
    return policy, load_refiner(refiner_path), value_fn


def run_episode(job: tuple) -> dict:
    """One episode of one configuration, a fresh env and policy: return, fall, length, simulator steps, seconds."""
    s, refiner_path, value_path, config, seed = job
    policy, refiner, value_fn = parts(s.policy, refiner_path, value_path)
    if s.random_gate is not None:
        refiner = RandomlyGated(refiner, s.random_gate, seed)
    env = gym.make("Hopper-v5", max_episode_steps=s.max_episode_steps)
    actor = policy
    if config is not None:
        family = config["family"]
        chosen = refiner if family == "refiner" else GaussianPerturbation("Hopper-v5", refiner.window, s.sigma)
        options = {k: config[k] for k in ("candidates", "continuation") if k in config}
        refine_options = {"noise": s.noise} if s.noise and family == "refiner" else None
        actor = RefinedPolicy(
            policy, chosen, env, strength=s.strength, verify=config["verify"], value_fn=value_fn,
            refine_options=refine_options, replan_every=s.replan_every, **options,
        )  # fmt: skip
    [episode] = record_episodes(env, actor, 1, seed=seed)
    history = getattr(actor, "history", [])
    return {
        "seed": seed,
        "return": episode.episode_return,
        "fell": episode.terminated,
        "steps": episode.length,
        "simulator_steps": getattr(actor, "simulator_steps", 0),
        "seconds": episode.seconds,
        "windows": len(history),
        "windows_refined": sum(1 for h in history if h.get("refined")),
    }


def summarise(episodes: list[dict], alone: list[dict] | None) -> dict:
    """Mean return, paired difference with the policy alone, falls, cost."""
    returns, steps = np.array([e["return"] for e in episodes]), sum(e["steps"] for e in episodes)
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


def main(argv: list[str] | None = None) -> Path:
    s = parse(PolicyTableSettings, argv)
    shipped_policy_path(s.policy)  # a clear error for an unknown name, before anything is fitted
    work = Path(s.work)
    refiner_path = Path(s.refiner) if s.refiner else work / "refiner_seed0"
    value_path = "critic" if s.value == "critic" else str(work / "value_seed0")

    def prepare() -> None:  # the default fits, made once, when a configuration first needs them
        if not refiner_path.exists():
            TrajectoryRefiner(seed=0).fit(DEFAULT_DATASET_ID, progress_bar=False).save(refiner_path)
        if value_path != "critic" and not Path(value_path).exists():
            DatasetValueFunction(seed=0).fit(DEFAULT_DATASET_ID, progress_bar=False).save(value_path)

    runs = Runs(Path(s.out) / "refined_policy_runs")
    settings = {"episodes": s.episodes, "seed0": s.seed0, "strength": s.strength, "sigma": s.sigma}
    settings.update(refiner=s.refiner or "default fit, seed 0", value=s.value, noise=s.noise)
    for name in ("replan_every", "random_gate", "max_episode_steps"):  # only when set: older runs still match
        if getattr(s, name) is not None:
            settings[name] = getattr(s, name)
    results: dict[str, dict] = {}
    for name, config in configurations(s.candidates, s.continuations).items():
        if s.only is not None and name not in s.only and name != "alone":
            continue

        def episodes(config=config) -> dict:
            prepare()
            jobs = [(s, str(refiner_path), value_path, config, s.seed0 + i) for i in range(s.episodes)]
            if s.workers == 1:
                return {"episodes_run": [run_episode(job) for job in jobs]}
            with ProcessPoolExecutor(s.workers) as pool:
                return {"episodes_run": list(pool.map(run_episode, jobs))}

        key = f"{s.policy}{s.tag}__{name.replace(', ', '_').replace(' ', '_').replace('+', '')}"
        run = runs.run(key, settings, episodes)
        alone = results.get("alone", {}).get("episodes") if name != "alone" else None
        results[name] = {"episodes": run["episodes_run"], "wall_seconds": run["wall_seconds"]}
        results[name]["summary"] = summarise(run["episodes_run"], alone)
        print(f"{name}: return {results[name]['summary']['return']['mean']:.1f}", flush=True)
    meta = {**s.recorded(), **settings, "wall_minutes": sum(r["wall_seconds"] for r in results.values()) / 60}
    title = f"Refiner attached to the shipped `{s.policy}` policy (closed loop, Hopper-v5)"
    return write_results(
        s, f"refined_policy_{s.policy}{s.tag}", {"meta": meta, "results": results}, "refined-policy", title
    )


if __name__ == "__main__":
    main()
