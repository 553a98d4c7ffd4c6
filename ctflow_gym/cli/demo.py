"""``ctflow demo``: the whole workflow on the shipped data, in a few minutes on a CPU.

With no arguments and no network it:

1. loads the shipped Hopper-v5 medium-replay dataset and the shipped *medium* SB3 SAC
   policy (``shipped_policy_path("medium")``, return about 1100);
2. fits a :class:`~ctflow_gym.TrajectoryRefiner` (small budget) and measures it on
   held-out windows: the proxy gain the paper reports and the realised gain when
   the refined actions are replayed in MuJoCo from each window's recorded state;
3. plots the refinement path of one window (``refinement_path.png``);
4. runs the medium policy inside :class:`~ctflow_gym.wrappers.RefinementWrapper` with
   replay for a few episodes, so every window it produces is refined and checked
   (tracked execution, the default);
5. trains a short :class:`agents.GTPAgent` and evaluates it (D4RL-normalised score),
   with the paper's single critic (``critic_ensemble=1``): the default's five critics
   steady the spread over seeds of long runs, which a run this short cannot show, and
   one critic trains twice as fast;
6. plots returns (``returns.png``), writes ``summary.json`` and prints a summary.

Every number comes from the run. The default budgets take about 2 minutes on 2
CPU cores; ``--refiner-steps``, ``--gtp-steps``, ``--episodes`` raise them (the
short GTP run is far from converged: the Results page of the documentation has longer
runs).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctflow_gym.cli.common import UserError, command_run, common_flags, device_of, positive, write_json


@dataclass
class DemoConfig:
    """Budgets of the demo.

    Attributes:
        refiner_steps: autoencoder and flow gradient steps each (predictor: a third).
        held_out_windows: held-out dataset windows refined and replayed.
        strength: refinement strength alpha for the held-out windows and the wrapper.
        episodes: episodes of the medium SAC policy run inside the wrapper.
        gtp_steps: GTPAgent gradient steps.
        eval_episodes: GTPAgent evaluation episodes.
        seed: seeds everything.
        device: torch device.
    """

    refiner_steps: int = 1500
    held_out_windows: int = 300
    strength: float = 1.0
    episodes: int = 3
    gtp_steps: int = 3000
    eval_episodes: int = 5
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Raise ``UserError`` naming the first flag out of range."""
        for name in ("refiner_steps", "held_out_windows", "episodes", "gtp_steps", "eval_episodes"):
            positive(getattr(self, name), f"--{name.replace('_', '-')}")
        if not np.isfinite(self.strength) or self.strength < 0:
            raise UserError(f"--strength must be a finite number >= 0; got {self.strength}")


def register(commands) -> None:
    """Add the ``demo`` subcommand to ``commands``."""
    demo = commands.add_parser(
        "demo",
        parents=[common_flags()],
        help="the whole workflow on the shipped data (about 2 minutes on a 2-core CPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = DemoConfig()
    demo.add_argument(
        "--refiner-steps",
        type=int,
        default=defaults.refiner_steps,
        help=f"refiner autoencoder/flow steps (default: {defaults.refiner_steps})",
    )
    demo.add_argument(
        "--held-out-windows",
        type=int,
        default=defaults.held_out_windows,
        help=f"held-out windows replayed (default: {defaults.held_out_windows})",
    )
    demo.add_argument(
        "--strength",
        type=float,
        default=defaults.strength,
        help=f"refinement strength alpha (default: {defaults.strength})",
    )
    demo.add_argument(
        "--episodes",
        type=int,
        default=defaults.episodes,
        help=f"policy episodes in the wrapper (default: {defaults.episodes})",
    )
    demo.add_argument(
        "--gtp-steps",
        type=int,
        default=defaults.gtp_steps,
        help=f"GTPAgent gradient steps (default: {defaults.gtp_steps})",
    )
    demo.add_argument(
        "--eval-episodes",
        type=int,
        default=defaults.eval_episodes,
        help=f"GTPAgent evaluation episodes (default: {defaults.eval_episodes})",
    )
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(handler=_demo)


def run_demo(config: DemoConfig, out: Path, logger, progress_bar: bool = True) -> dict[str, Any]:
    """Run the demo's steps (module docstring) writing into ``out``; returns the summary."""
    from agents import agent_class
    from ctflow_gym.cli.refiner_commands import fit_refiner, plot_path
    from ctflow_gym.cli.wrap_command import run_wrapped_episodes
    from ctflow_gym.data import DEFAULT_DATASET_ID, load_dataset, load_sb3_policy, normalized_score, shipped_policy_path
    from ctflow_gym.refine.evaluation import evaluate_refinement, held_out_windows

    config.validate()
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 1)
        return now

    dataset = load_dataset(DEFAULT_DATASET_ID)
    env_id = dataset.env_spec.id
    policy = load_sb3_policy(shipped_policy_path("medium"), device=config.device, env=env_id)
    print(
        f"[demo] 1/5 dataset {dataset.id}: {dataset.total_episodes} episodes, {dataset.total_steps} steps ({env_id})",
        flush=True,
    )

    print(f"[demo] 2/5 fitting a TrajectoryRefiner ({config.refiner_steps} autoencoder + flow steps)", flush=True)
    t = time.perf_counter()
    refiner = fit_refiner(
        dataset,
        16,
        3,
        config.refiner_steps,
        config.refiner_steps,
        max(1, config.refiner_steps // 3),
        "return",
        config.seed,
        config.device,
        logger,
        progress_bar,
        inverse_dynamics_steps=config.refiner_steps,
    )
    refiner.save(out / "refiner")
    windows = held_out_windows(refiner, dataset, config.held_out_windows, config.seed)
    offline = evaluate_refinement(refiner, windows, strength=config.strength)
    plot_path(refiner, windows, out / "refinement_path.png", strength=config.strength, logger=logger)
    logger.log({f"demo/heldout_{k}": v["mean"] for k, v in offline.items() if isinstance(v, dict) and "mean" in v})
    t = lap("refiner_s", t)

    print(
        f"[demo] 3/5 running the shipped medium SAC policy in RefinementWrapper(replay=True) for {config.episodes} "
        "episodes",
        flush=True,
    )
    wrapped = run_wrapped_episodes(env_id, refiner, policy, config.episodes, config.strength, config.seed, logger)
    t = lap("wrapper_s", t)

    print(f"[demo] 4/5 training a GTPAgent for {config.gtp_steps} gradient steps", flush=True)
    agent = agent_class("gtp")(
        env_id, dataset, device=config.device, seed=config.seed, run_logger=logger, critic_ensemble=1
    )
    agent.learn(config.gtp_steps, progress_bar=progress_bar, log_interval=max(1, config.gtp_steps // 20))
    agent.save(out / "gtp")
    gtp = agent.evaluate(config.eval_episodes, seed=config.seed)
    logger.log({"demo/gtp_normalized_score": gtp["normalized_score"], "demo/gtp_mean_return": gtp["mean_return"]})
    t = lap("gtp_s", t)

    print("[demo] 5/5 plots and summary", flush=True)
    dataset_returns = agent.transitions.episode_returns  # the agent already read every transition
    policy_scores = normalized_score(env_id, wrapped["episode_returns"])
    plot_returns(dataset_returns, wrapped, gtp, out / "returns.png")
    logger.log_image("demo/returns", out / "returns.png")
    summary = {
        "config": asdict(config),
        "dataset": {
            "id": dataset.id,
            "episodes": int(dataset.total_episodes),
            "steps": int(dataset.total_steps),
            "return_min": float(dataset_returns.min()),
            "return_max": float(dataset_returns.max()),
        },
        "refiner_heldout": {
            "windows": offline["windows"],
            "strength": config.strength,
            "proxy_gain": offline.get("proxy_gain"),
            "realized_gain": offline.get("realized_gain"),
            "realized_gain_positive_fraction": offline.get("realized_gain_positive_fraction"),
            "source_return": offline.get("source_return"),
        },
        "wrapper": wrapped,
        "sac_policy": {
            "mean_return": float(np.mean(wrapped["episode_returns"])),
            "normalized_score": float(np.mean(policy_scores)),
        },
        "gtp": {
            "steps": agent.num_timesteps,
            "sampling_steps": agent.sampling_steps,
            **{k: gtp[k] for k in ("returns", "mean_return", "std_return", "normalized_score", "normalized_score_std")},
        },
        "timings_s": {**timings, "total_s": round(time.perf_counter() - started, 1)},
        "files": {
            "refiner": str(out / "refiner"),
            "gtp_model": str(out / "gtp"),
            "refinement_path_png": str(out / "refinement_path.png"),
            "returns_png": str(out / "returns.png"),
            "summary_json": str(out / "summary.json"),
            "wandb_run": None if logger.run_dir is None else str(logger.run_dir),
        },
    }
    write_json(out / "summary.json", summary)
    return summary


def plot_returns(dataset_returns: np.ndarray, wrapped: dict[str, Any], gtp: dict[str, Any], out_file: Path) -> Path:
    """Two panels: dataset episode returns with the SAC and GTP means; replayed window gains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(
        np.arange(len(dataset_returns)), dataset_returns, ".", markersize=3, color="grey", label="dataset episodes"
    )
    left.axhline(
        np.mean(wrapped["episode_returns"]),
        color="black",
        label=f"shipped medium SAC policy ({np.mean(wrapped['episode_returns']):.0f})",
    )
    left.axhline(gtp["mean_return"], color="red", label=f"GTPAgent, short run ({gtp['mean_return']:.0f})")
    left.set_xlabel("dataset episode (collection order)")
    left.set_ylabel("episode return")
    left.set_title("returns")
    left.legend(fontsize=8)
    right.set_title(f"refined windows replayed in MuJoCo (strength {wrapped['strength']:g})")
    right.bar(
        ["proxy (predicted)", "realised (replayed)"],
        [wrapped["mean_proxy_gain"], wrapped["mean_realized_gain"]],
        yerr=[0.0, wrapped["realized_gain_se"]],
        color=["lightgrey", "tab:red"],
    )
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_ylabel("mean gain per window (return)")
    figure.tight_layout()
    staging = out_file.with_name(f".{out_file.stem}.tmp.png")
    figure.savefig(staging, dpi=110)
    plt.close(figure)
    staging.replace(out_file)
    return out_file


def print_summary(summary: dict[str, Any]) -> None:
    """The demo's summary in a few readable lines."""
    heldout, wrapper, gtp = summary["refiner_heldout"], summary["wrapper"], summary["gtp"]
    nan = {"mean": float("nan"), "se": float("nan")}
    proxy, real = heldout.get("proxy_gain") or nan, heldout.get("realized_gain") or nan
    source = (heldout.get("source_return") or nan)["mean"]
    own = wrapper.get("mean_source_return", float("nan"))
    wrapped_windows = f"window return {wrapper.get('mean_refined_return', float('nan')):.1f} refined vs {own:.1f}"
    lines = [
        "",
        "ctflow demo: what was done and what it measured",
        (
            f"  data      {summary['dataset']['id']}: {summary['dataset']['episodes']} episodes, "
            f"{summary['dataset']['steps']} steps, returns {summary['dataset']['return_min']:.0f} to "
            f"{summary['dataset']['return_max']:.0f}"
        ),
        (
            f"  refiner   {heldout['windows']} held-out windows at strength {heldout['strength']:g}: "
            f"window return {source + real['mean']:.1f} refined vs {source:.1f} for the dataset's own "
            f"(realised gain when replayed in MuJoCo {real['mean']:+.3f} +- {real['se']:.3f} per window, "
            f"{100 * (heldout.get('realized_gain_positive_fraction') or float('nan')):.0f}% improved); "
            f"proxy gain {proxy['mean']:+.3f}"
        ),
        (
            f"  wrapper   medium SAC policy, {len(wrapper['episode_returns'])} episodes (return "
            f"{summary['sac_policy']['mean_return']:.1f}, D4RL score "
            f"{summary['sac_policy']['normalized_score']:.1f}); "
            f"{wrapper['windows_refined']} windows refined and replayed: {wrapped_windows} for the policy's own "
            f"(realised {wrapper['mean_realized_gain']:+.3f} per window); proxy {wrapper['mean_proxy_gain']:+.3f}"
        ),
        (
            f"  GTPAgent  {gtp['steps']} gradient steps, K={gtp['sampling_steps']}: return "
            f"{gtp['mean_return']:.1f} +- {gtp['std_return']:.1f}, D4RL score "
            f"{gtp['normalized_score']:.1f}"
        ),
        (
            f"  time      {summary['timings_s']['total_s']:.0f} s "
            f"({', '.join(f'{k[:-2]} {v:.0f} s' for k, v in summary['timings_s'].items() if k != 'total_s')})"
        ),
        "  files",
    ]
    lines += [f"    {name:<20} {path}" for name, path in summary["files"].items() if path]
    if summary["files"].get("wandb_run"):
        lines.append(f"  upload the W&B run later with: wandb sync {summary['files']['wandb_run']}")
    print("\n".join(lines))


def _demo(args: argparse.Namespace) -> int:
    config = DemoConfig(
        refiner_steps=args.refiner_steps,
        held_out_windows=args.held_out_windows,
        strength=args.strength,
        episodes=args.episodes,
        gtp_steps=args.gtp_steps,
        eval_episodes=args.eval_episodes,
        seed=args.seed,
        device=device_of(args),
    )
    config.validate()
    with command_run(args, "demo", {"demo": asdict(config)}) as (out, logger):
        summary = run_demo(config, out, logger, progress_bar=not args.no_progress)
    print_summary(summary)
    return 0
