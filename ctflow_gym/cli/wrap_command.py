"""``ctflow wrap``: run an SB3 policy inside RefinementWrapper with replay.

Shadow mode (default) measures: the policy's episodes are untouched and every
refined window is replayed beside them. ``--mode commit`` acts: a refined window
whose replay scores higher is kept and the episode goes on from its end state, so the
printed episode returns are what refinement earned. Every refined number is printed
beside the policy's own (:func:`report_lines`): in commit mode the same policy is also
run without refinement on the same reset seeds. ``--critic-tail`` scores windows
by return + gamma^H x the policy's own critic value of the end state (SAC/TD3), the
rule under which refinement stopped hurting the shipped policy (the Results page of the
documentation).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ctflow_gym.cli.common import UserError, command_run, common_flags, device_of, positive, write_json


def register(commands) -> None:
    """Add the ``wrap`` subcommand to ``commands``."""
    wrap = commands.add_parser(
        "wrap",
        parents=[common_flags()],
        help="run a policy in RefinementWrapper and check every refined window in MuJoCo",
        description=(
            "Run an SB3 policy on an env wrapped in RefinementWrapper(replay=True): every window is "
            "refined and the refined actions are replayed from the window's start state. In shadow "
            "mode (default) the policy's own episodes are left as they were; in commit mode a refined "
            "window that scores higher is kept."
        ),
    )
    wrap.add_argument("refiner", help="folder written by `ctflow refiner fit` (OUT/refiner)")
    wrap.add_argument("--policy", default=None, help="SB3 model zip (default: the shipped SAC policy)")
    wrap.add_argument("--policy-algo", default=None, help="SB3 class that saved the policy (default: from the zip)")
    wrap.add_argument("--env", default=None, help="env id (default: the refiner's)")
    wrap.add_argument("--episodes", type=int, default=3)
    wrap.add_argument("--strength", type=float, default=0.5, help="refinement strength alpha (default: 0.5)")
    wrap.add_argument(
        "--mode",
        choices=["shadow", "commit"],
        default="shadow",
        help="shadow: measure only (default); commit: keep refined windows that score higher",
    )
    wrap.add_argument(
        "--critic-tail",
        action="store_true",
        help="score windows by return + gamma^H x the policy's critic value of the end state (SAC/TD3 policies)",
    )
    wrap.add_argument(
        "--value-tail",
        action="store_true",
        help="score windows by return + gamma^H x a value function fitted on the refiner's dataset (any policy)",
    )
    wrap.add_argument(
        "--candidates", type=int, default=1, help="refined candidates per window, best replayed one kept (default: 1)"
    )
    wrap.add_argument(
        "--execution",
        choices=["auto", "open_loop", "tracked"],
        default="auto",
        help="how refined windows are replayed: auto (tracked when the refiner can), open_loop, tracked",
    )
    wrap.set_defaults(handler=_wrap)


def run_wrapped_episodes(
    env_id: str,
    refiner,
    policy,
    episodes: int,
    strength: float,
    seed: int,
    logger,
    mode: str = "shadow",
    value_fn=None,
    candidates: int = 1,
    execution: str = "auto",
) -> dict[str, Any]:
    """Run ``policy`` for ``episodes`` episodes in a replaying :class:`RefinementWrapper`.

    Returns the episode returns (the policy's own in shadow mode; with committed
    refined windows in commit mode), ``baseline_returns`` (the policy alone on the same
    reset seeds: in commit mode from as many extra unwrapped episodes; in shadow mode
    the episode returns themselves, which the wrapper leaves untouched) and the
    wrapper's per-window totals (:meth:`RefinementTotals.summary`).
    """
    import gymnasium as gym

    from ctflow_gym.wrappers import RefinementWrapper, run_episodes

    env = RefinementWrapper(
        gym.make(env_id),
        refiner,
        strength=strength,
        replay=True,
        mode=mode,
        logger=logger,
        value_fn=value_fn,
        candidates=candidates,
        execution=execution,
    )
    returns = run_episodes(env, policy, episodes, seed)
    env.close()
    baseline = run_episodes(gym.make(env_id), policy, episodes, seed) if mode == "commit" else list(returns)
    return {
        "episode_returns": returns,
        "baseline_returns": baseline,
        **env.totals.summary(),
        "mode": mode,
        "value_tail": value_fn is not None,
        "strength": strength,
        "candidates": candidates,
        "execution": env.execution,
    }


def _wrap(args: argparse.Namespace) -> int:
    from ctflow_gym.data import default_policy_path, load_sb3_policy
    from ctflow_gym.refine import load_refiner

    device = device_of(args)
    positive(args.episodes, "--episodes")
    refiner = load_refiner(args.refiner, device=device)
    env_id = args.env or refiner.env_id
    if env_id is None:
        raise UserError("--env is needed: the refiner does not record its env")
    policy = load_sb3_policy(args.policy or default_policy_path(), args.policy_algo, device=device, env=env_id)
    value_fn = None
    if args.critic_tail and args.value_tail:
        raise UserError("--critic-tail and --value-tail are two value functions; pass one")
    if args.value_tail:
        value_fn = getattr(refiner, "value_function", None)
        if value_fn is None:
            from ctflow_gym.data import DEFAULT_DATASET_ID
            from ctflow_gym.refine import DatasetValueFunction

            dataset_id = getattr(refiner, "fit_info", {}).get("dataset_id") or DEFAULT_DATASET_ID
            value_fn = DatasetValueFunction(device=device).fit(dataset_id, progress_bar=False)
    if args.critic_tail:
        from ctflow_gym.wrappers import sb3_value_function

        try:
            value_fn = sb3_value_function(policy)
        except TypeError as error:
            raise UserError(f"--critic-tail needs a SAC or TD3 policy with a Q critic: {error}") from error
    with command_run(args, "wrap") as (out, logger):
        try:
            result = run_wrapped_episodes(
                env_id,
                refiner,
                policy,
                args.episodes,
                args.strength,
                args.seed,
                logger,
                args.mode,
                value_fn,
                args.candidates,
                args.execution,
            )
        except ValueError as error:
            raise UserError(str(error)) from error
        write_json(out / "wrap.json", result)
    print("\n".join([*report_lines(result), f"report {out / 'wrap.json'}"]))
    return 0


def _number(value: float, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``n/a`` when it is undefined (NaN)."""
    return format(value, spec) if np.isfinite(value) else "n/a"


def report_lines(result: dict[str, Any]) -> list[str]:
    """:func:`run_wrapped_episodes`' result for a reader: each refined number beside the policy's own.

    Line 1, episodes: in commit mode the mean return with refinement, the policy alone
    on the same seeds, their difference and its percentage; in shadow mode the
    policy's own return (refinement only measured). Line 2, replayed windows: the mean
    refined and the policy's own window return, the mean realised gain (their
    difference, with its standard error) and the fraction improved, and the proxy gain.
    Returns to one decimal, per-window gains to three (they are small); undefined
    numbers read ``n/a``.
    """
    returns, baseline = np.asarray(result["episode_returns"]), np.asarray(result["baseline_returns"])
    commit = result["mode"] == "commit"
    head = f"{len(returns)} episode{'s' if len(returns) != 1 else ''}, {result['mode']} mode (strength "
    head += f"{result['strength']:g}): return {returns.mean():.1f} +- {returns.std():.1f}"
    if commit:
        difference = returns.mean() - baseline.mean()
        relative = 100 * difference / abs(baseline.mean()) if baseline.mean() else float("nan")
        head += (
            f" with refinement, {baseline.mean():.1f} +- {baseline.std():.1f} for the policy alone on the same "
            f"seeds: {difference:+.1f} ({_number(relative, '+.1f')}%)"
        )
    else:
        head += ", the policy alone (shadow mode leaves its episodes untouched)"
    windows = f"windows: {result['windows_refined']} refined, {result['windows_replayed']} replayed"
    windows += f", {result['windows_committed']} committed" if commit else ""
    if result["windows_replayed"]:
        windows += (
            f"; per replayed window, return {result['mean_refined_return']:.1f} refined vs "
            f"{result['mean_source_return']:.1f} for the policy's own "
            f"(mean realised gain {result['mean_realized_gain']:+.3f} "
            f"+- {_number(result['realized_gain_se'], '.3f')}, {100 * result['improved_fraction']:.0f}% improved)"
        )
    windows += f"; proxy gain {_number(result['mean_proxy_gain'], '+.3f')}"
    return [head, windows]
