"""Behaviour cloning's hyper-parameters, with Flow to Better's policy-extraction settings as defaults.

FTB (Zhang et al., "Flow to Better: Offline Preference-based Reinforcement Learning via
Preferred Trajectory Generation", ICLR 2024) extracts its policy from the generated
trajectories by plain behaviour cloning: a deterministic MLP with two hidden layers of 256
ReLU units, mean squared error to the data's actions, Adam with learning rate 1e-4 and
weight decay 2e-4, batches of 1024, 100,000 gradient steps (the paper's appendix; the
official code, ``Zzl35/flow-to-better``, ``models/actor.py`` and ``train.py``, has the same
network, loss, optimiser and steps, with batches of 256 by default). The same agent on the
raw data is the "BC" baseline, and with ``top_fraction`` the "%BC" (filtered BC) baseline
of Chen et al. 2021 (the Decision Transformer paper).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctflow_gym.data.validation import require_int

FTB_TRAINING_STEPS = 100_000
"""Gradient steps FTB trains its policy for (100 iterations of 1,000): the ``total_timesteps`` to pass to ``learn``."""


def require_top_fraction(value) -> None:
    """Raise ``ValueError`` naming ``top_fraction`` unless ``value`` is None or a number in (0, 1]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"top_fraction must be a number in (0, 1] (e.g. 0.1 for 10%BC) or None; got {value!r}")


@dataclass
class BCConfig:
    """Hyper-parameters of :class:`agents.BCAgent` (defaults: FTB's, see the module docstring).

    Attributes:
        hidden: width of each hidden layer of the policy MLP (FTB: 256).
        layers: hidden layers, each followed by a ReLU (FTB: 2).
        lr: Adam learning rate (FTB: 1e-4).
        weight_decay: Adam's weight decay, an L2 penalty added to the gradient as
            ``torch.optim.Adam`` (not AdamW) applies it, as FTB's code does (FTB: 2e-4).
        batch_size: transitions per gradient step (FTB's appendix: 1024; its official
            ``train.py`` defaults to 256).
        top_fraction: filtered BC ("%BC", Chen et al. 2021): train only on the episodes
            with the highest returns, taken best first while together they hold at most
            this fraction of the dataset's transitions, and at least the best episode
            (the rule of the Decision Transformer code's ``pct_traj``); e.g. 0.1 for 10%BC.
            None (default): every transition, plain BC. Observations are normalised with
            the whole dataset's statistics either way, as there.
    """

    hidden: int = 256
    layers: int = 2
    lr: float = 1e-4
    weight_decay: float = 2e-4
    batch_size: int = 1024
    top_fraction: float | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        for name in ("hidden", "layers", "batch_size"):
            require_int(getattr(self, name), name)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        require_top_fraction(self.top_fraction)
