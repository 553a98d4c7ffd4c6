"""Build a recipe's reference dataset and record its checksum and summary in recipes.json.

How the ``sha256`` and ``reference`` of each entry in ``ctflow_gym/assets/recipes.json``
were made (for a maintainer adding or changing a recipe; users run
``ctflow dataset build <id>``, which checks against them)::

    python scripts/record_recipe.py ctflow/pointmaze/umaze-v1 --root /tmp/minari
    python scripts/record_recipe.py ctflow/halfcheetah/medium-replay-v1 --root /tmp/minari --existing

``--existing`` records an already built dataset under ``--root`` instead of building it
(the medium-replay references were recorded from the SAC runs that made their policies).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

from ctflow_gym.data import dataset_summary, load_dataset
from ctflow_gym.data.recipes import build_recipe, dataset_checksum, get_recipe, recipes_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_id")
    parser.add_argument("--root", required=True, help="Minari root to build into (or read from, with --existing)")
    parser.add_argument("--existing", action="store_true", help="record the dataset already under --root")
    args = parser.parse_args(argv)
    get_recipe(args.dataset_id)
    path = os.path.join(args.root, args.dataset_id)
    if not args.existing:
        path = build_recipe(args.dataset_id, root=args.root, overwrite=True, verify=False)
    summary = dataset_summary(load_dataset(path))
    build = summary.pop("build", {})
    reference = {
        **{k: summary[k] for k in ("episodes", "steps", "return_min", "return_mean", "return_max")},
        **{k: build[k] for k in ("versions", "wall_time_s", "sac_steps", "target_reached") if k in build},
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
        f"{platform.python_version()}",
    }
    document = json.loads(recipes_file().read_text())
    for entry in document["recipes"]:
        if entry["dataset_id"] == args.dataset_id:
            entry["sha256"] = dataset_checksum(path)
            entry["reference"] = reference
    staging = recipes_file().with_suffix(".json.tmp")
    staging.write_text(json.dumps(document, indent=1) + "\n")
    staging.replace(recipes_file())
    print(json.dumps(reference, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
