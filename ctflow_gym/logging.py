"""One metrics logger for every long loop: stdout and Weights & Biases.

``RunLogger(wandb_mode="disabled" | "offline" | "online")``. Offline runs are written
under ``wandb_dir`` and can be uploaded later with ``wandb sync <run folder>``.
Metrics go to W&B at every ``log`` call and to stdout every ``print_every`` calls per
prefix, so a progress bar is not drowned in lines.
"""

from __future__ import annotations

import sys
from typing import Any

WANDB_MODES = ("disabled", "offline", "online")


class RunLogger:
    """Logs scalar metrics (and images) to stdout and, unless disabled, to W&B."""

    def __init__(
        self,
        wandb_mode: str = "disabled",
        project: str = "ctflow_gym",
        run_name: str | None = None,
        config: dict[str, Any] | None = None,
        wandb_dir: str | None = None,
        print_every: int = 0,
        stream=None,
    ):
        if wandb_mode not in WANDB_MODES:
            raise ValueError(f"wandb_mode must be one of {WANDB_MODES}; got {wandb_mode!r}")
        self.print_every = print_every
        self.stream = stream if stream is not None else sys.stdout
        self._counts: dict[str, int] = {}
        self.run = None
        if wandb_mode != "disabled":
            import wandb

            self.run = wandb.init(project=project, name=run_name, config=config or {}, mode=wandb_mode, dir=wandb_dir, reinit="finish_previous")

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record ``metrics`` (names like ``"refiner/ae_loss"``) at ``step``."""
        if self.run is not None:
            self.run.log(dict(metrics), step=step)
        if self.print_every:
            prefix = next(iter(metrics), "").split("/")[0]
            count = self._counts.get(prefix, 0)
            self._counts[prefix] = count + 1
            if count % self.print_every == 0:
                shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
                print(f"[{step}] {shown}", file=self.stream, flush=True)

    def log_image(self, key: str, path: str, step: int | None = None) -> None:
        """Log a PNG file as a W&B image (no-op without W&B)."""
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(path)}, step=step)

    def finish(self) -> None:
        """Close the W&B run, if any."""
        if self.run is not None:
            self.run.finish()
            self.run = None


NULL_LOGGER = RunLogger()
"""A logger that records nothing; the default of every ``fit``/``learn``."""
