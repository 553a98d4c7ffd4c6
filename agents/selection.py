"""Keep the best of a training run, judged in closed loop on validation episodes: :class:`KeepBest`.

Why. A policy cloned from trajectories can swing between hopping and falling from one
thousand gradient steps to the next while its loss barely moves: in Hopper a small change of
the weights decides whether a state the data never showed is recovered from. The last step of
a run is then a draw from that swing, and two seeds on the same data can differ widely (the
Results page, "Improve, then extract"). Where a simulator is at hand, as it is
for every dataset this project builds, the run's own checkpoints can be judged where it
counts: in closed loop, on a fixed set of *validation* episodes (reset seeds that no reported
evaluation uses), keeping the best. This is model selection, not training on the test: the
numbers a benchmark reports come from other reset seeds.

What it costs: ``episodes`` whole episodes every ``every`` gradient steps, each step one
``predict`` and one simulator step.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from ctflow_gym.data.validation import require_int
from ctflow_gym.wrappers.episodes import record_episodes


class KeepBest(BaseCallback):
    """An SB3 callback for ``agent.learn``: every ``every`` steps, evaluate on validation episodes; keep the best.

    At each evaluation the agent acts deterministically for ``episodes`` episodes, episode i
    reset with seed ``seed + i`` (the same episodes every time, so evaluations compare the
    weights, not the luck of the starts); a mean return above every earlier one saves the agent
    (the whole checkpoint, :meth:`~agents.base.OfflineAgent.save`) to ``best_path``. The last
    step is always evaluated. When training ends the best checkpoint is restored into the agent
    (``restore=True``, the default): after ``learn`` the agent *is* the best one, at the step it
    was saved (``num_timesteps``), and acts and saves as such. A checkpoint ``learn`` writes to
    its ``checkpoint_path`` stays the last step's, which is what a resumed run continues from.

    Choices. Ties keep the earlier step (fewer steps, same evidence). Selection covers the steps
    of one ``learn`` call: a resumed run judges its own steps afresh. The mean return, not the
    D4RL score, is compared (the same order, and defined for every env).

    Args:
        every: gradient steps between evaluations (a positive integer).
        episodes: validation episodes per evaluation (a positive integer).
        seed: reset seed of the first validation episode; keep it apart from the seeds of any
            evaluation you report (this project's benchmarks report from 1000 or 5000 on and
            validate from 3000 on).
        env: the env to run them in (default: a new ``gym.make`` of the agent's env id).
        best_path: a folder for the best checkpoint (default: a temporary one, removed when
            training ends).
        restore: restore the best checkpoint into the agent when training ends.

    Attributes:
        history: one dict per evaluation: ``step``, ``mean_return``, ``std_return``, ``falls``
            (episodes that ended by termination).
        best_step / best_return: the step and mean return kept (None before the first evaluation).
    """

    def __init__(
        self,
        every: int,
        episodes: int = 10,
        seed: int = 3000,
        env: gym.Env | None = None,
        best_path: str | Path | None = None,
        restore: bool = True,
    ):
        super().__init__(verbose=0)
        require_int(every, "every")
        require_int(episodes, "episodes")
        require_int(seed, "seed", least=0)
        if env is not None and not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env or None; got {type(env).__name__}")
        self.every, self.episodes, self.seed, self.restore = int(every), int(episodes), int(seed), bool(restore)
        self._env = env
        self._given_path = None if best_path is None else Path(best_path)
        self.best_path: Path | None = self._given_path
        self.history: list[dict[str, Any]] = []
        self.best_step: int | None = None
        self.best_return: float | None = None
        self._scratch: str | None = None

    def _on_training_start(self) -> None:
        self.history, self.best_step, self.best_return = [], None, None
        if self._env is None:
            self._env = gym.make(self.model.env_id)
        if self._given_path is None:
            self._scratch = tempfile.mkdtemp(prefix="ctflow-keep-best-")
            self.best_path = Path(self._scratch) / "best"

    def _on_step(self) -> bool:
        if self.model.num_timesteps % self.every == 0:
            self._evaluate()
        return True

    def _evaluate(self) -> None:
        agent = self.model
        agent._refresh_acting_state()
        records = record_episodes(self._env, agent, self.episodes, seed=self.seed)
        returns = np.array([r.episode_return for r in records])
        row = {
            "step": int(agent.num_timesteps),
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "falls": int(sum(r.terminated for r in records)),
        }
        self.history.append(row)
        if self.best_return is None or row["mean_return"] > self.best_return:
            self.best_step, self.best_return = row["step"], row["mean_return"]
            agent.save(self.best_path)

    def _on_training_end(self) -> None:
        agent = self.model
        try:
            if not self.history or self.history[-1]["step"] != agent.num_timesteps:
                self._evaluate()  # the last step, when it is not a multiple of ``every``
            if self.restore and self.best_step != agent.num_timesteps:
                agent._restore(self.best_path)
                agent._refresh_acting_state()
        finally:
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch, self.best_path = None, None


__all__ = ["KeepBest"]
