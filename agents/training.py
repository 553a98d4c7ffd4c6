"""The gradient-step loop of :meth:`agents.base.OfflineAgent.learn`, and the parts ``learn_online`` shares.

:func:`learn_offline` is ``learn``'s body: resume from a checkpoint, then gradient steps
(:mod:`agents.steps`), each followed by :func:`after_step` (averaged metrics every
``log_interval`` steps, an evaluation every ``eval_freq``, a checkpoint every
``checkpoint_freq``, the SB3 callback), with the non-finite-loss guard of
:func:`gradient_step`. :func:`agents.online.learn_online` runs its env steps through the
same pieces, so both loops log, evaluate, checkpoint and stop alike.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback

from agents.compilation import compile_backend
from agents.errors import NonFiniteLossError
from agents.evaluation import require_vectorization
from agents.persistence import holds_something, require_same_settings
from agents.reporting import EvaluationPrinter
from agents.steps import training_steps
from ctflow_gym.logging import RunLogger
from ctflow_gym.progress import progress_bar as make_progress_bar

if TYPE_CHECKING:
    from agents.base import OfflineAgent


def learn_offline(
    agent: "OfflineAgent",
    total_timesteps: int,
    callback: Any,
    log_interval: int,
    progress_bar: bool,
    reset_num_timesteps: bool,
    eval_freq: int,
    n_eval_episodes: int,
    n_eval_envs: int,
    checkpoint_path: str | os.PathLike | None,
    checkpoint_freq: int,
    resume: bool,
    run_logger: RunLogger | None,
    compile: bool | str,
    cuda_graph: bool | str,
) -> "OfflineAgent":
    """Train ``agent`` for ``total_timesteps`` gradient steps (:meth:`~agents.base.OfflineAgent.learn`)."""
    if agent.transitions is None:
        raise ValueError("this agent has no dataset to learn from; pass dataset= to the constructor or to load()")
    if not isinstance(total_timesteps, (int, np.integer)) or total_timesteps < 0:
        raise ValueError(f"total_timesteps must be a non-negative integer; got {total_timesteps!r}")
    require_vectorization(n_eval_envs, "sync", "n_eval_envs")
    agent._use_compile(compile_backend(compile))
    if not (isinstance(cuda_graph, bool) or cuda_graph == "auto"):
        raise ValueError(f"cuda_graph must be True, False or 'auto'; got {cuda_graph!r}")
    logger = run_logger or agent.run_logger
    if resume_from(agent, checkpoint_path, resume) is not None:
        agent.target_timesteps = int(total_timesteps)
    elif resume or not reset_num_timesteps:
        agent.target_timesteps = int(total_timesteps) if resume else agent.num_timesteps + int(total_timesteps)
    else:
        agent.num_timesteps = 0
        agent.target_timesteps = int(total_timesteps)
    callback = init_callback(agent, callback)
    callback.on_training_start({**locals(), "self": agent}, globals())
    steps = training_steps(agent, cuda_graph)
    bar = make_progress_bar(
        total=agent.target_timesteps,
        initial=agent.num_timesteps,
        desc=type(agent).__name__,
        disable=not progress_bar,
        unit="step",
    )
    settings = (logger, log_interval, eval_freq, n_eval_episodes, n_eval_envs, checkpoint_path, checkpoint_freq)
    try:
        while agent.num_timesteps < agent.target_timesteps:
            gradient_step(agent, steps, checkpoint_path)
            agent.num_timesteps += 1
            bar.update(1)
            if not after_step(agent, steps, callback, {**locals(), "self": agent}, *settings):
                break
    finally:
        bar.close()
        steps.close()
    return finish(agent, callback, checkpoint_path)


def finish(agent: "OfflineAgent", callback: BaseCallback, checkpoint_path: str | os.PathLike | None) -> "OfflineAgent":
    """End a training run: acting state refreshed, the last checkpoint written, the callback told; ``agent``."""
    agent._refresh_acting_state()
    if checkpoint_path is not None:
        agent.save(checkpoint_path)
    callback.on_training_end()
    return agent


def resume_from(agent: "OfflineAgent", checkpoint_path: str | os.PathLike | None, resume: bool) -> dict | None:
    """Check ``checkpoint_path``; with ``resume`` and a checkpoint there, restore it into ``agent``; its metadata."""
    checkpoint = None if checkpoint_path is None else Path(checkpoint_path)
    if checkpoint is not None and checkpoint.exists() and not checkpoint.is_dir():
        raise FileExistsError(f"checkpoint_path: {str(checkpoint)!r} is a file; a checkpoint is a folder")
    if not (resume and checkpoint is not None and holds_something(checkpoint)):
        return None
    meta = agent._read_meta(checkpoint)  # damaged, old-layout or foreign folders raise here
    require_same_settings(agent, checkpoint, meta)
    agent._restore(checkpoint, meta)
    return meta


def gradient_step(agent: "OfflineAgent", steps: Any, checkpoint_path: str | os.PathLike | None) -> None:
    """One step of ``steps``; a non-finite loss saves the last good state and raises with the step number."""
    try:
        steps.step()
    except NonFiniteLossError as error:
        saved = save_last_good(agent, checkpoint_path)
        step = agent.num_timesteps + 1
        whole = steps.restores_whole_step
        raise NonFiniteLossError(error.loss_name, error.value, step, str(saved), whole) from None


def after_step(
    agent: "OfflineAgent",
    steps: Any,
    callback: BaseCallback,
    local_vars: dict[str, Any],
    logger: RunLogger,
    log_interval: int,
    eval_freq: int,
    n_eval_episodes: int,
    n_eval_envs: int,
    checkpoint_path: str | os.PathLike | None,
    checkpoint_freq: int,
) -> bool:
    """Log, evaluate, checkpoint and call back after step ``agent.num_timesteps``; False when the callback stops."""
    at_end = agent.num_timesteps == agent.target_timesteps
    if log_interval and (agent.num_timesteps % log_interval == 0 or at_end):
        means = steps.means()
        if means:  # none before learn_online's learning_starts
            record(agent, logger, {f"train/{k}": v for k, v in means.items()})
    if eval_freq and agent.num_timesteps % eval_freq == 0:
        record(agent, logger, evaluation_metrics(agent, n_eval_episodes, n_eval_envs))
    if checkpoint_path is not None and checkpoint_freq and agent.num_timesteps % checkpoint_freq == 0:
        agent.save(checkpoint_path)
    callback.update_locals(local_vars)
    return callback.on_step()


def init_callback(agent: "OfflineAgent", callback: Any) -> BaseCallback:
    """``callback`` (None, an SB3 callback, a list of them or a callable) as one SB3 callback bound to ``agent``."""
    if callback is None:
        callback = CallbackList([])
    elif isinstance(callback, list):
        callback = CallbackList(callback)
    elif not isinstance(callback, BaseCallback):
        if not callable(callback):
            raise TypeError(
                f"callback must be an SB3 BaseCallback, a list of them or a callable; got {type(callback).__name__}"
            )
        callback = ConvertCallback(callback)
    if agent.verbose:  # each evaluation as one line, as the command line prints it
        callback = CallbackList([callback, EvaluationPrinter(prefix=f"[{type(agent).__name__}] ")])
    callback.init_callback(agent)
    return callback


def record(agent: "OfflineAgent", logger: RunLogger, metrics: dict[str, float]) -> None:
    """``metrics`` at the agent's step to ``logger`` and to the agent's SB3 logger (what SB3 callbacks read)."""
    logger.log(metrics, step=agent.num_timesteps)
    for key, value in metrics.items():
        agent.logger.record(key, value)
    agent.logger.dump(agent.num_timesteps)


def evaluation_metrics(agent: "OfflineAgent", n_episodes: int, n_envs: int = 1) -> dict[str, float]:
    """Evaluate ``agent`` now; the summary appended to its ``eval_history`` and returned as ``eval/`` metrics."""
    agent._refresh_acting_state()
    result = agent.evaluate(n_episodes, n_envs=n_envs)
    summary = {k: v for k, v in result.items() if k != "returns"}
    agent.eval_history.append({"step": agent.num_timesteps, "episodes": len(result["returns"]), **summary})
    return {f"eval/{k}": v for k, v in summary.items() if v is not None}


def save_last_good(agent: "OfflineAgent", checkpoint_path) -> Path:
    """Save ``agent`` to ``checkpoint_path``, or to a new temporary folder when there is none; the folder."""
    if checkpoint_path is not None:
        return agent.save(checkpoint_path)
    path = Path(tempfile.mkdtemp(prefix=f"{type(agent).__name__.lower()}-last-good-")) / "checkpoint"
    return agent.save(path)


__all__ = [
    "after_step",
    "evaluation_metrics",
    "finish",
    "gradient_step",
    "init_callback",
    "learn_offline",
    "record",
    "resume_from",
    "save_last_good",
]
