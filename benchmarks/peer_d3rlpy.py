"""Train and evaluate one d3rlpy algorithm on exported transitions (runs in d3rlpy's venv).

Called by ``gtp_vs_peers.py`` with the Python of a separate virtual environment
(d3rlpy 2.8 pins gymnasium 1.0.0, which ctflow_gym does not use). Reads the arrays
``gtp_vs_peers.py`` exported, trains IQL or TD3+BC with the hyper-parameters of
d3rlpy's own D4RL reproduction scripts (batch size and steps as given), evaluates
``--episodes`` episodes (first reset seeded with ``--eval-seed``) and writes JSON:
episode returns, gradient steps per second (training only) and settings. With
``--eval-every N`` it also evaluates every N gradient steps the same way (training
runs in epochs of N steps through ``fitter``; evaluation time is not training time)
and writes the curve, from which the caller forms the mean of the last evaluations.

Imports only numpy, gymnasium and d3rlpy; for this package's PointMaze envs
(``--point-maze-module``) it loads ``ctflow_gym/envs/point_maze.py`` alone, which needs
gymnasium-robotics in the venv (``gtp_vs_peers.py`` installs version 1.3.1 there, the last
that accepts d3rlpy's gymnasium 1.0; it brings MuJoCo 3.1.6, where the main venv has 4.0).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time

import d3rlpy
import gymnasium as gym
import numpy as np


def make_algo(name: str, batch_size: int, steps: int, device: str, compile_graph: bool = False):
    """d3rlpy's reproduction settings for locomotion (reproductions/offline/{iql,td3_plus_bc}.py).

    ``compile_graph``: d3rlpy's own torch.compile + CUDA graph mode of its update (CUDA only).
    """
    if name == "iql":
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            actor_optim_factory=d3rlpy.optimizers.AdamFactory(
                lr_scheduler_factory=d3rlpy.optimizers.CosineAnnealingLRFactory(T_max=steps)
            ),
            batch_size=batch_size,
            weight_temp=3.0,
            max_weight=100.0,
            expectile=0.7,
            reward_scaler=d3rlpy.preprocessing.ReturnBasedRewardScaler(multiplier=1000.0),
            compile_graph=compile_graph,
        ).create(device=device)
    if name == "td3+bc":
        return d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=3e-4,
            critic_learning_rate=3e-4,
            batch_size=batch_size,
            target_smoothing_sigma=0.2,
            target_smoothing_clip=0.5,
            alpha=2.5,
            update_actor_interval=2,
            observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
            compile_graph=compile_graph,
        ).create(device=device)
    raise ValueError(f"algo must be iql or td3+bc; got {name!r}")


def _mujoco_version() -> str | None:
    try:
        import mujoco
    except ImportError:
        return None
    return mujoco.__version__


def register_point_mazes(path: str) -> None:
    """Load this package's PointMaze module from ``path`` by itself and register its envs with gymnasium."""
    spec = importlib.util.spec_from_file_location("ctflow_point_maze", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    module.register_point_mazes(entry_point=module.make_point_maze)


def evaluate(algo, env_id: str, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` episodes, the first reset seeded with ``seed`` (then unseeded resets)."""
    env = gym.make(env_id)
    returns = []
    obs, _ = env.reset(seed=seed)
    for _ in range(episodes):
        total, done = 0.0, False
        while not done:
            action = algo.predict(obs[None].astype(np.float32))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        obs, _ = env.reset()
    env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--algo", required=True, choices=["iql", "td3+bc"])
    parser.add_argument("--data", required=True, help="npz written by gtp_vs_peers.py")
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--eval-seed", type=int, default=10_000)
    parser.add_argument("--device", default="cpu:0")
    parser.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (0: at the end only)")
    parser.add_argument("--compile-graph", action="store_true", help="d3rlpy's compile_graph (CUDA)")
    parser.add_argument("--point-maze-module", default=None, help="ctflow_gym/envs/point_maze.py, for its envs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.point_maze_module:
        register_point_mazes(args.point_maze_module)

    arrays = np.load(args.data)
    dataset = d3rlpy.dataset.MDPDataset(
        observations=arrays["observations"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        terminals=arrays["terminals"],
        timeouts=arrays["timeouts"],
    )
    d3rlpy.seed(args.seed)
    algo = make_algo(args.algo, args.batch_size, args.steps, args.device, args.compile_graph)
    epoch_steps = args.eval_every or min(args.steps, 10_000)
    curve, train_seconds = [], 0.0
    started = time.perf_counter()
    epochs = algo.fitter(  # d3rlpy 2.8: the generator form of fit, one item per epoch
        dataset,
        n_steps=args.steps,
        n_steps_per_epoch=epoch_steps,
        show_progress=False,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        save_interval=10**9,
    )
    for epoch, _ in epochs:
        if args.eval_every:
            train_seconds += time.perf_counter() - started
            step = min(epoch * epoch_steps, args.steps)
            returns = evaluate(algo, args.env, args.episodes, args.eval_seed)
            curve.append({"step": step, "returns": returns, "training_seconds": train_seconds})
            started = time.perf_counter()
    train_seconds += time.perf_counter() - started
    returns = evaluate(algo, args.env, args.episodes, args.eval_seed)
    result = {
        "algo": args.algo,
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "returns": returns,
        "train_seconds": train_seconds,
        "steps_per_second": args.steps / train_seconds,
        "eval_every": args.eval_every,
        "curve": curve,
        "versions": {"d3rlpy": d3rlpy.__version__, "gymnasium": gym.__version__, "mujoco": _mujoco_version()},
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
