"""``ctflow agent train | evaluate``: a registered offline agent (default: GTP), trained and evaluated.

The command line is the top layer of the package: it is the one part of
``ctflow_gym`` that imports ``agents``, lazily (inside the functions that build the
``agent`` parser and run its handlers); the library below it never does. Agents are
picked by their registered name (``--agent``, choices from ``agents.AGENTS``), and a
saved agent is loaded with ``agents.load_agent``, whatever its class.
"""

from __future__ import annotations

import argparse

from ctflow_gym.cli.common import UserError, command_run, common_flags, device_of, positive, write_json

CONFIG_FLAGS = {
    "eta": "--eta",
    "batch_size": "--batch-size",
    "sampling_steps": "--sampling-steps",
    "action_candidates": "--action-candidates",
    "candidate_pessimism": "--candidate-pessimism",
    "critic_ensemble": "--critic-ensemble",
    "top_fraction": "--top-fraction",
    "alpha": "--alpha",
    "flow_steps": "--flow-steps",
    "target_divergence": "--target-divergence",
}
"""Training flags that set fields of the agent's config (``None``: the agent's default), by field."""

PESSIMISM_HELP = (
    "beta: rank the N actions by the critics' mean less beta times their spread; large (e.g. 1000): the one "
    "they agree on most (GTP with critic_ensemble > 1; default: {})"
)


def register(commands) -> None:
    """Add the ``agent`` subcommands to ``commands``."""
    from agents import AGENTS

    names = sorted(AGENTS)
    agent = commands.add_parser(
        "agent",
        help="train and evaluate an offline agent (default: GTP)",
        description=f"Train and evaluate a registered offline agent ({', '.join(names)}).",
    )
    sub = agent.add_subparsers(dest="subcommand", required=True, metavar="{train,evaluate}")

    train = sub.add_parser(
        "train",
        parents=[common_flags()],
        help="train an agent offline",
        description="Train an agent on a dataset; the model (and its checkpoint) go to OUT/model.",
    )
    train.add_argument("--agent", default="gtp", choices=names, help="registered agent to train (default: gtp)")
    train.add_argument("--dataset", default=None, help="Minari id or path (default: the shipped dataset)")
    train.add_argument("--env", default=None, help="env id (default: the dataset's)")
    train.add_argument("--steps", type=int, default=50_000, help="gradient steps (default: 50000)")
    train.add_argument(
        "--eta", type=float, default=None, help="advantage temperature (GTP; 0 = GTP-BC; default: the agent's, 5)"
    )
    train.add_argument(
        "--batch-size", type=int, default=None, help="minibatch size (default: the agent's; GTP 256, BC 1024)"
    )
    train.add_argument(
        "--sampling-steps", type=int, default=None, help="K at evaluation (GTP; default: the agent's, 5)"
    )
    train.add_argument(
        "--action-candidates",
        type=int,
        default=None,
        help="N, actions sampled per state of which the highest-Q is taken (GTP; default: the agent's, 50)",
    )
    train.add_argument(
        "--candidate-pessimism",
        type=float,
        default=None,
        help=PESSIMISM_HELP.format("the agent's, 0"),
    )
    train.add_argument(
        "--critic-ensemble",
        type=int,
        default=None,
        help="independent double-Q critics ranked by their mean (GTP; default: the agent's, 5; 1: the paper's)",
    )
    train.add_argument(
        "--top-fraction",
        type=float,
        default=None,
        help="filtered BC (%%BC): train on the best episodes holding this fraction of the data, e.g. 0.1 "
        "(BC; default: all data)",
    )
    train.add_argument(
        "--alpha", type=float, default=None, help="weight of the distillation loss (FQL; default: the agent's, 10)"
    )
    train.add_argument(
        "--flow-steps", type=int, default=None, help="Euler steps of the behaviour flow (FQL, DeFlow; default: 10)"
    )
    train.add_argument(
        "--target-divergence",
        type=float,
        default=None,
        help="trust region delta on the mean squared residual (DeFlow; default: derived from the data's IAV)",
    )
    train.add_argument(
        "--compile", action="store_true", help="torch.compile the losses (falls back to eager with a warning)"
    )
    train.add_argument(
        "--cuda-graph",
        default="auto",
        choices=["auto", "on", "off"],
        help="replay the whole training step from a CUDA graph (auto: on CUDA devices; default: auto)",
    )
    train.add_argument(
        "--eval-freq", type=int, default=0, help="evaluate every N steps during training (default: never)"
    )
    train.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default: 10)")
    train.add_argument(
        "--eval-envs", type=int, default=1, help="envs the evaluation episodes run in at once (default: 1)"
    )
    train.add_argument(
        "--select-every",
        type=int,
        default=0,
        help="evaluate every N steps on validation episodes and keep the best checkpoint in OUT/best; the final "
        "evaluation is of that one (default: the last step)",
    )
    train.add_argument("--select-episodes", type=int, default=10, help="validation episodes (default: 10)")
    train.add_argument(
        "--select-seed", type=int, default=3000, help="reset seed of the first validation episode (default: 3000)"
    )
    train.add_argument("--checkpoint-freq", type=int, default=5000, help="checkpoint every N steps (default: 5000)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/model if a checkpoint is there")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(handler=_train)

    evaluate = sub.add_parser(
        "evaluate",
        parents=[common_flags()],
        help="evaluate a saved agent",
        description="Run a saved agent (any registered class) in its env and report the D4RL-normalised score.",
    )
    evaluate.add_argument("model", help="folder written by `ctflow agent train` (OUT/model)")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--envs", type=int, default=1, help="envs the episodes run in at once (default: 1)")
    evaluate.add_argument(
        "--sampling-steps", type=int, default=None, help="K, flow-map jumps per action (GTP; default: the saved K)"
    )
    evaluate.add_argument(
        "--action-candidates",
        type=int,
        default=None,
        help="N, actions sampled per state of which the highest-Q is taken (GTP; default: the saved N)",
    )
    evaluate.add_argument(
        "--candidate-pessimism", type=float, default=None, help=PESSIMISM_HELP.format("the saved beta")
    )
    evaluate.set_defaults(handler=_evaluate)


def _config_overrides(args: argparse.Namespace, agent_class: type) -> dict:
    """The config fields the training flags set for ``agent_class``; ``UserError`` for a flag it has no field for."""
    from dataclasses import fields

    known = {field.name for field in fields(agent_class.config_class)}
    overrides = {}
    for name, flag in CONFIG_FLAGS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if name not in known:
            raise UserError(f"{flag}: agent {args.agent!r} has no {name} setting")
        overrides[name] = value
    return overrides


def non_negative_pessimism(args: argparse.Namespace) -> None:
    """``UserError`` unless ``--candidate-pessimism`` is unset or a finite number >= 0."""
    beta = args.candidate_pessimism
    if beta is not None and not 0 <= beta < float("inf"):
        raise UserError(f"--candidate-pessimism must be a finite number >= 0; got {beta}")


def _train(args: argparse.Namespace) -> int:
    """Train; print a line per evaluation (``--eval-freq``) and one for the final evaluation.

    ``--select-every N``: :class:`agents.KeepBest` judges the agent every N steps on the
    validation episodes and restores the best when training ends; OUT/best holds it, OUT/model
    stays the last step's checkpoint (what ``--resume`` continues), and the final evaluation
    (``--seed``'s episodes, not the validation ones) is of the best.
    """
    from agents import KeepBest, agent_class
    from agents.reporting import EvaluationPrinter, evaluation_text
    from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset

    device = device_of(args)
    positive(args.steps, "--steps")
    positive(args.eval_envs, "--eval-envs")
    positive(args.select_episodes, "--select-episodes")
    if args.select_every < 0 or args.select_seed < 0:
        raise UserError("--select-every and --select-seed must be >= 0")
    for name in ("batch_size", "sampling_steps", "action_candidates", "critic_ensemble", "flow_steps"):
        if getattr(args, name) is not None:
            positive(getattr(args, name), CONFIG_FLAGS[name])
    non_negative_pessimism(args)
    if args.top_fraction is not None and not 0 < args.top_fraction <= 1:
        raise UserError(f"--top-fraction must be in (0, 1]; got {args.top_fraction}")
    cls = agent_class(args.agent)
    overrides = _config_overrides(args, cls)
    dataset = load_dataset(args.dataset or DEFAULT_DATASET_ID)
    with command_run(args, "agent-train") as (out, logger):
        env_id = args.env or dataset.env_spec.id
        agent = cls(env_id, dataset, device=device, seed=args.seed, run_logger=logger, **overrides)
        callbacks = [EvaluationPrinter()]
        if args.select_every:
            keep = KeepBest(args.select_every, args.select_episodes, args.select_seed, best_path=out / "best")
            callbacks.append(keep)
        agent.learn(
            args.steps,
            progress_bar=not args.no_progress,
            eval_freq=args.eval_freq,
            n_eval_episodes=args.eval_episodes,
            n_eval_envs=args.eval_envs,
            checkpoint_path=out / "model",
            checkpoint_freq=args.checkpoint_freq,
            resume=args.resume,
            compile=args.compile,
            cuda_graph={"auto": "auto", "on": True, "off": False}[args.cuda_graph],
            callback=callbacks,
        )
        result = agent.evaluate(args.eval_episodes, seed=args.seed, n_envs=args.eval_envs)
        logger.log({f"eval/final_{k}": v for k, v in result.items() if isinstance(v, float)}, step=agent.num_timesteps)
        write_json(out / "evaluation.json", result)
    name = type(agent).__name__
    if args.select_every:  # the agent evaluated is the kept one; OUT/model holds the last step
        best = f"return {keep.best_return:.1f} over {args.select_episodes} validation episodes"
        print(f"{name} kept step {keep.best_step} ({best}), saved to {out / 'best'}: {evaluation_text(result)}")
        print(f"the last step's checkpoint ({args.steps} steps) is in {out / 'model'}")
    else:
        print(f"{name} ({agent.num_timesteps} steps) saved to {out / 'model'}: {evaluation_text(result)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """Evaluate a saved agent; print one rounded line."""
    from agents import load_agent
    from agents.reporting import evaluation_text

    device = device_of(args)
    positive(args.episodes, "--episodes")
    positive(args.envs, "--envs")
    non_negative_pessimism(args)
    agent = load_agent(args.model, device=device)
    options = {}
    for name in ("sampling_steps", "action_candidates", "candidate_pessimism"):
        flag = CONFIG_FLAGS[name]
        if getattr(args, name) is not None:
            if name not in agent.predict_time_options:
                raise UserError(f"{flag}: a {type(agent).__name__} has no {name} setting")
            value = getattr(args, name)
            options[name] = value if name == "candidate_pessimism" else positive(value, flag)
    with command_run(args, "agent-evaluate") as (out, logger):
        result = agent.evaluate(args.episodes, seed=args.seed, n_envs=args.envs, **options)
        logger.log({f"eval/{k}": v for k, v in result.items() if isinstance(v, float)})
        write_json(out / "evaluation.json", result)
    steps = options.get("sampling_steps", getattr(agent.config, "sampling_steps", None))
    candidates = options.get("action_candidates", getattr(agent.config, "action_candidates", None))
    setting = "" if steps is None else f", K={steps}"
    setting += "" if candidates is None else f", N={candidates}"
    pessimism = options.get("candidate_pessimism", getattr(agent.config, "candidate_pessimism", 0.0))
    setting += f", beta={pessimism:g}" if pessimism else ""
    print(f"{type(agent).__name__}, {args.episodes} episodes{setting}: {evaluation_text(result)}")
    return 0
