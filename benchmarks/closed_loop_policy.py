"""Does refinement help the shipped near-expert SAC policy in closed loop? Episode returns and cost.

On the same episodes (reset seeds 1000 + i, a fresh env and policy each): the policy alone; at each
strength, the refiner attached after it (``RefinedPolicy``) without verification, with replay
verification (the better of the policy's and the refined window by its own return), and with
verification that adds gamma^H x the SAC critic's value of the window's end state; and at
``--wrapper-strength`` the policy acting in ``RefinementWrapper`` commit mode (a refined window that
scores higher on replay is committed and the episode goes on from its end). The refined actions
are executed open loop, as in the committed table (tracked execution: ``refined_policy_table.py``).
Reports the mean return and its standard error, D4RL scores, falls, the share of windows refined
and wall time per env step; the Results page adds the paired differences.

    python benchmarks/closed_loop_policy.py [--episodes 20] [--strengths 0.25 0.5 1.0] [--refiner PATH]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
from harness import Settings, option, parse, write_results

from ctflow_gym import TrajectoryRefiner
from ctflow_gym.data import DEFAULT_DATASET_ID, default_policy_path, load_sb3_policy, normalized_score
from ctflow_gym.statistics import mean_se
from ctflow_gym.wrappers import RefinedPolicy, RefinementWrapper, record_episodes, sb3_value_function

OPEN = "open_loop"


@dataclasses.dataclass
class ClosedLoopSettings(Settings):
    episodes: int = option(20, "episodes per configuration")
    strengths: tuple[float, ...] = option((0.25, 0.5, 1.0), "refinement strengths")
    wrapper_strength: float = option(0.5, "the strength at which RefinementWrapper's commit mode also runs")
    refiner: str | None = option(None, "a saved TrajectoryRefiner (default: fit one on the shipped dataset)")
    save_refiner: str | None = option(None, "also save the fitted refiner here, for reuse with --refiner")
    seed: int = option(0, "the refiner's fit seed")
    max_episode_steps: int | None = option(None, "cut episodes at this many steps (default: the env's 1000)")


def run_configuration(make_policy, s: ClosedLoopSettings, wrap=None) -> dict:
    """Episodes 1000 + i of ``make_policy(env)`` on Hopper-v5 (optionally ``wrap(env)``-ped), a fresh env each."""
    records, planned, refined = [], 0, 0
    for i in range(s.episodes):
        env = gym.make("Hopper-v5", max_episode_steps=s.max_episode_steps)
        env = wrap(env) if wrap is not None else env
        policy = make_policy(env)
        records += record_episodes(env, policy, 1, seed=1000 + i)
        if isinstance(env, RefinementWrapper):
            planned, refined = planned + env.totals.windows_replayed, refined + env.totals.windows_committed
        history = getattr(policy, "history", [])
        planned, refined = planned + len(history), refined + sum(bool(w["refined"]) for w in history)
    returns = np.array([r.episode_return for r in records])
    lengths = [r.length for r in records]
    return {
        "returns": returns.tolist(),
        **mean_se(returns),
        "normalized_score": float(normalized_score("Hopper-v5", returns.mean())),
        "lengths": lengths,
        "mean_length": float(np.mean(lengths)),
        "terminated_episodes": sum(r.terminated for r in records),
        "ms_per_step": 1000 * sum(r.seconds for r in records) / max(sum(lengths), 1),
        "windows_planned": planned,
        "windows_refined": refined,
    }


def main(argv: list[str] | None = None) -> Path:
    s = parse(ClosedLoopSettings, argv)
    if s.refiner:
        refiner = TrajectoryRefiner.load(s.refiner)
    else:
        refiner = TrajectoryRefiner(window=16, seed=s.seed).fit(DEFAULT_DATASET_ID, progress_bar=False)
        if s.save_refiner:
            refiner.save(s.save_refiner)
    sac = load_sb3_policy(default_policy_path())
    critic = sb3_value_function(sac)
    rows = {"base policy": run_configuration(lambda env: sac, s)}
    for strength in s.strengths:
        for label, options in (
            ("no verification", dict(verify=False)),
            ("replay verification", dict(verify=True)),
            ("verification + SAC critic tail", dict(verify=True, value_fn=critic)),
        ):
            rows[f"strength {strength}, {label}"] = run_configuration(
                lambda env, o=options: RefinedPolicy(sac, refiner, env, strength, execution=OPEN, **o), s
            )
        if strength == s.wrapper_strength:
            for label, value_fn in (("return", None), ("return + SAC critic tail", critic)):
                wrap = lambda env, v=value_fn: RefinementWrapper(  # noqa: E731
                    env, refiner, strength, replay=True, mode="commit", value_fn=v, execution=OPEN
                )
                rows[f"strength {strength}, RefinementWrapper commit by {label}"] = run_configuration(
                    lambda env: sac, s, wrap
                )
        print(f"strength {strength} done", flush=True)
    data = {**s.recorded(), "dataset": None if s.refiner else DEFAULT_DATASET_ID, "rows": rows}
    title = "Refiner after the shipped SB3 policy, closed loop on Hopper-v5"
    return write_results(s, "closed_loop_policy", data, "closed-loop-policy", title)


if __name__ == "__main__":
    main()
