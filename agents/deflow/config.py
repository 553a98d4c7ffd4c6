"""DeFlow's hyper-parameters: FQL's shared ones, plus the trust region and its Lagrange multiplier.

DeFlow: Mu, "DeFlow: Decoupling Manifold Modeling and Value Maximization for Offline
Policy Extraction", arXiv 2601.10471 (2026); code ``muzhancun/DeFlow``, ``agents/deflow.py``
(``get_config``), built on FQL's. Defaults: the code's (FQL's networks and optimiser;
the multiplier learned with ``use_lagrange=True`` from log lambda = 1), except two that follow the
paper and every command of the repository's README: ``normalize_q_loss=True`` (the
code's config says False, every published command passes True) and a trust region
derived from the data (the README: delta from the Intrinsic Action Variance, IAV,
the mean variance of actions among the k = 5 nearest neighbours of each state per
action dimension; delta = 1.0 x IAV for navigation and locomotion, 0.1 x IAV for fine
manipulation). The repository ships no IAV script; :mod:`agents.deflow.action_variance`
is ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.fql.config import FlowCriticConfig
from ctflow_gym.data.validation import require_int

IAV_STATES = 10_000
"""Query states the IAV is estimated on by default (a seeded sample; neighbours are searched among all states)."""


@dataclass
class DeFlowConfig(FlowCriticConfig):
    """Hyper-parameters of :class:`agents.DeFlowAgent` (defaults: see the module docstring).

    The shared fields are :class:`~agents.fql.config.FlowCriticConfig`'s (FQL's networks,
    optimiser, discount and target EMA); DeFlow adds:

    Attributes:
        normalize_q_loss: divide the refinement's -Q term by the batch's mean |Q| without
            gradient (DeFlow's Q-normalisation: on).
        target_divergence: the trust region delta on the mean squared residual
            mean(delta_a^2) (per action dimension, actions in [-1, 1]); None (default):
            derived from the data as ``iav_scale`` x IAV when the dataset is attached.
        iav_neighbours: k of the IAV's nearest-neighbour states (DeFlow's README: 5).
        iav_scale: delta = iav_scale x IAV (README: 1.0 for navigation and locomotion,
            0.1 for fine manipulation).
        iav_states: query states the IAV is estimated on (a seeded sample when the dataset
            has more; None: every state).
        initial_log_multiplier: log lambda at the start (the code's ``Scalar(init_value=1.0)``:
            lambda = e).
    """

    normalize_q_loss: bool = True
    target_divergence: float | None = None
    iav_neighbours: int = 5
    iav_scale: float = 1.0
    iav_states: int | None = IAV_STATES
    initial_log_multiplier: float = 1.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        super().validate()
        if self.target_divergence is not None and not self.target_divergence > 0:
            raise ValueError(
                f"target_divergence (the trust region delta) must be > 0, or None to derive it from the data; "
                f"got {self.target_divergence!r}"
            )
        require_int(self.iav_neighbours, "iav_neighbours")
        if self.iav_neighbours < 2:
            raise ValueError(f"iav_neighbours must be >= 2 (a variance needs two actions); got {self.iav_neighbours}")
        if not self.iav_scale > 0:
            raise ValueError(f"iav_scale must be > 0; got {self.iav_scale!r}")
        if self.iav_states is not None:
            require_int(self.iav_states, "iav_states")
