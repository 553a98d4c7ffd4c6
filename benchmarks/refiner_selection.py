"""Choose fitted refiners for a policy on validation episodes, then report on test episodes.

``select_refiners`` runs the shipped policy alone and with each refiner attached (unverified,
``--strength``) on ``--episodes`` validation episodes (reset seeds ``--validation-seed`` + i) and
keeps those that raise the mean return. The kept refiner (a rotating ``RefinerEnsemble`` when
several are kept) is saved to ``--work/selected_<policy>``; report it on test episodes (seeds
1000 + i), which the selection never saw, with ``refined_policy_table.py --refiner <that folder>``.

    python benchmarks/refiner_selection.py --refiners FOLDER [FOLDER ...] [--policy medium]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness import Settings, option, parse, write_results

from ctflow_gym import RefinerEnsemble, load_refiner
from ctflow_gym.data import load_sb3_policy, shipped_policy_path
from ctflow_gym.wrappers import select_refiners


@dataclasses.dataclass
class SelectionSettings(Settings):
    refiners: tuple[str, ...] = option((), "fitted refiner folders (the candidates)")
    policy: str = option("medium", "shipped policy")
    validation_seed: int = option(2000, "reset seed of the first validation episode")
    episodes: int = option(50, "validation episodes")
    strength: float = option(1.0, "refinement strength")
    work: str = option("/tmp/ctflow_bench", "where the kept refiner is saved")
    max_episode_steps: int | None = option(None, "cut episodes at this many steps (default: the env's 1000)")


def main(argv: list[str] | None = None) -> Path:
    s = parse(SelectionSettings, argv)
    if not s.refiners:
        raise SystemExit("--refiners: give the fitted refiner folders to choose from")
    policy = load_sb3_policy(shipped_policy_path(s.policy), env="Hopper-v5")
    refiners = [load_refiner(folder) for folder in s.refiners]
    selection = select_refiners(
        policy, refiners, "Hopper-v5", episodes=s.episodes, seed=s.validation_seed, strength=s.strength, verify=False,
        max_episode_steps=s.max_episode_steps,
    )  # fmt: skip
    chosen = None
    if selection.kept:
        chosen = str(Path(s.work) / f"selected_{s.policy}")
        kept = [refiners[i] for i in selection.kept]
        (kept[0] if len(kept) == 1 else RefinerEnsemble(kept)).save(chosen)
    meta = {**s.recorded(), "validation_seeds": [s.validation_seed, s.validation_seed + s.episodes - 1]}
    data = {
        "meta": meta,
        "refiners": list(s.refiners),
        "base_returns": selection.base_returns,
        "validations": [dataclasses.asdict(v) for v in selection.validations],
        "kept": [s.refiners[i] for i in selection.kept],
        "saved_to": chosen,
    }
    title = f"Refiners chosen for the shipped `{s.policy}` policy on validation episodes"
    return write_results(s, f"refiner_selection_{s.policy}", data, "selection", title)


if __name__ == "__main__":
    main()
