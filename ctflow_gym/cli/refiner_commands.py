"""``ctflow refiner fit | evaluate``: train a TrajectoryRefiner (or an ensemble), measure it in closed loop."""

from __future__ import annotations

import argparse
import math

from ctflow_gym.cli.common import UserError, command_run, common_flags, device_of, positive, write_json


def register(commands) -> None:
    """Add the ``refiner`` subcommands to ``commands``."""
    refiner = commands.add_parser(
        "refiner", help="fit and evaluate a TrajectoryRefiner", description="Fit and evaluate a TrajectoryRefiner."
    )
    sub = refiner.add_subparsers(dest="subcommand", required=True, metavar="{fit,evaluate}")

    fit = sub.add_parser(
        "fit",
        parents=[common_flags()],
        help="fit a refiner on a dataset",
        description=(
            "Fit a TrajectoryRefiner; saves it to OUT/refiner and a refinement-path plot to OUT/refinement_path.png."
        ),
    )
    fit.add_argument("--dataset", default=None, help="Minari id or path (default: the shipped dataset)")
    fit.add_argument("--window", type=int, default=16, help="window length H (default: 16)")
    fit.add_argument("--k", type=int, default=3, help="latent neighbours searched for a better target (default: 3)")
    fit.add_argument("--ae-steps", type=int, default=4000, help="autoencoder gradient steps (default: 4000)")
    fit.add_argument("--flow-steps", type=int, default=4000, help="flow-matching gradient steps (default: 4000)")
    fit.add_argument("--predictor-steps", type=int, default=2000, help="proxy return predictor steps (default: 2000)")
    fit.add_argument(
        "--feedback", default="return", choices=["return", "return_to_go", "advantage", "bootstrapped_advantage"]
    )
    fit.add_argument(
        "--inverse-dynamics-steps",
        type=int,
        default=4000,
        help="steps of the inverse-dynamics model for tracked execution; 0: none (default: 4000)",
    )
    fit.add_argument(
        "--ensemble-seeds",
        type=int,
        nargs="+",
        default=None,
        help="fit one refiner per seed (same held-out episodes) and save them as a RefinerEnsemble",
    )
    fit.add_argument(
        "--combine",
        choices=["rotate", "mean"],
        default="rotate",
        help="how the ensemble combines its members: rotate (by candidate seed) or mean (default: rotate)",
    )
    fit.add_argument(
        "--agreement-gate",
        type=float,
        default=0.0,
        help="ensemble only: leave windows whose members' agreement is below this, in [0, 1] (default: 0)",
    )
    fit.add_argument("--no-progress", action="store_true")
    fit.set_defaults(handler=_fit)

    evaluate = sub.add_parser(
        "evaluate",
        parents=[common_flags()],
        help="closed-loop gain of a saved refiner",
        description="Refine held-out windows of a dataset and replay them in MuJoCo from their recorded start states.",
    )
    evaluate.add_argument("refiner", help="folder written by `ctflow refiner fit` (OUT/refiner)")
    evaluate.add_argument("--dataset", default=None, help="Minari id or path (default: the shipped dataset)")
    evaluate.add_argument(
        "--windows", type=int, default=500, help="held-out windows to refine and replay (default: 500)"
    )
    evaluate.add_argument("--strength", type=float, default=1.0, help="refinement strength alpha (default: 1.0)")
    evaluate.add_argument(
        "--execution",
        choices=["auto", "open_loop", "tracked"],
        default="auto",
        help="how refined windows are replayed: auto (tracked when possible), open_loop, tracked",
    )
    evaluate.add_argument(
        "--workers", type=int, default=1, help="processes the replays are spread over (same numbers; default: 1)"
    )
    evaluate.set_defaults(handler=_evaluate)


def fit_refiner(
    dataset,
    window: int,
    k: int,
    ae_steps: int,
    flow_steps: int,
    predictor_steps: int,
    feedback: str,
    seed: int,
    device: str,
    logger,
    progress_bar: bool,
    inverse_dynamics_steps: int = 4000,
    split_seed: int | None = None,
):
    """A :class:`TrajectoryRefiner` fitted with the given budget (shared with the demo)."""
    from ctflow_gym import TrajectoryRefiner

    refiner = TrajectoryRefiner(
        window=window,
        k=k,
        ae_steps=ae_steps,
        flow_steps=flow_steps,
        predictor_steps=predictor_steps,
        feedback=feedback,
        inverse_dynamics_steps=inverse_dynamics_steps,
        seed=seed,
        split_seed=split_seed,
        device=device,
    )
    return refiner.fit(dataset, logger=logger, progress_bar=progress_bar)


def plot_path(refiner, windows, out_file, strength: float = 1.0, logger=None) -> None:
    """Plot the refinement path of the first window of ``windows`` and log it as an image."""
    from ctflow_gym.refine.plotting import plot_refinement_path

    path = refiner.path(
        windows.observations[:1], windows.actions[:1], strength=strength, times=[0.0, 0.25, 0.5, 0.75, 1.0]
    )
    plot_refinement_path(path, out_file, title="refinement path of one dataset window")
    if logger is not None:
        logger.log_image("refiner/refinement_path", out_file)


def _dataset_arg(args):
    from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

    return load_dataset(args.dataset or DEFAULT_DATASET_ID)


def _fit(args: argparse.Namespace) -> int:
    from ctflow_gym.logging import NULL_LOGGER
    from ctflow_gym.refine import RefinerEnsemble
    from ctflow_gym.refine.evaluation import held_out_windows

    device = device_of(args)
    seeds = [args.seed] if args.ensemble_seeds is None else list(args.ensemble_seeds)
    if args.ensemble_seeds is not None and (len(seeds) < 2 or len(set(seeds)) != len(seeds)):
        raise UserError(f"--ensemble-seeds: an ensemble needs at least 2 distinct seeds; got {seeds}")
    if args.ensemble_seeds is None and (args.combine != "rotate" or args.agreement_gate != 0.0):
        raise UserError("--combine and --agreement-gate configure an ensemble: pass --ensemble-seeds too")
    if not 0.0 <= args.agreement_gate <= 1.0:
        raise UserError(f"--agreement-gate must be in [0, 1]; got {args.agreement_gate}")
    dataset = _dataset_arg(args)
    with command_run(args, "refiner-fit") as (out, logger):
        members = [
            fit_refiner(
                dataset,
                args.window,
                args.k,
                args.ae_steps,
                args.flow_steps,
                args.predictor_steps,
                args.feedback,
                seed,
                device,
                logger if i == 0 else NULL_LOGGER,  # one member's curves: the others would log over the same steps
                not args.no_progress,
                args.inverse_dynamics_steps,
                split_seed=seeds[0],
            )
            for i, seed in enumerate(seeds)
        ]
        if len(members) == 1:
            refiner, fit_info = members[0], members[0].fit_info
        else:
            refiner = RefinerEnsemble(members, combine=args.combine, agreement_gate=args.agreement_gate)
            fit_info = {"members": [m.fit_info for m in members], **refiner.fit_info}
        refiner.save(out / "refiner")
        windows = held_out_windows(refiner, dataset, 1, args.seed)
        plot_path(members[0], windows, out / "refinement_path.png", logger=logger)
        write_json(out / "fit_info.json", fit_info)
    kind = "refiner" if len(members) == 1 else f"ensemble of {len(members)} refiners"
    print(f"{kind} saved to {out / 'refiner'}; refinement path plot {out / 'refinement_path.png'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ctflow_gym.refine import load_refiner
    from ctflow_gym.refine.evaluation import evaluate_refinement, held_out_windows

    device = device_of(args)
    positive(args.workers, "--workers")
    refiner = load_refiner(args.refiner, device=device)
    dataset = _dataset_arg(args)
    with command_run(args, "refiner-evaluate") as (out, logger):
        windows = held_out_windows(refiner, dataset, args.windows, args.seed)
        try:
            report = evaluate_refinement(
                refiner, windows, strength=args.strength, execution=args.execution, workers=args.workers
            )
        except ValueError as error:
            raise UserError(f"--execution: {error}") from error
        logger.log({f"refiner_eval/{k}": v["mean"] for k, v in report.items() if isinstance(v, dict) and "mean" in v})
        write_json(out / "evaluation.json", report)
    print(evaluation_line(report) + f"; report {out / 'evaluation.json'}")
    return 0


def evaluation_line(report: dict) -> str:
    """The replayed evaluation for a reader, each refined number beside the dataset windows' own.

    Window returns to one decimal, gains (small) to three; ``n/a`` where the report has
    no such number (a refiner without a return predictor has no proxy gain).
    """

    def number(name: str, key: str, spec: str) -> str:
        value = (report.get(name) or {}).get(key)
        return "n/a" if value is None or not math.isfinite(value) else format(value, spec)

    line = f"{report['windows']} held-out windows at strength {report['strength']:g} ({report['execution']} execution)"
    if "realized_gain" in report:
        refined = report["source_return"]["mean"] + report["realized_gain"]["mean"]
        line += (
            f": window return {refined:.1f} refined vs {report['source_return']['mean']:.1f} for the dataset's own "
            f"(mean realised gain {number('realized_gain', 'mean', '+.3f')} "
            f"+- {number('realized_gain', 'se', '.3f')}, "
            f"{100 * report['realized_gain_positive_fraction']:.0f}% improved, replayed in the simulator)"
        )
    return line + f"; proxy gain {number('proxy_gain', 'mean', '+.3f')}"
