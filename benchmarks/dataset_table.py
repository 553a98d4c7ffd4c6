"""Our recipe datasets beside D4RL's: return distributions, normalised scores, behaviour policies.

For each recipe built under ``--root`` (``ctflow dataset build <id> --out <root>``): episodes,
steps, episode-return min / mean / max and the mean's D4RL-normalised score, beside the
D4RL v2 dataset's mean normalised score. And each shipped behaviour policy's own return
(``--episodes`` episodes, deterministic and stochastic actions, seeds 10_000 + i).

D4RL's figures are the dataset means as offline RL papers quote them (D4RL cannot be
downloaded on the machines these results were made on, so they are not recomputed here).

    python benchmarks/dataset_table.py --root /path/to/minari --episodes 10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
from common import machine_info, markdown_table, write_results  # benchmarks/ is the script's folder

from ctflow_gym.data import load_dataset, normalized_score
from ctflow_gym.data.actor_policies import SACActorPolicy
from ctflow_gym.data.recipes import dataset_checksum, load_recipes, shipped_behaviour_policy

D4RL_DATASET_SCORES = {
    "hopper/random": 1.2,
    "hopper/medium": 44.3,
    "hopper/medium-replay": 15.0,
    "hopper/medium-expert": 64.8,
    "hopper/expert": 108.5,
    "halfcheetah/random": -0.3,
    "halfcheetah/medium": 40.7,
    "halfcheetah/medium-replay": 27.2,
    "halfcheetah/medium-expert": 64.3,
    "halfcheetah/expert": 88.1,
    "walker2d/random": 0.0,
    "walker2d/medium": 62.1,
    "walker2d/medium-replay": 14.8,
    "walker2d/medium-expert": 82.1,
    "walker2d/expert": 106.9,
}
"""Mean normalised episode score of D4RL's v2 locomotion datasets, ``"<env>/<kind>"`` (as quoted, not recomputed)."""


def _key(dataset_id: str) -> str:
    env, kind = dataset_id.split("/")[-2:]
    return f"{env}/{kind.rsplit('-v', 1)[0]}"


def dataset_rows(root: Path, recipes_path: str | None = None) -> list[dict]:
    """One row per recipe (of ``recipes_path``, default the shipped ones) whose dataset is built under ``root``."""
    rows = []
    for dataset_id, recipe in sorted(load_recipes(recipes_path).items()):
        path = root / dataset_id
        if not (path / "data").is_dir():
            continue
        dataset = load_dataset(path)
        returns = np.array([float(np.sum(e.rewards)) for e in dataset.iterate_episodes()])
        env_id = recipe.build["env_id"]
        rows.append(
            {
                "dataset_id": dataset_id,
                "env_id": env_id,
                "episodes": int(dataset.total_episodes),
                "steps": int(dataset.total_steps),
                "return_min": float(returns.min()),
                "return_mean": float(returns.mean()),
                "return_max": float(returns.max()),
                "score_mean": float(normalized_score(env_id, returns.mean())),
                "d4rl_score_mean": D4RL_DATASET_SCORES.get(_key(dataset_id)),
                "checksum_matches_recipe": recipe.sha256 is not None and dataset_checksum(path) == recipe.sha256,
            }
        )
    return rows


def policy_rows(episodes: int) -> list[dict]:
    """Each shipped behaviour policy's return, deterministic and stochastic."""
    folder = shipped_behaviour_policy("hopper-medium").parent
    rows = []
    for path in sorted(p for p in folder.iterdir() if (p / "checkpoint.json").is_file()):
        policy = SACActorPolicy.load(path, seed=0)
        env = gym.make(policy.env_id)
        row = {"policy": path.name, "env_id": policy.env_id}
        for deterministic in (True, False):
            returns = []
            for i in range(episodes):
                obs, _ = env.reset(seed=10_000 + i)
                total, done = 0.0, False
                while not done:
                    obs, reward, terminated, truncated, _ = env.step(
                        policy.predict(obs, deterministic=deterministic)[0]
                    )
                    total += float(reward)
                    done = terminated or truncated
                returns.append(total)
            mode = "deterministic" if deterministic else "stochastic"
            row[f"{mode}_return_mean"] = float(np.mean(returns))
            row[f"{mode}_return_std"] = float(np.std(returns))
            row[f"{mode}_score"] = float(normalized_score(policy.env_id, np.mean(returns)))
        rows.append(row)
    return rows


def render(datasets: list[dict], policies: list[dict], machine: dict, command: str) -> str:
    """The markdown page of the two tables."""
    dataset_table = markdown_table(
        ["dataset", "episodes", "steps", "return min / mean / max", "score (mean)", "D4RL v2 score (mean)", "checksum"],
        [
            [
                r["dataset_id"],
                f"{r['episodes']:,}",
                f"{r['steps']:,}",
                f"{r['return_min']:.1f} / {r['return_mean']:.1f} / {r['return_max']:.1f}",
                f"{r['score_mean']:.1f}",
                "-" if r["d4rl_score_mean"] is None else f"{r['d4rl_score_mean']:.1f}",
                "matches" if r["checksum_matches_recipe"] else "DIFFERS",
            ]
            for r in datasets
        ],
    )
    policy_table = markdown_table(
        ["policy", "env", "deterministic return (score)", "stochastic return (score)"],
        [
            [
                r["policy"],
                r["env_id"],
                f"{r['deterministic_return_mean']:.0f} +- {r['deterministic_return_std']:.0f} "
                f"({r['deterministic_score']:.1f})",
                f"{r['stochastic_return_mean']:.0f} +- {r['stochastic_return_std']:.0f} ({r['stochastic_score']:.1f})",
            ]
            for r in policies
        ],
    )
    return (
        "# Recipe datasets beside D4RL\n\n"
        f"Command: `{command}`; commit {machine['commit']}, {machine['cpu']}, {machine['cores']} cores.\n\n"
        "Scores are D4RL-normalised (PointMaze: success rate x 100). D4RL's column is its v2 dataset's mean "
        "as offline RL papers quote it, not recomputed here.\n\n"
        f"{dataset_table}\n\n## Shipped behaviour policies\n\n{policy_table}\n"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="Minari root holding the built recipe datasets")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per behaviour-policy evaluation")
    parser.add_argument("--recipes", default=None, help="recipes JSON (default: the shipped recipes)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--name", default="datasets")
    args = parser.parse_args(argv)
    machine = machine_info()
    datasets = dataset_rows(Path(args.root), args.recipes)
    policies = policy_rows(args.episodes)
    command = f"python benchmarks/dataset_table.py --root <minari root> --episodes {args.episodes}"
    data = {"machine": machine, "command": command, "datasets": datasets, "policies": policies}
    write_results(Path(args.out), args.name, data, render(datasets, policies, machine, command))


if __name__ == "__main__":
    main()
