"""DeFlowAgent: a behaviour flow plus a residual refinement kept in a data-derived trust region.

DeFlow (Mu, arXiv 2601.10471) is built on FQL (:mod:`agents.fql`) and shares its critic,
flow, optimiser and step; what differs is the policy and the actor's loss:

- policy: a = clip(sg[mu_psi(s, z)] + f_phi(s, sg[mu_psi(s, z)])), mu_psi the flow's
  ``flow_steps`` Euler steps from z (clipped), f_phi an MLP without time input;
- actor loss = L_Flow(psi) + L_Refine(phi) + L(lambda)
  (:func:`agents.fql.losses.flow_matching_loss`, :func:`agents.deflow.losses.refinement_loss`,
  :func:`agents.deflow.losses.multiplier_loss`), the code's ``use_lagrange=True`` sum;
- the TD target's next action comes from this refined policy (the code's ``sample_actions``);
- the trust region delta: ``target_divergence``, or ``iav_scale`` x the dataset's IAV
  (:func:`agents.deflow.action_variance.intrinsic_action_variance`), derived when the
  dataset is attached and saved with the agent (``trust_region``).

Acting: one flow sample (``flow_steps`` network evaluations) and one refinement.
``deterministic=True`` starts the flow from z = 0; ``deterministic=False`` from z ~ N(0, I).
"""

from __future__ import annotations

from typing import Any

import torch

from agents.deflow.action_variance import intrinsic_action_variance
from agents.deflow.config import DeFlowConfig
from agents.deflow.losses import multiplier_loss, refinement_loss, residual_square_mean
from agents.deflow.networks import LagrangeMultiplier
from agents.fql.agent import FQLAgent
from agents.fql.losses import flow_matching_loss
from agents.registry import register_agent


@register_agent("deflow")
class DeFlowAgent(FQLAgent):
    """DeFlow with stable-baselines3's API: FQL's flow and critic, a residual refinement in a trust region.

    ``DeFlowAgent(env, dataset, target_divergence=None, ...)``: ``env`` an env or id,
    ``dataset`` a Minari dataset, id or path; keyword arguments override
    :class:`~agents.deflow.config.DeFlowConfig` fields. Then ``learn``, ``predict``,
    ``evaluate``, ``save``, ``DeFlowAgent.load`` and ``learn_online`` as in
    :class:`agents.base.OfflineAgent`. ``trust_region`` is delta, the bound on the mean
    squared residual; ``multiplier`` holds lambda.
    """

    config_class = DeFlowConfig

    def _build_policy(self) -> None:
        cfg = self.config
        self.refiner = self._actor_field(time_input=False)
        self.multiplier = LagrangeMultiplier(cfg.initial_log_multiplier).to(self.device)
        self.trust_region: float | None = cfg.target_divergence
        if self.trust_region is None and self.transitions is not None:
            self.trust_region = cfg.iav_scale * self.intrinsic_action_variance()

    def _policy_modules(self) -> dict[str, torch.nn.Module]:
        return {"refiner": self.refiner, "multiplier": self.multiplier}

    def intrinsic_action_variance(self) -> float:
        """The attached dataset's IAV in the agent's units (normalised states, actions in [-1, 1]); see the config."""
        if self.transitions is None:
            raise ValueError("intrinsic_action_variance needs the dataset; load the agent with dataset=...")
        cfg = self.config
        observations = self._data["observations"].cpu().numpy()
        actions = self._data["actions"].cpu().numpy()
        return intrinsic_action_variance(observations, actions, cfg.iav_neighbours, cfg.iav_states, self.seed)

    def _acting_state(self) -> dict[str, Any]:
        return {"trust_region": self.trust_region}

    def _set_acting_state(self, state: dict[str, Any]) -> None:
        if state.get("trust_region") is not None:
            self.trust_region = float(state["trust_region"])

    # ------------------------------------------------------------- the policy
    def policy_actions(self, observations: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """clip(a_flow + f_phi(s, a_flow)) with a_flow = ODE(v, z) clipped: DeFlow's action for noise z."""
        base = self.flow_actions(observations, noise)
        return (base + self.refiner(observations, base)).clamp(-1.0, 1.0)

    def _actor_loss(
        self, observations: torch.Tensor, actions: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """L_Flow + L_Refine + L(lambda) (see :mod:`agents.deflow.losses`), and their parts."""
        if self.trust_region is None:
            raise ValueError("this DeFlowAgent has no trust region: give target_divergence or attach the dataset")
        cfg = self.config
        flow_loss = flow_matching_loss(self.flow, observations, actions, x0, t)
        base = self.flow_actions(observations, z)
        residual = self.refiner(observations, base)
        multiplier = self.multiplier()
        refine, q_term = refinement_loss(self.critic, observations, base, residual, multiplier, cfg.normalize_q_loss)
        square = residual_square_mean(residual)
        loss_multiplier = multiplier_loss(self.multiplier.log_value, square, self.trust_region)
        loss = flow_loss + refine + loss_multiplier
        parts = {
            "flow_loss": flow_loss,
            "q_loss": q_term,
            "residual_square": square,
            "multiplier": multiplier.sum(),
            "multiplier_loss": loss_multiplier,
        }
        return loss, parts


__all__ = ["DeFlowAgent"]
