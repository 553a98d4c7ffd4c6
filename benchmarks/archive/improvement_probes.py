"""Two probes of why verified window gains do not reach a BC-extracted policy (issue 29, stop 37).

Both read the improved dataset that ``benchmarks/policy_improvement.py`` wrote for its
variant "strengths 1, 2, 4, first 4 steps + 48 policy steps" (``variant3``) of the shipped
medium policy's rollouts, and the rollouts themselves (``ctflow/hopper/medium-v1``).

- ``luck``: is a kept window's gain systematic or luck of one exact state? Each of ``--windows``
  kept windows (drawn with seed 0) and its source are re-judged, exactly as the improvement
  judged them (the 4 realised steps, then 48 steps of the deterministic policy), from the
  recorded start state and from ``--perturbations`` copies of it with every joint position and
  velocity moved by N(0, scale^2), for scales 1e-4, 1e-3, 1e-2.
- ``recovery``: BC on the improved dataset plus, after each kept window, ``--recovery`` steps of
  the policy from where the window ended (real transitions: the recovery the verification
  counted and the dataset left out), ``--seed``, 20k steps, 50 episodes from reset seed 1000.

    python benchmarks/archive/improvement_probes.py luck --improved <work>/datasets/improved/variant3-v0
    python benchmarks/archive/improvement_probes.py recovery --improved <same> --recovery 12

Writes ``improvement_probe_<name>.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agents import BCAgent  # noqa: E402
from ctflow_gym.data import load_dataset  # noqa: E402
from ctflow_gym.data.actor_policies import behaviour_policy  # noqa: E402
from ctflow_gym.data.minari_io import build_record  # noqa: E402
from ctflow_gym.data.recipes import policy_path  # noqa: E402
from ctflow_gym.improve.writing import write_improved_dataset  # noqa: E402
from ctflow_gym.replay.continuation import policy_continuations  # noqa: E402
from ctflow_gym.replay.realisation import realise_window  # noqa: E402
from ctflow_gym.replay.sim_state import SIM_STATE_INFO_KEY, get_sim_state, set_sim_state  # noqa: E402


def _policy():
    return behaviour_policy(policy_path("shipped:hopper-medium"), None, "Hopper-v5", deterministic=True, seed=0)


def _kept(improved):
    """The improved dataset's kept windows (its last episodes) and their provenance."""
    episodes = build_record(improved)["improvement"]["episodes"]
    first = improved.total_episodes - len(episodes["row"])
    return first, episodes


def luck(args) -> dict:
    improved, source, policy = load_dataset(args.improved), load_dataset(args.source), _policy()
    continuation = build_record(improved)["improvement"]["config"]["continuation"]
    first, episodes = _kept(improved)
    pick = np.sort(np.random.default_rng(0).choice(len(episodes["row"]), args.windows, replace=False))
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    sim = env.unwrapped

    def judge(state, actions) -> float:
        set_sim_state(env, state)
        total, terminated, observation = 0.0, False, None
        for action in actions:
            observation, reward, terminated, _, _ = sim.step(action)
            total += float(reward)
            if terminated:
                return total
        after = policy_continuations("Hopper-v5", get_sim_state(env)[None], observation[None], policy, continuation)
        return total + float(after.returns[0])

    def perturbed(state, scale: float, seed: int):
        set_sim_state(env, state)
        noise = np.random.default_rng(seed)
        sim.set_state(sim.data.qpos + scale * noise.standard_normal(sim.model.nq),
                      sim.data.qvel + scale * noise.standard_normal(sim.model.nv))  # fmt: skip
        return get_sim_state(env)

    scales = (0.0, 1e-4, 1e-3, 1e-2)
    gains = {scale: [] for scale in scales}
    sources = {}
    kept = improved.iterate_episodes([first + int(k) for k in pick])
    for n, (k, window) in enumerate(zip(pick, kept)):
        e, t = episodes["source_episode"][k], episodes["source_start"][k]
        if e not in sources:
            sources[e] = next(source.iterate_episodes([e]))
        state = sources[e].infos[SIM_STATE_INFO_KEY][t]
        old = sources[e].actions[t : t + len(window.actions)]
        for scale in scales:
            for m in range(1 if scale == 0 else args.perturbations):
                start = state if scale == 0 else perturbed(state, scale, 1000 * n + m)
                gains[scale].append(judge(start, window.actions) - judge(start, old))
    recorded = float(np.mean([episodes["realised_gain"][k] for k in pick]))
    return {
        "windows": int(len(pick)),
        "perturbations": args.perturbations,
        "recorded_gain_mean": recorded,
        "by_scale": {
            str(scale): {
                "mean": float(np.mean(g)),
                "median": float(np.median(g)),
                "positive": float(np.mean(np.array(g) > 0)),
            }
            for scale, g in gains.items()
        },
    }


def recovery(args) -> dict:
    improved, policy = load_dataset(args.improved), _policy()
    first, _ = _kept(improved)

    class PolicyPlan:  # the policy, executed as a plan of --recovery steps
        def __len__(self):
            return args.recovery

        def action(self, observation, t):
            return np.asarray(policy(np.asarray(observation, np.float32)[None]))[0]

    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    tails = [
        realise_window(env, w.infos[SIM_STATE_INFO_KEY][-1], PolicyPlan(), w.observations[-1])
        for w in improved.iterate_episodes(list(range(first, improved.total_episodes)))
        if not w.terminations[-1]
    ]
    root = Path(args.work)
    path = write_improved_dataset(
        improved, tails, f"improved/recovery{args.recovery}-v0", root,
        {**build_record(improved), "improver": {"kind": "probe"}}, source_steps="all",
    )  # fmt: skip
    agent = BCAgent("Hopper-v5", str(path), device="cpu", seed=args.seed)
    agent.learn(20000)
    report = agent.evaluate(50, seed=1000)
    return {"recovery": args.recovery, "seed": args.seed, "transitions": len(agent.transitions),
            "mean_return": report["mean_return"], "score": report["normalized_score"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["luck", "recovery"])
    parser.add_argument("--improved", required=True, help="the variant3 improved dataset's folder")
    parser.add_argument("--source", default="ctflow/hopper/medium-v1")
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--perturbations", type=int, default=4)
    parser.add_argument("--recovery", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="/tmp/ctflow_improvement_probes")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    result = {
        "probe": args.probe,
        "improved": args.improved,
        **(luck(args) if args.probe == "luck" else recovery(args)),
    }
    out = Path(args.out) / f"improvement_probe_{args.probe}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
