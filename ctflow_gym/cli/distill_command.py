"""``ctflow distill``: a policy's verified refined version distilled into a standalone BC policy (DAgger).

    ctflow distill --policy shipped:hopper-medium --refiner runs/medium-refiner/refiner \\
        --dataset-id ctflow/hopper/distilled-v0 --save runs/distilled

The teacher is ``RefinedPolicy(policy, refiner, env, verify=True)`` with the strength ladder
``--strength`` / ``--candidates`` and ``--continuation`` policy steps in every score (judge
over a few hundred steps: a short horizon prefers windows that set up a fall);
:func:`ctflow_gym.improve.distill` writes its windows at the teacher's and then the learner's
states as a dataset and trains ``BCAgent`` (FTB's settings, ``--bc-steps``) on it each
round (``--replan-every N``: a teacher that plans again every N steps, recorded for those
N steps only, whose labels are a function of the state). ``--unverified`` drops the replay:
the teacher executes the refined window at ``--strength`` (default 1 then) without choosing,
the teacher that BC extracts on the Hopper replay data when it replans every 8 steps (the
verified one chooses whole windows by what follows them, which BC cannot fit at a receding
horizon). ``--select-every N`` makes each round's BC its checkpoint best on
``--select-episodes`` validation episodes (:class:`agents.KeepBest`; BC on such data swings
widely between checkpoints). The last round's agent is saved
to ``--save`` and, with ``--eval-episodes``, run beside the policy on the same episodes.
Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse

import numpy as np

from ctflow_gym.cli.common import UserError, positive


def register(commands) -> None:
    """Add the ``distill`` subcommand to ``commands``."""
    distill = commands.add_parser(
        "distill",
        help="distil a policy's verified refined version into a standalone BC policy (DAgger)",
        description=(
            "Run the policy with the refiner attached and every refined window verified by replay (the teacher), "
            "record the windows it chooses at its own states and then at the states a learner reaches, and train "
            "BC on them round by round: a policy that acts without the refiner or the simulator."
        ),
    )
    distill.add_argument(
        "--policy",
        required=True,
        help="the policy: an SB3 zip, an actor folder, or shipped:NAME (shipped:hopper-medium)",
    )
    distill.add_argument("--policy-algo", default=None, help="SB3 class that saved --policy (default: from the zip)")
    distill.add_argument("--refiner", required=True, help="refiner checkpoint folder (any registered family)")
    distill.add_argument("--dataset-id", required=True, help="id of the dataset of teacher windows to write")
    distill.add_argument("--save", required=True, help="folder to save the distilled BCAgent to")
    distill.add_argument("--env", default=None, help="gymnasium env id (default: the refiner's)")
    distill.add_argument("--out", default=None, help="datasets root folder (default: Minari's root)")
    distill.add_argument(
        "--strength", type=float, default=None, help="largest refinement strength (default: 4; 1 with --unverified)"
    )
    distill.add_argument(
        "--unverified",
        action="store_true",
        help="the teacher executes the refined window without replaying or choosing (one candidate, no continuation)",
    )
    distill.add_argument(
        "--candidates", type=int, default=None, help="refined windows verified per window (default: 3)"
    )
    distill.add_argument(
        "--continuation", type=int, default=None, help="policy steps after each window in its score (default: 400)"
    )
    distill.add_argument(
        "--replan-every",
        type=int,
        default=None,
        help="the teacher plans again after this many steps and is recorded for those only (a Markov teacher; "
        "costs window/N times the look-ahead; default: whole windows)",
    )
    distill.add_argument("--rounds", type=int, default=2, help="DAgger rounds after round 0 (default: 2)")
    distill.add_argument("--episodes", type=int, default=40, help="episodes rolled out per round (default: 40)")
    distill.add_argument("--seed", type=int, default=0, help="seed of the resets and of BC (default: 0)")
    distill.add_argument("--bc-steps", type=int, default=20_000, help="BC gradient steps per round (default: 20000)")
    distill.add_argument(
        "--select-every",
        type=int,
        default=0,
        help="each round's BC keeps its checkpoint best on validation episodes, evaluated every N steps (0: the last)",
    )
    distill.add_argument("--select-episodes", type=int, default=10, help="validation episodes (default: 10)")
    distill.add_argument(
        "--select-seed", type=int, default=3000, help="reset seed of the first validation episode (default: 3000)"
    )
    distill.add_argument(
        "--eval-episodes", type=int, default=10, help="episodes to run the result beside the policy (0: none)"
    )
    distill.add_argument("--device", default="cpu", help="torch device of the refiner and BC (default: cpu)")
    distill.add_argument("--overwrite", action="store_true", help="replace a dataset made otherwise")
    distill.add_argument("--no-progress", action="store_true")
    distill.set_defaults(handler=_distill)


def _distill(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from agents import BCAgent, KeepBest
    from ctflow_gym.data.actor_policies import behaviour_policy
    from ctflow_gym.data.recipes import policy_path
    from ctflow_gym.improve import distill
    from ctflow_gym.refine import load_refiner
    from ctflow_gym.wrappers import RefinedPolicy, run_episodes

    if args.unverified and (args.candidates is not None or args.continuation is not None):
        raise UserError("--candidates and --continuation choose among verified windows; drop them with --unverified")
    args.candidates = 3 if args.candidates is None else args.candidates
    args.continuation = 400 if args.continuation is None else args.continuation
    for value, flag in (
        (args.candidates, "--candidates"),
        (args.episodes, "--episodes"),
        (args.bc_steps, "--bc-steps"),
        (args.select_episodes, "--select-episodes"),
    ):
        positive(value, flag)
    if args.rounds < 0 or args.continuation < 0 or args.eval_episodes < 0 or args.select_every < 0:
        raise UserError("--rounds, --continuation, --eval-episodes and --select-every must be >= 0")
    if args.select_seed < 0:
        raise UserError(f"--select-seed must be >= 0; got {args.select_seed}")
    try:
        refiner = load_refiner(args.refiner, device=args.device)
    except FileNotFoundError as error:
        raise UserError(f"--refiner: {error}") from None
    env_id = args.env or refiner.env_id
    if env_id is None:
        raise UserError("--env: the refiner records no env id; name the env")
    try:
        policy = behaviour_policy(policy_path(args.policy), args.policy_algo, env_id, deterministic=True, seed=0)
    except (FileNotFoundError, ValueError) as error:
        raise UserError(f"--policy: {error}") from None
    env = gym.make(env_id)
    if args.replan_every is not None and not 1 <= args.replan_every <= refiner.window:
        window = refiner.window
        raise UserError(f"--replan-every must be in [1, {window}] (the refiner's window); got {args.replan_every}")
    if args.unverified:  # one refined window, executed as it is: nothing to verify, so no candidates or look-ahead
        strength = 1.0 if args.strength is None else args.strength
        teacher = RefinedPolicy(policy, refiner, env, strength=strength, verify=False, replan_every=args.replan_every)
    else:
        teacher = RefinedPolicy(
            policy, refiner, env, strength=4.0 if args.strength is None else args.strength,
            candidates=args.candidates, continuation=args.continuation, replan_every=args.replan_every,
        )  # fmt: skip

    def learn(path):
        keep = KeepBest(args.select_every, args.select_episodes, args.select_seed) if args.select_every else None
        return BCAgent(env_id, path, device=args.device, seed=args.seed).learn(args.bc_steps, callback=keep)

    report = distill(
        teacher, learn, args.dataset_id, root=args.out, overwrite=args.overwrite, progress_bar=not args.no_progress,
        rounds=args.rounds, episodes=args.episodes, seed=args.seed,
    )  # fmt: skip
    for r in report.rounds:
        print(
            f"round {r.round}: {r.rolled_out_by} rolled out {len(r.episode_returns)} episodes (mean return "
            f"{np.mean(r.episode_returns):.1f}); {r.windows} teacher windows, {r.refined_windows} of them refined"
        )
    report.policy.save(args.save)
    print(f"dataset {report.path}; distilled policy saved to {args.save}")
    if args.eval_episodes:
        seed = 10_000 + args.seed  # episodes no round rolled out
        alone = np.mean(run_episodes(gym.make(env_id), policy, args.eval_episodes, seed=seed))
        distilled = np.mean(run_episodes(gym.make(env_id), report.policy, args.eval_episodes, seed=seed))
        print(f"mean return over {args.eval_episodes} episodes: the policy {alone:.1f}, distilled {distilled:.1f}")
    return 0
