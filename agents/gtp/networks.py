"""GTP's networks: the flow-map actor (a learned ODE flow map over actions) and its MLP reference.

Seed 003, section 3.3. Actions are noised as ``a_t = a + t z`` (z ~ N(0, I)) for noise
levels t in [0, T]. The network predicts phi(s, a_t, t, tau), an estimate of the clean
action, and the flow map from level t to level tau < t is (Eq. 4)

    Phi(s, a_t, t, tau) = (1 - tau/t) * phi(s, a_t, t, tau) + (tau/t) * a_t.

phi is preconditioned as in EDM/CTM (the paper leaves this open; CTM, which GTP builds
on, uses it): phi = c_skip(t) a_t + c_out(t) F(s, c_in(t) a_t, c(t), c(tau)) with
sigma_data = 0.5, so that the raw network F sees unit-scale inputs at every noise level
and phi -> a_t as t -> 0. Times enter through c(x) = log(x + 1e-4) / 4 and sinusoidal
features (tau = 0 is a valid, distinct input: the last sampling step maps to it).
"""

from __future__ import annotations

import torch
from torch import nn

from ctflow_gym.models.mlp import MLP, sinusoidal_time_features

TIME_FEATURES = 16


def time_code(t: torch.Tensor) -> torch.Tensor:
    """EDM's log noise level, finite at t = 0: ``log(t + 1e-4) / 4``."""
    return torch.log(t + 1e-4) / 4.0


class FlowMapActor(nn.Module):
    """phi_theta(s, a_t, t, tau) with EDM preconditioning, and the flow map Phi.

    Args:
        obs_dim, act_dim: sizes of (normalised) observations and of actions (in [-1, 1]).
        hidden, layers: width and depth of the MLP F.
        sigma_data: the data scale of the preconditioning (actions in [-1, 1]: 0.5).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 3, sigma_data: float = 0.5):
        super().__init__()
        self.obs_dim, self.act_dim, self.sigma_data = obs_dim, act_dim, sigma_data
        self.net = MLP(obs_dim + act_dim + 2 * TIME_FEATURES, act_dim, hidden, layers)
        self._sampling_cache: dict = {}

    def _preconditioning(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        sd2 = self.sigma_data**2
        norm = torch.sqrt(t**2 + sd2)
        return sd2 / (t**2 + sd2), t * self.sigma_data / norm, 1.0 / norm

    def _time_input(self, t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        features_t = sinusoidal_time_features(time_code(t), TIME_FEATURES)
        features_tau = sinusoidal_time_features(time_code(tau), TIME_FEATURES)
        return torch.cat([features_t, features_tau], dim=-1)

    def phi(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """The clean-action estimate phi(s, a_t, t, tau); ``t``, ``tau`` of shape (B, 1)."""
        c_skip, c_out, c_in = self._preconditioning(t)
        raw = self.net(torch.cat([obs, c_in * a_t, self._time_input(t, tau)], dim=-1))
        return c_skip * a_t + c_out * raw

    def forward(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """The flow map Phi(s, a_t, t, tau) of Eq. 4 (t > 0)."""
        return self.flow_map(self.phi(obs, a_t, t, tau), a_t, t, tau)

    @staticmethod
    def flow_map(phi: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        """Eq. 4 given phi(s, a_t, t, tau): Phi = (1 - tau/t) phi + (tau/t) a_t."""
        ratio = tau / t
        return (1.0 - ratio) * phi + ratio * a_t

    def sample(
        self, obs: torch.Tensor, times: tuple[float, ...] | list[float], noise: torch.Tensor | None
    ) -> torch.Tensor:
        """Actions by K map steps a_{t_{i+1}} = Phi(s, a_{t_i}, t_i, t_{i+1}) (Eq. 15).

        ``times`` from :func:`agents.gtp.schedule.sampling_times`; ``noise`` ~ N(0, I) of
        shape (B, act_dim), or ``None`` to start from a_T = 0 (the prior's mean: a
        deterministic policy).
        Returns unclipped actions; no gradients flow.

        This is the same function as chaining :meth:`forward`, arranged for latency:
        the observation's share of the first layer is computed once for all steps;
        each step's time features, c_in and the Phi/phi mixing constants are folded
        into cached matrices and biases (refreshed whenever the weights change), so
        one step costs about one plain MLP forward and K = 1 from a_T = 0 less.
        """
        if torch.is_grad_enabled():
            with torch.no_grad():
                return self.sample(obs, times, noise)
        plan = self._sampling_plan(times if isinstance(times, tuple) else tuple(times), obs.device, obs.dtype)
        pre_activations = torch.matmul(obs, plan["weight_obs_t"]).unsqueeze(0) + plan["step_biases"]
        hidden_layers, weight_last_t = plan["hidden_layers"], plan["weight_last_t"]
        a = None if noise is None else noise * times[0]
        for i, (weight_act_t, out_bias, scale_a, scale_raw) in enumerate(plan["steps"]):
            hidden = pre_activations[i] if a is None else torch.addmm(pre_activations[i], a, weight_act_t)
            for layer in hidden_layers:
                hidden = layer(hidden)
            # Phi = scale_a * a + scale_raw * F(...), F's last layer fused in.
            start = out_bias if a is None else torch.add(out_bias, a, alpha=scale_a)
            a = torch.addmm(start, hidden, weight_last_t, alpha=scale_raw)
        return a

    def _sampling_plan(self, times: tuple[float, ...], device, dtype) -> dict:
        first: nn.Linear = self.net[0]
        last: nn.Linear = self.net[-1]
        # One plan per (times, device, dtype): predict-time K can alternate freely.
        # Every update (optimiser, EMA, load_state_dict) rewrites weights and biases
        # together, so the weights' version counters tell when a plan is stale.
        key = (times, device, dtype)
        versions = (first.weight._version, last.weight._version, id(first.weight))
        # While a CUDA graph is captured, the plan is computed, not looked up, so that the
        # graph records it (replays write the weights without bumping version counters).
        capturing = device.type == "cuda" and torch.cuda.is_current_stream_capturing()
        cached = None if capturing else self._sampling_cache.get(key)
        if cached is not None and cached[0] == versions:
            return cached[1]
        obs_end, act_end = self.obs_dim, self.obs_dim + self.act_dim
        steps, biases = [], []
        for t, tau in zip(times[:-1], times[1:]):
            c_skip, c_out, c_in = (float(c) for c in self._preconditioning(torch.tensor(t, dtype=torch.float64)))
            ratio = tau / t
            scale_a, scale_raw = (1 - ratio) * c_skip + ratio, (1 - ratio) * c_out
            # torch.full, not torch.tensor: a fill on the device, no host copy (CUDA graph capture allows no copies)
            features = self._time_input(
                torch.full((1, 1), t, device=device, dtype=dtype), torch.full((1, 1), tau, device=device, dtype=dtype)
            )
            biases.append(first.bias + features[0] @ first.weight[:, act_end:].t())
            weight_act_t = (c_in * first.weight[:, obs_end:act_end]).t().contiguous()
            steps.append((weight_act_t, scale_raw * last.bias, scale_a, scale_raw))
        plan = {
            "weight_obs_t": first.weight[:, :obs_end].t(),
            "step_biases": torch.stack(biases).unsqueeze(1),
            "steps": steps,
            "hidden_layers": list(self.net)[1:-1],
            "weight_last_t": last.weight.t(),
        }
        if capturing:
            return plan
        if len(self._sampling_cache) > 16:
            self._sampling_cache.clear()
        self._sampling_cache[key] = (versions, plan)
        return plan


def plain_mlp_actor(obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 3) -> MLP:
    """A deterministic MLP actor of the same width and depth (latency reference)."""
    return MLP(obs_dim, act_dim, hidden, layers)


__all__ = ["TIME_FEATURES", "FlowMapActor", "plain_mlp_actor", "time_code"]
