"""The networks of Flow Q-Learning (and of DeFlow, built on it), as in FQL's ``utils/networks.py``.

- :class:`ActorVectorField`: an MLP over [s, x] or [s, x, t]. With a time input it is the
  behaviour flow's velocity field v_theta(s, x_t, t); without, FQL's one-step policy
  mu_omega(s, z) and DeFlow's refinement f_phi(s, a).
- :class:`QEnsemble`: independent Q heads (FQL: two) with LayerNorm, evaluated together.
- :func:`euler_flow_actions`: the flow's ODE from noise (t = 0) to an action (t = 1) by
  Euler steps, clipped to the action box, without gradient.

FQL's MLP is ``Dense -> GELU -> LayerNorm`` per hidden layer (LayerNorm after the
activation, where :class:`ctflow_gym.models.mlp.MLP` puts it before), Xavier-uniform
weights (flax's ``variance_scaling(1, "fan_avg", "uniform")``) and zero biases; :func:`fql_mlp`
builds the same, with flax's defaults where torch's differ: the tanh approximation of GELU
(``jax.nn.gelu``'s default) and LayerNorm's epsilon 1e-6.
"""

from __future__ import annotations

import torch
from torch import nn


def fql_mlp(in_dim: int, out_dim: int, hidden: int, layers: int, layer_norm: bool) -> nn.Sequential:
    """``layers`` hidden layers of ``hidden`` GELU units (each followed by LayerNorm if ``layer_norm``), then linear."""
    modules: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.GELU(approximate="tanh")]
        if layer_norm:
            modules.append(nn.LayerNorm(hidden, eps=1e-6))
        width = hidden
    modules.append(nn.Linear(width, out_dim))
    net = nn.Sequential(*modules)
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return net


class ActorVectorField(nn.Module):
    """An action-sized output from [s, x] (``time_input=False``) or [s, x, t] (``time_input=True``).

    Args:
        obs_dim, act_dim: sizes of (normalised) observations and of actions (in [-1, 1]).
        hidden, layers: width and hidden layers (FQL: 512 x 4).
        layer_norm: LayerNorm after each hidden activation (FQL's actors: off).
        time_input: whether ``forward`` takes a time t of shape (B, 1), appended raw as FQL does.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: int, layers: int, layer_norm: bool = False, time_input: bool = True
    ):
        super().__init__()
        self.time_input = time_input
        self.net = fql_mlp(obs_dim + act_dim + int(time_input), act_dim, hidden, layers, layer_norm)

    def forward(self, observations: torch.Tensor, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """The output (B, act_dim) for ``observations`` (B, obs_dim), ``x`` (B, act_dim) and, if timed, ``t`` (B, 1)."""
        if self.time_input != (t is not None):
            raise ValueError(f"this field {'takes' if self.time_input else 'takes no'} time input t")
        inputs = [observations, x] if t is None else [observations, x, t]
        return self.net(torch.cat(inputs, dim=-1))


class QEnsemble(nn.Module):
    """``members`` independent Q(s, a) heads; ``forward(obs, act)`` returns their values, shape (members, B).

    Args:
        obs_dim, act_dim: sizes of observations and actions.
        hidden, layers: width and hidden layers of each head (FQL: 512 x 4).
        layer_norm: LayerNorm after each hidden activation (FQL's critic: on).
        members: heads (FQL: 2).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int, layer_norm: bool = True, members: int = 2):
        super().__init__()
        self.heads = nn.ModuleList(fql_mlp(obs_dim + act_dim, 1, hidden, layers, layer_norm) for _ in range(members))

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Every head's Q(s, a), shape (members, B)."""
        inputs = torch.cat([observations, actions], dim=-1)
        return torch.stack([head(inputs).squeeze(-1) for head in self.heads])


@torch.no_grad()
def euler_flow_actions(
    flow: ActorVectorField, observations: torch.Tensor, noise: torch.Tensor, steps: int
) -> torch.Tensor:
    """FQL's ``compute_flow_actions``: x_0 = z, x_{i+1} = x_i + v(s, x_i, i/N) / N for N = ``steps``, then clipped.

    Returns actions in [-1, 1], shape of ``noise``; no gradient flows (the distillation
    target of FQL and DeFlow's base action are constants to what they train).
    """
    actions = noise
    t = torch.empty(observations.shape[0], 1, device=observations.device, dtype=observations.dtype)
    for i in range(steps):
        actions = actions + flow(observations, actions, t.fill_(i / steps)) / steps
    return actions.clamp(-1.0, 1.0)


__all__ = ["ActorVectorField", "QEnsemble", "euler_flow_actions", "fql_mlp"]
