"""``ctflow agent train | evaluate``: GTPAgent from a dataset, evaluated in the env.

The command line is the top layer of the package: it is the one part of
``ctflow_gym`` that imports ``agents`` (lazily, inside the handlers); the library
below it never does.
"""

from __future__ import annotations

import argparse

from ctflow_gym.cli.common import UserError, command_run, common_flags, device_of, write_json


def register(commands) -> None:
    """Add the ``agent`` subcommands to ``commands``."""
    agent = commands.add_parser("agent", help="train and evaluate a GTPAgent", description="Train and evaluate a GTPAgent (generative trajectory policy).")
    sub = agent.add_subparsers(dest="subcommand", required=True, metavar="{train,evaluate}")

    train = sub.add_parser("train", parents=[common_flags()], help="train a GTPAgent offline", description="Train a GTPAgent on a dataset; the model (and its checkpoint) go to OUT/model.")
    train.add_argument("--dataset", default=None, help="Minari id or path (default: the shipped dataset)")
    train.add_argument("--env", default=None, help="env id (default: the dataset's)")
    train.add_argument("--steps", type=int, default=50_000, help="gradient steps (default: 50000)")
    train.add_argument("--eta", type=float, default=5.0, help="advantage temperature; 0 = GTP-BC (default: 5)")
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--sampling-steps", type=int, default=5, help="K at evaluation (default: 5)")
    train.add_argument("--eval-freq", type=int, default=0, help="evaluate every N steps during training (default: never)")
    train.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default: 10)")
    train.add_argument("--checkpoint-freq", type=int, default=5000, help="checkpoint every N steps (default: 5000)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/model if a checkpoint is there")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(handler=_train)

    evaluate = sub.add_parser("evaluate", parents=[common_flags()], help="evaluate a saved GTPAgent", description="Run a saved GTPAgent in its env and report the D4RL-normalised score.")
    evaluate.add_argument("model", help="folder written by `ctflow agent train` (OUT/model)")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--sampling-steps", type=int, default=5, help="K, flow-map jumps per action (default: 5)")
    evaluate.set_defaults(handler=_evaluate)


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise UserError(f"{flag} must be >= 1; got {value}")
    return value


def _train(args: argparse.Namespace) -> int:
    from agents import GTPAgent
    from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

    device = device_of(args)
    _positive(args.steps, "--steps")
    _positive(args.sampling_steps, "--sampling-steps")
    dataset = load_dataset(args.dataset or DEFAULT_DATASET_ID)
    with command_run(args, "agent-train") as (out, logger):
        agent = GTPAgent(args.env or dataset.env_spec.id, dataset, eta=args.eta, batch_size=args.batch_size, sampling_steps=args.sampling_steps, device=device, seed=args.seed, run_logger=logger)
        agent.learn(
            args.steps,
            progress_bar=not args.no_progress,
            eval_freq=args.eval_freq,
            n_eval_episodes=args.eval_episodes,
            checkpoint_path=out / "model",
            checkpoint_freq=args.checkpoint_freq,
            resume=args.resume,
        )
        result = agent.evaluate(args.eval_episodes, seed=args.seed)
        logger.log({f"eval/final_{k}": v for k, v in result.items() if isinstance(v, float)}, step=agent.num_timesteps)
        write_json(out / "evaluation.json", result)
    print(f"GTPAgent ({agent.num_timesteps} steps) saved to {out / 'model'}: return {result['mean_return']:.1f} +- {result['std_return']:.1f}, D4RL score {result['normalized_score']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from agents import GTPAgent

    device = device_of(args)
    _positive(args.episodes, "--episodes")
    agent = GTPAgent.load(args.model, device=device)
    agent.sampling_steps = _positive(args.sampling_steps, "--sampling-steps")
    with command_run(args, "agent-evaluate") as (out, logger):
        result = agent.evaluate(args.episodes, seed=args.seed)
        logger.log({f"eval/{k}": v for k, v in result.items() if isinstance(v, float)})
        write_json(out / "evaluation.json", result)
    print(f"{args.episodes} episodes, K={args.sampling_steps}: return {result['mean_return']:.1f} +- {result['std_return']:.1f}, D4RL score {result['normalized_score']}")
    return 0
