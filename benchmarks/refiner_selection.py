"""Choose fitted refiners for a policy on validation episodes, then report on test episodes.

Usage::

    python benchmarks/refiner_selection.py --refiners FOLDER [FOLDER ...] [--policy medium]
        [--validation-seed 2000] [--episodes 50] [--strength 1.0] [--work /tmp/ctflow_bench]

``select_refiners`` (``ctflow_gym.wrappers.selection``) runs the shipped policy alone and
with each refiner attached (unverified, ``--strength``) on ``--episodes`` validation
episodes (reset seeds ``--validation-seed`` + i) and keeps those that raise the mean
return. The kept refiner (a ``RefinerEnsemble`` of them, rotating, when several are
kept) is saved to ``--work/selected_<policy>``; report it on the test episodes (seeds
1000 + i) with ``refined_policy_table.py --refiner <that folder>`` (printed at the end),
which never saw the validation episodes' outcome. Writes
``refiner_selection_<policy>.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import machine_info, markdown_table, write_atomic  # benchmarks/ is the script's folder

from ctflow_gym import RefinerEnsemble, load_refiner
from ctflow_gym.data import load_sb3_policy, shipped_policy_path
from ctflow_gym.wrappers import select_refiners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--refiners", nargs="+", required=True, help="fitted refiner folders (candidates)")
    parser.add_argument("--policy", default="medium")
    parser.add_argument("--validation-seed", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--work", default="/tmp/ctflow_bench")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    started = time.perf_counter()
    policy = load_sb3_policy(shipped_policy_path(args.policy), env="Hopper-v5")
    refiners = [load_refiner(folder) for folder in args.refiners]
    selection = select_refiners(
        policy,
        refiners,
        "Hopper-v5",
        episodes=args.episodes,
        seed=args.validation_seed,
        strength=args.strength,
        verify=False,
    )
    kept = [args.refiners[i] for i in selection.kept]
    chosen = None
    if kept:
        chosen = str(Path(args.work) / f"selected_{args.policy}")
        if len(kept) == 1:
            refiners[selection.kept[0]].save(chosen)
        else:
            RefinerEnsemble([refiners[i] for i in selection.kept]).save(chosen)
    meta = {
        "policy": args.policy,
        "validation_seeds": [args.validation_seed, args.validation_seed + args.episodes - 1],
        "episodes": args.episodes,
        "strength": args.strength,
        "machine": machine_info(),
        "wall_minutes": (time.perf_counter() - started) / 60,
    }
    result = {
        "meta": meta,
        "refiners": args.refiners,
        "base_returns": selection.base_returns,
        "validations": [v.__dict__ for v in selection.validations],
        "kept": kept,
        "saved_to": chosen,
    }
    rows = [
        [
            args.refiners[v.index],
            f"{v.paired_gain:+.1f} ± {v.paired_gain_se:.1f}",
            f"{100 * v.relative_change:+.1f}%",
            f"{v.episodes_better}/{args.episodes}",
            "kept" if v.index in selection.kept else "-",
        ]
        for v in selection.validations
    ]
    base_mean = sum(selection.base_returns) / len(selection.base_returns)
    text = "\n".join(
        [
            f"# Refiners chosen for the shipped `{args.policy}` policy on validation episodes",
            "",
            (
                f"Unverified, strength {args.strength}, {args.episodes} validation episodes (reset seeds "
                f"{meta['validation_seeds'][0]}..{meta['validation_seeds'][1]}), paired with the policy alone "
                f"(mean return {base_mean:.1f}). Kept: a refiner whose mean return rose. Machine: {meta['machine']}. "
                f"Wall time {meta['wall_minutes']:.0f} min."
            ),
            "",
            markdown_table(["refiner", "paired gain", "change", "episodes better", "selection"], rows),
            "",
            (
                "Test (other episodes): `python benchmarks/refined_policy_table.py --policy "
                f"{args.policy} --refiner {chosen} --tag _selected`"
                if chosen
                else "Nothing was kept: no refiner raised the policy's return on the validation episodes."
            ),
            "",
        ]
    )
    name = f"refiner_selection_{args.policy}"
    write_atomic(Path(args.out) / f"{name}.json", json.dumps(result, indent=2))
    write_atomic(Path(args.out) / f"{name}.md", text)
    print(text)


if __name__ == "__main__":
    main()
