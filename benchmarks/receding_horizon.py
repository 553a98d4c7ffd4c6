"""A refiner attached at run time with a receding horizon, unverified: every m steps refine the policy's next window.

``RefinedPolicy(policy, refiner, env, verify=False, replan_every=m)`` looks the policy's own
next H steps ahead in the simulator, refines that window at strength alpha and executes only
its first m actions (open loop) before it looks ahead again from the state reached; nothing
is replayed or chosen. Whole windows (m = H) refined this way fall at once on the Hopper
measurements (the refined window's later actions were planned for states the realised ones
drift away from), so the question here is how m and alpha shape the closed loop, and whether
a setting found on one fit holds for others. Stages (each a cached run under
``<out>/<name>_runs/``, so a rerun resumes):

1. the policy (``--policy``, as ``distillation.py``: shipped:NAME, a file, or ``bc``: BC seed 0
   on ``--dataset``'s best episodes holding ``--top-fraction`` of the steps), deterministic, on
   the validation episodes (``--select-episodes``, reset seeds 1000..) and on the test episodes
   (``--episodes``, reset seeds 5000.., none of which selected anything);
2. per ``--refiner-seeds`` seed, CTFlow's ``TrajectoryRefiner`` fitted on ``--dataset``
   (``--window``, ``--refiner-steps`` for each part, as ``distillation.py`` fits it);
3. the grid, per fit: every ``--replans`` m x ``--strengths`` alpha on the validation episodes;
4. on the test episodes, per fit: the setting best on that fit's validation episodes
   ("selected") and ``--fixed m alpha`` for every fit alike (chosen once, beforehand: the
   default is the best of a first grid on fit seed 0's validation episodes of the replay data,
   so fit 0's fixed row is a selected one too), each beside the policy on the same episodes.

    python benchmarks/receding_horizon.py --dataset ctflow/hopper/medium-replay-v1 --policy bc --top-fraction 0.1
    python benchmarks/receding_horizon.py --dataset ctflow/hopper/medium-v1 --policy shipped:hopper-medium
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from pathlib import Path

import gymnasium as gym
from harness import Runs, Settings, option, parse, write_results
from policy_improvement import benchmark_policy, closed_loop, fitted_refiner

from ctflow_gym import RefinedPolicy
from ctflow_gym.data import load_dataset

VALIDATION_SEED = 1000
"""Reset seed of the first validation episode (the grid's, and what ``selected`` is chosen on)."""

TEST_SEED = 5000
"""Reset seed of the first test episode: far from the validation ones, so no episode is in both."""


@dataclasses.dataclass
class RecedingHorizonSettings(Settings):
    dataset: str = option("ctflow/hopper/medium-replay-v1", "the data the refiner is fitted on (id or path)")
    policy: str = option("bc", "the policy: shipped:NAME, an actor folder, an SB3 zip, or bc (BC on the data)")
    top_fraction: float = option(0.1, "with --policy bc: BC on the best episodes holding this fraction of the steps")
    bc_steps: int = option(20000, "with --policy bc: its BC training steps (seed 0)")
    window: int = option(16, "the refiner's window H (TrajectoryRefiner's default)")
    refiner_steps: int = option(4000, "the refiner's autoencoder, flow and inverse-dynamics steps")
    refiner_seeds: tuple[int, ...] = option((0, 1, 2), "refiners fitted, one per seed")
    replans: tuple[int, ...] = option((1, 2, 4, 8, 12, 16), "steps m executed of each refined window (the grid)")
    strengths: tuple[float, ...] = option((0.5, 1.0, 1.5), "refinement strengths alpha (the grid)")
    fixed: tuple[float, ...] = option((8, 1.0), "m and alpha run on the test episodes for every fit")
    execution: str = option("open_loop", "how a refined window is executed", choices=("open_loop", "tracked"))
    select_episodes: int = option(10, "validation episodes per grid setting (reset seeds 1000..)")
    episodes: int = option(50, "test episodes of the policy and of each test row (reset seeds 5000..)")
    work: str = option("/tmp/ctflow_receding_horizon", "where the fitted refiners and the policy go")
    name: str | None = option(None, "result file name (default receding_horizon_<dataset>)")


def main(argv: list[str] | None = None) -> Path:
    s = parse(RecedingHorizonSettings, argv)
    if len(s.fixed) != 2 or int(s.fixed[0]) != s.fixed[0]:
        raise SystemExit(f"--fixed takes m (an integer) and alpha; got {' '.join(map(str, s.fixed))}")
    if not all(1 <= m <= s.window for m in (*s.replans, int(s.fixed[0]))):
        raise SystemExit(f"--replans and --fixed's m must be in [1, --window {s.window}]")
    dataset = load_dataset(s.dataset)
    env_id = dataset.env_spec.id
    name = s.name or "receding_horizon_" + dataset.id.replace("/", "_").replace("-", "_")
    work = Path(s.work) / name
    runs = Runs(Path(s.out) / f"{name}_runs")
    base = {"dataset": dataset.id, "policy": s.policy}
    policy, naming, described = benchmark_policy(s, dataset, work)
    base.update(naming)
    validation = {**base, "episodes": s.select_episodes, "reset_seed": VALIDATION_SEED}
    test = {**base, "episodes": s.episodes, "reset_seed": TEST_SEED}
    policy_runs = {
        "validation": runs.run("policy_validation", validation, lambda: closed_loop(env_id, policy, s.select_episodes)),
        "test": runs.run("policy_test", test, lambda: closed_loop(env_id, policy, s.episodes, seed=TEST_SEED)),
    }

    def refined(refiner, m: int, alpha: float, settings: dict, key: str) -> dict:
        def measure() -> dict:
            attached = RefinedPolicy(
                policy, refiner, gym.make(env_id), strength=alpha, verify=False, execution=s.execution,
                replan_every=m,
            )  # fmt: skip
            started = time.perf_counter()
            result = closed_loop(env_id, attached, settings["episodes"], attached.env, seed=settings["reset_seed"])
            refined_windows = sum(bool(record.get("refined")) for record in attached.history)
            return {**result, "seconds": time.perf_counter() - started, "simulator_steps": attached.simulator_steps,
                    "plans": len(attached.history), "refined_windows": refined_windows}  # fmt: skip

        return runs.run(key, {**settings, "replan_every": m, "strength": alpha, "execution": s.execution}, measure)

    fits, grid, tested = [], [], []
    for seed in s.refiner_seeds:
        fit_settings = {"dataset": dataset.id, "window": s.window, "refiner_steps": s.refiner_steps, "seed": seed}
        folder = work / f"refiner_seed{seed}"
        fitted, refiner = fitted_refiner(
            runs, fit_settings, dataset, s.window, s.refiner_steps, folder, seed, f"fit_seed{seed}"
        )
        fits.append({"seed": seed, "fit_seconds": fitted.get("fit_seconds")})
        scored = []
        for m, alpha in itertools.product(s.replans, s.strengths):
            key = f"grid_seed{seed}_m{m}_a{alpha:g}".replace(".", "_")
            run = refined(refiner, m, alpha, {**fit_settings, **validation}, key)
            scored.append(run)
            grid.append({**run, "refiner_seed": seed})
        best = max(scored, key=lambda run: run["mean_return"])
        chosen = {"selected": (best["replan_every"], best["strength"]), "fixed": (int(s.fixed[0]), float(s.fixed[1]))}
        for which, (m, alpha) in chosen.items():
            key = f"test_seed{seed}_m{m}_a{alpha:g}".replace(".", "_")
            tested.append({**refined(refiner, m, alpha, {**fit_settings, **test}, key), "refiner_seed": seed,
                           "which": which})  # fmt: skip
    data = {
        "meta": {**s.recorded(), "dataset": dataset.id, "env_id": env_id},
        "policy": policy_runs,
        "fits": fits,
        "grid": grid,
        "test": tested,
    }
    title = f"A refiner attached with a receding horizon, unverified ({described})"
    return write_results(s, name, data, "receding_horizon", title)


if __name__ == "__main__":
    main()
