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

import dataclasses
from pathlib import Path

import gymnasium as gym
import numpy as np
from harness import Settings, option, parse, write_results

from ctflow_gym.data import load_dataset, normalized_score
from ctflow_gym.data.actor_policies import SACActorPolicy
from ctflow_gym.data.recipes import dataset_checksum, load_recipes, shipped_behaviour_policy
from ctflow_gym.wrappers import run_episodes

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
    """Each shipped behaviour policy's return, deterministic and stochastic (resets 10_000 + i)."""
    folder = shipped_behaviour_policy("hopper-medium").parent
    rows = []
    for path in sorted(p for p in folder.iterdir() if (p / "checkpoint.json").is_file()):
        policy = SACActorPolicy.load(path, seed=0)
        row = {"policy": path.name, "env_id": policy.env_id}
        for mode in ("deterministic", "stochastic"):
            returns = run_episodes(gym.make(policy.env_id), policy, episodes, 10_000, mode == "deterministic")
            row[f"{mode}_return_mean"], row[f"{mode}_return_std"] = float(np.mean(returns)), float(np.std(returns))
            row[f"{mode}_score"] = float(normalized_score(policy.env_id, np.mean(returns)))
        rows.append(row)
    return rows


@dataclasses.dataclass
class DatasetTableSettings(Settings):
    root: str | None = option(None, "Minari root holding the built recipe datasets (required)")
    episodes: int = option(10, "episodes per behaviour-policy evaluation")
    recipes: str | None = option(None, "recipes JSON (default: the shipped recipes)")
    name: str = option("datasets", "result file name")


def main(argv: list[str] | None = None) -> Path:
    s = parse(DatasetTableSettings, argv)
    if s.root is None:
        raise SystemExit("--root: the Minari root holding the built recipe datasets is required")
    data = {"datasets": dataset_rows(Path(s.root), s.recipes), "policies": policy_rows(s.episodes)}
    return write_results(s, s.name, data, "datasets", "Recipe datasets beside D4RL")


if __name__ == "__main__":
    main()
