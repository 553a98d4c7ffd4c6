"""Configuration of :class:`ctflow_gym.refine.TrajectoryRefiner`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ctflow_gym.refine.neighbours import require_index

REFINER_FEEDBACKS = ("return", "return_to_go", "advantage", "bootstrapped_advantage")
DECODE_MODES = ("residual", "direct")
TARGET_MODES = ("local", "nonlocal")


def configured(config, overrides: dict, owner: str):
    """``config`` with the keyword ``overrides`` set, validated; ``TypeError`` naming an unknown keyword.

    The constructors of :class:`~ctflow_gym.refine.TrajectoryRefiner` and
    :class:`~ctflow_gym.refine.DatasetValueFunction` take their config's fields as keywords.
    """
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise TypeError(f"{owner} got an unknown argument {name!r}; see {type(config).__name__}")
        setattr(config, name, value)
    config.validate()
    return config


@dataclass
class RefinerConfig:
    """Every knob of counterfactual transport flows, with the defaults we chose.

    Attributes:
        window: window length H. 16 steps of Hopper (0.128 s) is about one hop
            phase; the paper leaves H open.
        stride: step between window starts when cutting episodes (1: every start).
        latent_dim: size d of the trajectory latent.
        k: neighbourhood size of the pair search (paper default 3, Table 2).
        neighbour_index: how the pair search finds neighbours
            (:mod:`~ctflow_gym.refine.neighbours`): ``"auto"`` (exact up to 100k
            windows, an approximate FAISS ivf index above), ``"exact"``, ``"ivf"``, or
            a ``faiss.index_factory`` string.
        margin: improvement margin delta; ``None`` means 0.1 x the standard
            deviation of the training feedback (the paper gives no number, and a
            margin in feedback units must follow the data's scale).
        feedback: ``"return"`` (window return, the paper's), ``"return_to_go"``
            (discounted, to the episode end) or ``"advantage"``: window return minus
            a learned value of the window's start observation, which credits the
            window's decisions rather than the state it started in, or
            ``"bootstrapped_advantage"``: sum_t gamma^t r_t + gamma^H V(s_H) - V(s_1) with V
            a :class:`~ctflow_gym.refine.value_function.DatasetValueFunction` fitted on the
            training episodes, which also charges a window for the state it leaves
            behind (window return alone rewards buying speed with a posture that falls
            later). The default stays ``"return"``: on held-out windows it realises the
            most window return, positive for every fit seed measured; to attach a
            refiner after a policy prefer ``"bootstrapped_advantage"``, which hurt a
            medium policy far less on every fit measured, and fit several seeds and
            keep those that help the policy on validation episodes
            (:func:`ctflow_gym.wrappers.select_refiners`): most fits lowered the medium
            policy's return (the Results page of the documentation has the numbers).
        gamma: discount of ``"return_to_go"`` and ``"bootstrapped_advantage"``.
        decode: ``"residual"`` decodes refined = source + D(z_alpha) - D(z_src), so
            strength 0 returns the source exactly and the autoencoder's error does
            not touch every window (a closed-loop probe found direct decoding lowered
            real returns); ``"direct"`` is the paper's D(z_alpha).
        targets: ``"local"`` (the method) or ``"nonlocal"`` (the non-local flow
            matching baseline: targets drawn among all improving windows).
        ae_hidden, ae_layers, ae_steps: autoencoder MLP width, depth, Adam steps.
        flow_hidden, flow_layers, flow_steps: velocity MLP width, depth, Adam steps.
        predictor_steps: Adam steps of the held-out return predictor (proxy metric).
        value_steps: Adam steps per round of the dataset value function of
            ``feedback="bootstrapped_advantage"`` (5 rounds; see
            :class:`~ctflow_gym.refine.value_function.ValueFunctionConfig`).
        inverse_dynamics_steps: Adam steps of the inverse-dynamics model g(s_t, s_{t+1})
            that tracked execution uses (:mod:`~ctflow_gym.refine.inverse_dynamics`);
            0 fits none (then only open-loop execution is possible).
        batch_size, lr: minibatch size and Adam learning rate of all three.
        euler_steps: default Euler steps of refinement (appendix A.7: fixed-step).
        held_out_fraction: share of episodes kept out of pair and flow training to
            fit the return predictor; 0 disables the proxy gain.
        seed: seeds torch and numpy for reproducible fits on CPU.
        split_seed: draws the held-out episodes; None (default) uses ``seed``.
            :meth:`~ctflow_gym.refine.RefinerEnsemble.fit` gives every member the same
            one, so the members hold out the same episodes and the ensemble can be
            evaluated on windows none of them trained on.
        device: torch device.
    """

    window: int = 16
    stride: int = 1
    latent_dim: int = 16
    k: int = 3
    neighbour_index: str = "auto"
    margin: float | None = None
    feedback: str = "return"
    gamma: float = 0.99
    decode: str = "residual"
    targets: str = "local"
    ae_hidden: int = 512
    ae_layers: int = 2
    ae_steps: int = 4000
    flow_hidden: int = 256
    flow_layers: int = 3
    flow_steps: int = 4000
    predictor_steps: int = 2000
    value_steps: int = 2000
    inverse_dynamics_steps: int = 4000
    batch_size: int = 256
    lr: float = 3e-4
    euler_steps: int = 10
    held_out_fraction: float = 0.2
    seed: int = 0
    split_seed: int | None = None
    device: str = "cpu"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of range."""
        positive = (
            "window",
            "stride",
            "latent_dim",
            "k",
            "ae_hidden",
            "ae_layers",
            "ae_steps",
            "flow_hidden",
            "flow_layers",
            "flow_steps",
            "batch_size",
            "euler_steps",
            "value_steps",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not isinstance(self.inverse_dynamics_steps, int) or self.inverse_dynamics_steps < 0:
            raise ValueError(f"inverse_dynamics_steps must be an integer >= 0; got {self.inverse_dynamics_steps!r}")
        if self.margin is not None and self.margin < 0:
            raise ValueError(f"margin must be >= 0 or None; got {self.margin}")
        for name, allowed in (("feedback", REFINER_FEEDBACKS), ("decode", DECODE_MODES), ("targets", TARGET_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        require_index(self.neighbour_index, self.latent_dim)
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in [0, 1); got {self.held_out_fraction}")
        if self.split_seed is not None and (
            isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int) or self.split_seed < 0
        ):
            raise ValueError(f"split_seed must be None or an integer >= 0; got {self.split_seed!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "RefinerConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown refiner config keys {sorted(unknown)}")
        return cls(**values)
