"""What an agent's evaluations look like to a reader: one rounded line each.

:func:`evaluation_text` formats one result of :meth:`~agents.base.OfflineAgent.evaluate`
(``score 1.8 (return 38.2 +- 4.1 over 10 episodes)``); :class:`EvaluationPrinter` is
an SB3 callback that prints such a line, with its step, for every evaluation
``learn(eval_freq=...)`` runs. The command line and ``verbose=1`` both use them, so an
evaluation reads the same everywhere.

Rounding: returns and D4RL scores to one decimal, the precision D4RL tables report
and more than the spread between evaluation episodes allows one to read anyway; the
full values stay in ``eval_history``, the run logger and the JSON files.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm


def evaluation_text(result: dict[str, Any]) -> str:
    """``score S (return R +- D over N episodes)``, or without the score for envs D4RL has no reference for."""
    episodes = len(result["returns"]) if "returns" in result else result.get("episodes")
    over = "" if episodes is None else f" over {episodes} episode{'s' if episodes != 1 else ''}"
    returns = f"return {result['mean_return']:.1f} +- {result['std_return']:.1f}{over}"
    score = result.get("normalized_score")
    return returns if score is None else f"score {score:.1f} ({returns})"


class EvaluationPrinter(BaseCallback):
    """Prints ``step N: score S (return R +- D over E episodes)`` for each evaluation during ``learn``.

    Pass it as ``learn(..., callback=EvaluationPrinter())`` with ``eval_freq`` set. It
    reads the entries :meth:`~agents.base.OfflineAgent.learn` appends to
    ``eval_history``, so it prints exactly what was measured and logged. Lines go
    through ``tqdm.write`` so a progress bar on the terminal is not broken by them.

    Args:
        stream: where lines go (default: ``sys.stdout`` at the time of printing).
        prefix: put before every line (e.g. the agent's class name).
    """

    def __init__(self, stream: TextIO | None = None, prefix: str = ""):
        super().__init__(verbose=0)
        self.stream = stream
        self.prefix = prefix
        self._shown = 0

    def _on_training_start(self) -> None:
        self._shown = len(self.model.eval_history)  # a resumed run's earlier evaluations were printed then

    def _on_step(self) -> bool:
        history = self.model.eval_history
        for entry in history[self._shown :]:
            line = f"{self.prefix}step {entry['step']}: {evaluation_text(entry)}"
            tqdm.write(line, file=self.stream or sys.stdout)
        self._shown = len(history)
        return True
