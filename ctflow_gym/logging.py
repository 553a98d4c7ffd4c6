"""One metrics logger for the refiner, the wrapper and the agents: stdout and W&B.

``RunLogger(wandb_mode="disabled" | "offline" | "online")``:

- ``"online"`` streams to Weights & Biases; it needs credentials (``wandb login`` or
  ``WANDB_API_KEY``), checked up front with a message saying how to log in.
- ``"offline"`` writes the run under ``<wandb_dir>/wandb/offline-run-*`` with no
  network; upload it later with ``wandb sync <that folder>``.
- ``"disabled"`` keeps metrics on stdout only.

The run's config (the command's arguments, an algorithm's dataclass) is recorded at
start and can be extended with :meth:`RunLogger.update_config`. Metrics go to W&B at
every ``log`` call and to stdout every ``print_every`` calls per metric prefix
(``"refiner/"``, ``"train/"``, ...), so progress bars are not drowned in lines.
"""

from __future__ import annotations

import contextlib
import netrc
import os
import sys
from pathlib import Path
from typing import Any, Iterator

WANDB_MODES = ("disabled", "offline", "online")
WANDB_HOST = "api.wandb.ai"


def wandb_credentials_available() -> bool:
    """Whether W&B online mode can authenticate: ``WANDB_API_KEY`` or a netrc entry."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc_file = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc_file.is_file() and netrc.netrc(str(netrc_file)).authenticators(WANDB_HOST) is not None
    except (netrc.NetrcParseError, OSError):
        return False


WEAVE_SWITCH = "WANDB_DISABLE_WEAVE"
"""The environment variable W&B reads, at ``wandb.init``, to leave its Weave integration off."""


@contextlib.contextmanager
def _no_weave_tip() -> Iterator[None]:
    """Keep ``wandb.init`` from printing its Weave tip about this project's ``agents`` package.

    At ``wandb.init``, when the ``weave`` module is not imported, W&B looks for modules
    named like LLM libraries in ``sys.modules`` and prints three lines: "Detected
    [agents] in use. Use W&B Weave for improved LLM call tracing..." (its list holds
    ``"agents"``, the OpenAI Agents SDK's module, so this project's ``agents`` matches).
    ``Settings(silent=True)`` does not quiet it; only ``WANDB_DISABLE_WEAVE`` does, and
    it is read nowhere else. So it is set for the duration of the call only, and only
    when ``weave`` is not imported (then the tip is all it would change; a user who
    imported weave still gets it initialised) and the user has not set it.
    """
    if "weave" in sys.modules or WEAVE_SWITCH in os.environ:
        yield
        return
    os.environ[WEAVE_SWITCH] = "true"
    try:
        yield
    finally:
        os.environ.pop(WEAVE_SWITCH, None)


class RunLogger:
    """Logs scalar metrics (and images) to stdout and, unless disabled, to W&B.

    Args:
        wandb_mode: ``"disabled"``, ``"offline"`` or ``"online"`` (see module docstring).
        project: W&B project name.
        run_name: W&B run name (default: W&B's).
        config: the run's configuration, recorded at start.
        wandb_dir: folder under which W&B writes ``wandb/`` (default: the current one).
        print_every: print every n-th ``log`` call per metric prefix (0: never).
        stream: where printed lines go (default: stdout).
        group: W&B run group (e.g. the sweep a run belongs to).
    """

    def __init__(
        self,
        wandb_mode: str = "disabled",
        project: str = "ctflow_gym",
        run_name: str | None = None,
        config: dict[str, Any] | None = None,
        wandb_dir: str | os.PathLike | None = None,
        print_every: int = 0,
        stream=None,
        group: str | None = None,
    ):
        if wandb_mode not in WANDB_MODES:
            raise ValueError(f"wandb_mode must be one of {WANDB_MODES}; got {wandb_mode!r}")
        if wandb_mode == "online" and not wandb_credentials_available():
            raise ValueError(
                "wandb online mode needs W&B credentials: run `wandb login` (or set WANDB_API_KEY), "
                "or use offline mode and upload later with `wandb sync <run folder>`"
            )
        self.wandb_mode = wandb_mode
        self.print_every = print_every
        self.stream = stream if stream is not None else sys.stdout
        self._counts: dict[str, int] = {}
        self.run = None
        if wandb_mode != "disabled":
            import wandb

            if wandb_dir is not None:
                Path(wandb_dir).mkdir(parents=True, exist_ok=True)
            with _no_weave_tip():
                self.run = wandb.init(
                    project=project,
                    name=run_name,
                    group=group,
                    config=config or {},
                    mode=wandb_mode,
                    dir=None if wandb_dir is None else str(wandb_dir),
                    reinit="finish_previous",
                    settings=wandb.Settings(silent=True, console="off"),
                )

    @property
    def run_dir(self) -> Path | None:
        """The W&B run folder (what ``wandb sync`` takes for an offline run), if any."""
        return None if self.run is None else Path(self.run.dir).parent

    def update_config(self, values: dict[str, Any]) -> None:
        """Add ``values`` to the run's recorded config."""
        if self.run is not None:
            self.run.config.update(values, allow_val_change=True)

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record ``metrics`` (names like ``"refiner/ae_loss"``) at ``step``.

        W&B needs steps that never decrease within a run; the refiner, wrapper and
        agent each count their own steps, so W&B gets them as ``<prefix>/step``
        metrics and its own step is left to increase by itself.
        """
        prefix = next(iter(metrics), "").split("/")[0]
        if self.run is not None:
            record = dict(metrics)
            if step is not None:
                record[f"{prefix}/step"] = step
            self.run.log(record)
        if self.print_every:
            count = self._counts.get(prefix, 0)
            self._counts[prefix] = count + 1
            if count % self.print_every == 0:
                shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
                print(f"[{step}] {shown}", file=self.stream, flush=True)

    def log_image(self, key: str, path: str | os.PathLike, caption: str | None = None) -> None:
        """Log a PNG file as a W&B image (no-op without W&B)."""
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(str(path), caption=caption)})

    def finish(self) -> None:
        """Close the W&B run, if any."""
        if self.run is not None:
            self.run.finish()
            self.run = None

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc_info) -> None:
        self.finish()


NULL_LOGGER = RunLogger()
"""A logger that records nothing; the default of every ``fit``/``learn``."""
