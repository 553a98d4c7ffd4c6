"""Flow Q-Learning's hyper-parameters, with its official code's defaults.

FQL: Park, Li and Levine, "Flow Q-Learning", ICML 2025; code ``seohongpark/fql``,
``agents/fql.py`` (``get_config``). The defaults below are that config's: 4 x 512 GELU
MLPs for the behaviour flow, the one-step policy and both Q heads (LayerNorm in the
critic only), Adam 3e-4 over every network, batches of 256, discount 0.99, target EMA
0.005, the target's two heads averaged (``q_agg="mean"``), 10 Euler steps, alpha = 10.
The paper tunes alpha per task (its Table 7: 3 to 1000 on OGBench and D4RL); the
code's default is kept and is the knob to turn first.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctflow_gym.data.validation import require_int

Q_AGGREGATIONS = ("mean", "min")


@dataclass
class FlowCriticConfig:
    """The settings FQL and DeFlow share: a behaviour flow, actor networks and a double-Q critic.

    Attributes:
        flow_steps: Euler steps of the behaviour flow's ODE, from noise at t = 0 to an
            action at t = 1 (FQL: 10).
        normalize_q_loss: divide the actor's -Q term by the batch's mean |Q| (without
            gradient), so that the other terms mean the same whatever the reward scale
            (FQL's code: off by default).
        q_agg: how the TD target combines the target critic's two heads, ``"mean"`` (FQL's
            default) or ``"min"`` (clipped double Q). The actor's Q term always averages them.
        lr: Adam learning rate of every network (FQL: 3e-4).
        batch_size: transitions per gradient step (FQL: 256).
        actor_hidden, actor_layers: width and hidden layers of the flow and of the policy
            network (FQL: 512 x 4).
        actor_layer_norm: LayerNorm after each hidden activation of the actor networks (FQL: off).
        critic_hidden, critic_layers: width and hidden layers of each Q head (FQL: 512 x 4).
        critic_layer_norm: LayerNorm after each hidden activation of the Q heads (FQL: on).
        gamma: discount factor (FQL: 0.99).
        tau: rate of the target critic's exponential moving average (FQL: 0.005).
    """

    flow_steps: int = 10
    normalize_q_loss: bool = False
    q_agg: str = "mean"
    lr: float = 3e-4
    batch_size: int = 256
    actor_hidden: int = 512
    actor_layers: int = 4
    actor_layer_norm: bool = False
    critic_hidden: int = 512
    critic_layers: int = 4
    critic_layer_norm: bool = True
    gamma: float = 0.99
    tau: float = 0.005

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        for name in ("flow_steps", "batch_size", "actor_hidden", "actor_layers", "critic_hidden", "critic_layers"):
            require_int(getattr(self, name), name)
        if self.q_agg not in Q_AGGREGATIONS:
            raise ValueError(f"q_agg must be one of {Q_AGGREGATIONS}; got {self.q_agg!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr!r}")
        if not 0 <= self.gamma < 1:
            raise ValueError(f"gamma must be in [0, 1); got {self.gamma!r}")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1]; got {self.tau!r}")


@dataclass
class FQLConfig(FlowCriticConfig):
    """Hyper-parameters of :class:`agents.FQLAgent` (defaults: the official code's, see the module docstring).

    The shared fields are :class:`FlowCriticConfig`'s; FQL adds:

    Attributes:
        alpha: weight of the distillation loss ||mu(s, z) - ODE(v, z)||^2 in the actor
            loss; must be > 0 (FQL: 10, tuned per task in the paper).
    """

    alpha: float = 10.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            raise ValueError(f"alpha must be > 0 (the weight of the distillation loss); got {self.alpha!r}")
        super().validate()
