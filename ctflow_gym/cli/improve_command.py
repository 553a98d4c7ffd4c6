"""``ctflow improve``: a dataset's windows improved by a refiner, verified by replay, written as a new dataset.

    ctflow improve --dataset ctflow/hopper/medium-replay-v1 --refiner runs/fit/refiner \\
        --dataset-id ctflow/hopper/improved-v0

Every window is refined, realised in MuJoCo from its recorded start state and kept
only when the realised window beats the source (:mod:`ctflow_gym.improve`); the kept
windows are written under Minari's root (or ``--out``) as a dataset Minari loads,
with their provenance in its build record (``ctflow dataset info``).
"""

from __future__ import annotations

import argparse

from ctflow_gym.cli.common import UserError, positive


def register(commands) -> None:
    """Add the ``improve`` subcommand to ``commands``."""
    improve = commands.add_parser(
        "improve",
        help="improve a dataset's windows with a refiner, verify each by replay, write the improved ones",
        description=(
            "Refine every window of a dataset, realise each refined window in MuJoCo from its recorded start "
            "state, and write the windows whose realised score beats the source's as a new Minari dataset."
        ),
    )
    improve.add_argument("--dataset", required=True, help="Minari id or path of the dataset to improve")
    improve.add_argument("--refiner", required=True, help="refiner checkpoint folder (any registered family)")
    improve.add_argument("--dataset-id", required=True, help="id of the improved dataset to write")
    improve.add_argument("--out", default=None, help="datasets root folder (default: Minari's root)")
    improve.add_argument(
        "--strength",
        type=float,
        nargs="+",
        default=[1.0],
        help="refinement strength, or several: each makes proposals and the best realised is kept (default: 1.0)",
    )
    improve.add_argument("--samples", type=int, default=1, help="proposals per strength (default: 1)")
    improve.add_argument("--noise", type=float, default=1.0, help="sampling noise of the extra samples (default: 1)")
    improve.add_argument(
        "--continuation",
        type=int,
        default=0,
        help="steps of --policy after each window that count in its score (default: 0, the window alone)",
    )
    improve.add_argument(
        "--policy",
        default=None,
        help="the policy of --continuation: an SB3 zip, an actor folder, or shipped:NAME (e.g. shipped:hopper-medium)",
    )
    improve.add_argument("--policy-algo", default=None, help="SB3 class that saved --policy (default: from the zip)")
    improve.add_argument(
        "--commit-steps",
        type=int,
        default=None,
        help="realise only each proposal's first N steps before the continuation, and judge the source over the "
        "same N (default: the whole window)",
    )
    improve.add_argument("--stride", type=int, default=None, help="steps between windows (default: the window)")
    improve.add_argument(
        "--execution",
        choices=["best", "open_loop", "tracked"],
        default="best",
        help="realise open loop, tracked, or both keeping the better (default: best)",
    )
    improve.add_argument("--min-gain", type=float, default=0.0, help="keep windows that gain more than this")
    improve.add_argument(
        "--no-value-tail", action="store_true", help="score by window return only (default: + the refiner's V tail)"
    )
    improve.add_argument(
        "--source-steps",
        choices=["none", "all", "unimproved"],
        default="none",
        help="source steps written before the improved windows: none, all of them, or those no kept window "
        "replaced (default: none)",
    )
    improve.add_argument("--workers", type=int, default=1, help="replay processes (same result; default: 1)")
    improve.add_argument("--seed", type=int, default=0, help="seed of the refiner's sampling (default: 0)")
    improve.add_argument("--device", default="cpu", help="torch device of the refiner (default: cpu)")
    improve.add_argument("--overwrite", action="store_true")
    improve.add_argument("--no-progress", action="store_true")
    improve.set_defaults(handler=_improve)


def _improve(args: argparse.Namespace) -> int:
    from ctflow_gym.improve import improve_dataset
    from ctflow_gym.refine import load_refiner

    positive(args.workers, "--workers")
    policy = _continuation_policy(args)
    try:
        refiner = load_refiner(args.refiner, device=args.device)
    except FileNotFoundError as error:
        raise UserError(f"--refiner: {error}") from None
    report = improve_dataset(
        args.dataset,
        refiner,
        args.dataset_id,
        root=args.out,
        overwrite=args.overwrite,
        progress_bar=not args.no_progress,
        strength=tuple(args.strength) if len(args.strength) > 1 else args.strength[0],
        samples=args.samples,
        noise=args.noise,
        continuation=args.continuation,
        policy=policy,
        commit_steps=args.commit_steps,
        stride=args.stride,
        execution=args.execution,
        min_gain=args.min_gain,
        value_tail=not args.no_value_tail,
        source_steps=args.source_steps,
        workers=args.workers,
        seed=args.seed,
    )
    print(report.summary())
    return 0


def _continuation_policy(args: argparse.Namespace):
    """The policy ``--policy`` names (deterministic, acting on batches), or None; errors name the flag."""
    if args.policy is None:
        if args.continuation:
            raise UserError(f"--continuation {args.continuation} needs --policy (the policy that acts after windows)")
        return None
    from ctflow_gym.data.actor_policies import behaviour_policy
    from ctflow_gym.data.minari_io import load_dataset
    from ctflow_gym.data.recipes import policy_path

    try:
        env_id = load_dataset(args.dataset).env_spec.id
        return behaviour_policy(policy_path(args.policy), args.policy_algo, env_id, deterministic=True, seed=0)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(f"--policy: {error}") from None
