"""The ``ctflow`` command line.

Subcommands (``ctflow --help`` lists them):

- ``ctflow dataset build``: build a D4RL-style Minari dataset (see
  :mod:`ctflow_gym.data.builder`).
- ``ctflow dataset thin ID_OR_PATH --keep-every K --out ROOT``: keep every K-th episode.
- ``ctflow dataset info ID_OR_PATH``: episodes, steps, returns and how it was made.

User mistakes (unknown dataset, bad argument) print one clear line and exit with
status 2, without a Python traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctflow", description="ctflow_gym: offline trajectory refinement and flow agents")
    commands = parser.add_subparsers(dest="command", required=True)

    dataset = commands.add_parser("dataset", help="build and inspect Minari datasets")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)

    build = dataset_commands.add_parser("build", help="build a D4RL-style Minari dataset from SB3 policies")
    build.add_argument("--env", default="Hopper-v5", help="gymnasium MuJoCo env id (default: Hopper-v5)")
    build.add_argument("--kind", default="medium-replay", choices=["random", "medium", "medium-replay", "medium-expert"])
    build.add_argument("--dataset-id", default=None, help="Minari id (default: ctflow/<env>/<kind>-v0)")
    build.add_argument("--out", default=None, help="datasets root folder (default: Minari's root)")
    build.add_argument("--steps", type=int, default=300_000, help="transitions to record (upper bound for medium-replay)")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--policy", default=None, help="SB3 model zip for medium / medium-expert")
    build.add_argument("--expert-policy", default=None, help="SB3 model zip for medium-expert")
    build.add_argument("--policy-algo", default="SAC", help="SB3 class that saved the policies (default: SAC)")
    build.add_argument("--deterministic", action="store_true", help="act with the policy mode instead of sampling")
    build.add_argument("--target-return", type=float, default=None, help="medium-replay: stop once SAC evaluates at this return")
    build.add_argument("--min-steps", type=int, default=100_000, help="medium-replay: record at least this many steps")
    build.add_argument("--eval-every", type=int, default=5_000)
    build.add_argument("--max-minutes", type=float, default=None, help="medium-replay: wall-clock budget for SAC")
    build.add_argument("--sac-kwargs", type=json.loads, default=None, help='medium-replay: JSON of extra SAC arguments, e.g. \'{"policy_kwargs": {"net_arch": [128, 128]}}\'')
    build.add_argument("--device", default="auto", help="torch device for SAC (auto, cpu, cuda)")
    build.add_argument("--overwrite", action="store_true")
    build.add_argument("--no-progress", action="store_true")

    thin = dataset_commands.add_parser("thin", help="copy a dataset keeping every k-th episode")
    thin.add_argument("dataset", help="Minari id or path")
    thin.add_argument("--keep-every", type=int, required=True)
    thin.add_argument("--out", required=True, help="datasets root folder to write into")
    thin.add_argument("--dataset-id", default=None, help="id of the copy (default: the source's)")
    thin.add_argument("--overwrite", action="store_true")

    info = dataset_commands.add_parser("info", help="summarise a dataset")
    info.add_argument("dataset", help="Minari id or path")
    return parser


def _dataset_build(args: argparse.Namespace) -> int:
    from ctflow_gym.data.builder import BuildConfig, build_dataset

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
    )
    path = build_dataset(config)
    print(f"dataset written to {path}")
    return 0


def _dataset_thin(args: argparse.Namespace) -> int:
    from ctflow_gym.data.builder import thin_dataset

    print(f"dataset written to {thin_dataset(args.dataset, args.keep_every, args.out, args.dataset_id, args.overwrite)}")
    return 0


def _dataset_info(args: argparse.Namespace) -> int:
    from ctflow_gym.data import dataset_summary, load_dataset

    print(json.dumps(dataset_summary(load_dataset(args.dataset)), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctflow`` console command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    handlers = {("dataset", "build"): _dataset_build, ("dataset", "thin"): _dataset_thin, ("dataset", "info"): _dataset_info}
    try:
        return handlers[(args.command, args.dataset_command)](args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"ctflow: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
