"""``ctflow dataset build | thin | combine | info | list``."""

from __future__ import annotations

import argparse
import json


def register(commands) -> None:
    """Add the ``dataset`` subcommands to ``commands`` (an argparse subparsers object)."""
    dataset = commands.add_parser(
        "dataset",
        help="build, thin, list and inspect Minari datasets",
        description="Build, thin, list and inspect Minari datasets.",
    )
    dataset_commands = dataset.add_subparsers(
        dest="subcommand", required=True, metavar="{build,thin,combine,info,list}"
    )

    build = dataset_commands.add_parser(
        "build",
        help="build a dataset from a recipe (ctflow dataset list) or from SB3 policies",
        description=(
            "Build a dataset: give a recipe's id (see `ctflow dataset list`) to make it bit for bit as shipped, "
            "checked by checksum; or describe a D4RL-style build with --env, --kind and the options below."
        ),
    )
    build.add_argument("recipe", nargs="?", default=None, help="a recipe's dataset id, e.g. ctflow/pointmaze/umaze-v1")
    build.add_argument(
        "--no-verify", action="store_true", help="recipe builds: keep the dataset even if its checksum differs"
    )
    build.add_argument("--env", default="Hopper-v5", help="gymnasium MuJoCo env id (default: Hopper-v5)")
    build.add_argument(
        "--kind", default="medium-replay", choices=["random", "medium", "medium-replay", "medium-expert", "waypoint"]
    )
    build.add_argument("--dataset-id", default=None, help="Minari id (default: ctflow/<env>/<kind>-v0)")
    build.add_argument("--out", default=None, help="datasets root folder (default: Minari's root)")
    build.add_argument(
        "--steps", type=int, default=300_000, help="transitions to record (upper bound for medium-replay)"
    )
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--policy", default=None, help="SB3 model zip for medium / medium-expert")
    build.add_argument("--expert-policy", default=None, help="SB3 model zip for medium-expert")
    build.add_argument("--policy-algo", default="SAC", help="SB3 class that saved the policies (default: SAC)")
    build.add_argument("--deterministic", action="store_true", help="act with the policy mode instead of sampling")
    build.add_argument(
        "--target-return", type=float, default=None, help="medium-replay: stop once SAC evaluates at this return"
    )
    build.add_argument("--min-steps", type=int, default=100_000, help="medium-replay: record at least this many steps")
    build.add_argument("--eval-every", type=int, default=5_000)
    build.add_argument("--max-minutes", type=float, default=None, help="medium-replay: wall-clock budget for SAC")
    build.add_argument(
        "--sac-kwargs",
        type=json.loads,
        default=None,
        help='medium-replay: JSON of extra SAC arguments, e.g. \'{"policy_kwargs": {"net_arch": [128, 128]}}\'',
    )
    build.add_argument("--device", default="auto", help="torch device for SAC (auto, cpu, cuda)")
    build.add_argument(
        "--shards", type=int, default=1, help="independent parts of n_steps/shards steps (not medium-replay)"
    )
    build.add_argument(
        "--workers", type=int, default=1, help="processes building shards at once (same dataset; default: 1)"
    )
    build.add_argument(
        "--checkpoint-every",
        type=int,
        default=10_000,
        help="medium-replay: checkpoint SAC and the episodes every N steps (at the next episode end; 0: never); "
        "building again resumes from it (default: 10000)",
    )
    build.add_argument("--restart", action="store_true", help="medium-replay: ignore a checkpoint and start afresh")
    build.add_argument("--overwrite", action="store_true")
    build.add_argument("--no-progress", action="store_true")
    build.set_defaults(handler=_build)
    build.set_defaults(build_defaults={a.dest: a.default for a in build._actions})

    thin = dataset_commands.add_parser(
        "thin",
        help="copy a dataset keeping evenly spaced episodes",
        description=(
            "Copy a dataset keeping every k-th episode, or the fewest evenly spaced episodes that hold "
            "at least N steps, or the best episodes."
        ),
    )
    thin.add_argument("dataset", help="Minari id or path")
    how = thin.add_mutually_exclusive_group(required=True)
    how.add_argument("--keep-every", type=int, help="keep episodes 0, k, 2k, ...")
    how.add_argument(
        "--target-steps", type=int, help="keep the fewest evenly spaced episodes with at least this many steps"
    )
    how.add_argument(
        "--top-fraction",
        type=float,
        help="keep the best episodes by return that hold at most this fraction of the steps (filtered BC's data)",
    )
    thin.add_argument(
        "--piece",
        type=int,
        default=None,
        help="with --target-steps: keep evenly spaced pieces of this many steps of every episode, not whole episodes",
    )
    thin.add_argument("--out", required=True, help="datasets root folder to write into")
    thin.add_argument("--dataset-id", default=None, help="id of the copy (default: the source's)")
    thin.add_argument("--overwrite", action="store_true")
    thin.add_argument("--no-progress", action="store_true")
    thin.set_defaults(handler=_thin)

    combine = dataset_commands.add_parser(
        "combine",
        help="join datasets of one env into a new one",
        description="Join the episodes of several datasets of one env into a new dataset (e.g. random + medium).",
    )
    combine.add_argument("datasets", nargs="+", help="Minari ids or paths, at least two")
    combine.add_argument("--dataset-id", required=True, help="id of the new dataset")
    combine.add_argument("--out", default=None, help="datasets root folder (default: Minari's root)")
    combine.add_argument("--overwrite", action="store_true")
    combine.set_defaults(handler=_combine)

    info = dataset_commands.add_parser(
        "info", help="summarise a dataset", description="Episodes, steps, returns and how a dataset was made."
    )
    info.add_argument("dataset", help="Minari id or path")
    info.set_defaults(handler=_info)

    listing = dataset_commands.add_parser(
        "list",
        help="list the shipped and the local Minari datasets",
        description="List the shipped dataset and the datasets under Minari's root.",
    )
    listing.set_defaults(handler=_list)


_RECIPE_OPTIONS = (
    "out", "overwrite", "no_progress", "no_verify", "recipe", "handler", "command", "subcommand", "checkpoint_every",
    "restart",
)  # fmt: skip


def _build_recipe(args: argparse.Namespace, parser_defaults: dict) -> int:
    from ctflow_gym.data.recipes import build_recipe

    clashing = [
        "--" + name.replace("_", "-")
        for name, value in vars(args).items()
        if name not in _RECIPE_OPTIONS and name in parser_defaults and value != parser_defaults[name]
    ]
    if clashing:
        raise ValueError(f"{', '.join(clashing)} cannot be combined with a recipe ({args.recipe})")
    path = build_recipe(
        args.recipe,
        root=args.out,
        overwrite=args.overwrite,
        progress_bar=not args.no_progress,
        verify=not args.no_verify,
        checkpoint_every=args.checkpoint_every,
        resume=not args.restart,
    )
    print(f"dataset written to {path} (checksum {'not checked' if args.no_verify else 'matches the recipe'})")
    return 0


def _build(args: argparse.Namespace) -> int:
    from ctflow_gym.data.builder import BuildConfig, build_dataset

    if args.recipe is not None:
        return _build_recipe(args, args.build_defaults)

    config = BuildConfig(
        env_id=args.env,
        kind=args.kind,
        dataset_id=args.dataset_id,
        root=args.out,
        n_steps=args.steps,
        seed=args.seed,
        policy=args.policy,
        expert_policy=args.expert_policy,
        policy_algo=args.policy_algo,
        deterministic=args.deterministic,
        target_return=args.target_return,
        min_steps=args.min_steps,
        eval_every=args.eval_every,
        sac_kwargs=args.sac_kwargs,
        max_minutes=args.max_minutes,
        device=args.device,
        overwrite=args.overwrite,
        progress_bar=not args.no_progress,
        shards=args.shards,
        workers=args.workers,
        checkpoint_every=args.checkpoint_every,
        resume=not args.restart,
    )
    path = build_dataset(config)
    print(f"dataset written to {path}")
    return 0


def _combine(args: argparse.Namespace) -> int:
    from ctflow_gym.data.combining import combine_datasets

    path = combine_datasets(args.datasets, args.dataset_id, root=args.out, overwrite=args.overwrite)
    print(f"dataset written to {path}")
    return 0


def _thin(args: argparse.Namespace) -> int:
    from ctflow_gym.data import thin_dataset

    path = thin_dataset(
        args.dataset,
        args.keep_every,
        args.out,
        args.dataset_id,
        args.overwrite,
        target_steps=args.target_steps,
        progress_bar=not args.no_progress,
        top_fraction=args.top_fraction,
        piece=args.piece,
    )
    print(f"dataset written to {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from ctflow_gym.data import dataset_summary, load_dataset

    print(json.dumps(dataset_summary(load_dataset(args.dataset)), indent=2))
    return 0


def _list(args: argparse.Namespace) -> int:
    import minari

    from ctflow_gym.data import DEFAULT_DATASET_ID, default_dataset_path, minari_root
    from ctflow_gym.data.recipes import load_recipes, recipe_status

    root = minari_root()
    print("shipped:")
    print(f"  {DEFAULT_DATASET_ID}  ({default_dataset_path()})")
    recipes = load_recipes()
    print(f"recipes (build with `ctflow dataset build <id>`; into {root}):")
    width = max(len(i) for i in recipes) if recipes else 0
    for dataset_id, recipe in sorted(recipes.items()):
        steps = recipe.build.get("n_steps")
        print(f"  {dataset_id:<{width}}  {recipe_status(recipe):<9}  {recipe.build['env_id']}, {steps:,} steps")
    # With MINARI_DATASETS_PATH at the shipped root, Minari lists the shipped dataset too.
    shipped = default_dataset_path().resolve()
    local = [i for i in sorted(minari.list_local_datasets()) if (root / i).resolve() != shipped and i not in recipes]
    print(f"other local datasets under {root}:")
    for dataset_id in local:
        print(f"  {dataset_id}  ({root / dataset_id})")
    if not local:
        print("  (none)")
    return 0
