"""FQLAgent: Flow Q-Learning (Park, Li and Levine, ICML 2025), on the shared offline life cycle.

One gradient step (the official ``agents/fql.py``, ``update``), on a minibatch of
normalised transitions with actions in [-1, 1]:

1. TD target r + gamma (1 - d) agg_j Q'_j(s', clip(mu(s', z'))) from the target critic
   and the one-step policy, without gradient (:func:`agents.fql.losses.td_target`).
2. Critic loss: every head's squared error to it (:func:`~agents.fql.losses.critic_loss`).
3. Actor loss = L_Flow(theta) + alpha ||mu(s, z) - ODE(v, z)||^2 - Q(s, clip(mu(s, z)))
   (:func:`~agents.fql.losses.flow_matching_loss`, :func:`~agents.fql.losses.distillation_loss`,
   :func:`~agents.fql.losses.q_loss`), the last term optionally normalised by mean |Q|.
4. One Adam step on critic + actor loss over every network (the code's single ``optax.adam``
   over the whole parameter tree: the same update as separate optimisers, since each loss
   reaches only its own networks, see :mod:`agents.fql.losses`), and the target critic's EMA
   toward the critic as it was before that step (the code's ``target_update`` reads the
   pre-update parameters).

Acting: a = clip(mu(s, z)), one network evaluation. ``deterministic=True`` (``predict``'s
default, and SB3's ``evaluate_policy``'s) takes z = 0, the noise's mode, so that a
deterministic call is reproducible; ``deterministic=False`` draws z ~ N(0, I), as the official
evaluation always does (its ``sample_actions`` ignores the temperature it is given). z = 0 need
not map to a likely action where the behaviour is multimodal, so for scores comparable with the
papers evaluate with ``deterministic=False`` (the benchmarks report both).

Where this follows the paper rather than the code, or neither: observations are
normalised with the dataset's statistics (the code feeds raw observations; every agent
here normalises); the Q heads are two separate MLPs rather than a vmapped ensemble
(the same function).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from agents.base import OfflineAgent
from agents.compilation import CompiledOrEager
from agents.fql.config import FQLConfig
from agents.fql.losses import aggregate_heads, critic_loss, distillation_loss, flow_matching_loss, q_loss, td_target
from agents.fql.networks import ActorVectorField, QEnsemble, euler_flow_actions
from agents.registry import register_agent
from ctflow_gym.data.transitions import Transitions


def require_rewards(transitions: Transitions) -> None:
    """Raise ``ValueError`` naming ``dataset`` when its rewards are all equal: a critic learns nothing from them."""
    rewards = np.asarray(transitions.rewards)
    if len(rewards) and np.all(rewards == rewards[0]):
        raise ValueError(
            f"dataset: every reward is {float(rewards[0])!r}; this agent learns a critic from rewards, so it needs a "
            "dataset with rewards (for reward-free data use the 'bc' agent)"
        )


@register_agent("fql")
class FQLAgent(OfflineAgent):
    """Flow Q-Learning with stable-baselines3's API: a behaviour flow, a one-step policy distilled from it, a critic.

    ``FQLAgent(env, dataset, alpha=10.0, ...)``: ``env`` an env or id, ``dataset`` a Minari
    dataset, id or path; keyword arguments override :class:`~agents.fql.config.FQLConfig`
    fields (defaults: the official code's). Then ``learn``, ``predict``, ``evaluate``,
    ``save``, ``FQLAgent.load`` and ``learn_online`` as in :class:`agents.base.OfflineAgent`.
    The step, the losses and acting are described in :mod:`agents.fql.agent`.
    """

    config_class = FQLConfig

    def _build(self) -> None:
        cfg = self.config
        self.flow = self._actor_field(time_input=True)
        self._build_policy()
        self.critic = QEnsemble(
            self.obs_dim, self.act_dim, cfg.critic_hidden, cfg.critic_layers, cfg.critic_layer_norm
        ).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        trained = [module for name, module in self._modules().items() if name != "critic_target"]
        self.optimizer = torch.optim.Adam([p for module in trained for p in module.parameters()], lr=cfg.lr)
        self._use_compile(None)

    def _actor_field(self, time_input: bool) -> ActorVectorField:
        """An actor network of the configured size on the agent's device: the flow (timed) or a policy-side field."""
        cfg = self.config
        field = ActorVectorField(
            self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.actor_layers, cfg.actor_layer_norm, time_input
        )
        return field.to(self.device)

    def _build_policy(self) -> None:
        """The policy network(s) beside the flow: FQL's one-step policy mu_omega(s, z)."""
        self.policy = self._actor_field(time_input=False)

    def _policy_modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy}

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"flow": self.flow, **self._policy_modules(), "critic": self.critic, "critic_target": self.critic_target}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"networks": self.optimizer}

    def _training_transitions(self, transitions: Transitions) -> Transitions:
        require_rewards(transitions)
        return transitions

    # ------------------------------------------------------------- the policy
    def flow_actions(self, observations: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The behaviour flow's actions ODE(v, z) by ``flow_steps`` Euler steps, clipped; no gradient."""
        return euler_flow_actions(self.flow, observations, noise, self.config.flow_steps)

    def policy_actions(self, observations: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The learned policy's actions clip(mu(s, z)) in [-1, 1] for normalised ``observations`` and noise z."""
        return self.policy(observations, noise).clamp(-1.0, 1.0)

    def _act(self, observations: torch.Tensor, deterministic: bool, **options: Any) -> torch.Tensor:
        if options:
            raise TypeError(f"{type(self).__name__}.predict takes no acting options; got {sorted(options)}")
        shape = (observations.shape[0], self.act_dim)
        if deterministic:
            noise = torch.zeros(shape, device=self.device, dtype=observations.dtype)
        else:
            noise = torch.randn(shape, device=self.device, generator=self.generator)
        return self.policy_actions(observations, noise)

    # --------------------------------------------------------------- training
    def _use_compile(self, backend: str | None) -> None:
        self._losses = CompiledOrEager(self._compute_losses, backend)

    def _actor_loss(
        self, observations: torch.Tensor, actions: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, z: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """FQL's actor loss: L_Flow + alpha * distillation - Q (see :mod:`agents.fql.losses`), and its parts."""
        cfg = self.config
        flow_loss = flow_matching_loss(self.flow, observations, actions, x0, t)
        policy_actions = self.policy(observations, z)
        distill = distillation_loss(policy_actions, self.flow_actions(observations, z))
        value = q_loss(self.critic, observations, policy_actions, cfg.normalize_q_loss)
        loss = flow_loss + cfg.alpha * distill + value
        return loss, {"flow_loss": flow_loss, "distill_loss": distill, "q_loss": value}

    def _compute_losses(self, batch: dict[str, torch.Tensor], noise: dict[str, torch.Tensor]):
        cfg = self.config
        obs, actions = batch["observations"], batch["actions"]
        with torch.no_grad():
            next_actions = self.policy_actions(batch["next_observations"], noise["next"])
            next_q = aggregate_heads(self.critic_target(batch["next_observations"], next_actions), cfg.q_agg)
            target = td_target(batch["rewards"], batch["terminations"], next_q, cfg.gamma)
        q_values = self.critic(obs, actions)
        loss_critic = critic_loss(q_values, target)
        loss_actor, parts = self._actor_loss(obs, actions, noise["x0"], noise["t"], noise["z"])
        return loss_critic, loss_actor, parts, q_values.detach().mean()

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rows = batch["actions"].shape[0]
        shape = (rows, self.act_dim)
        draw = lambda *size: torch.randn(size, device=self.device, generator=self.generator)  # noqa: E731
        noise = {
            "x0": draw(*shape),
            "t": torch.rand(rows, 1, device=self.device, generator=self.generator),
            "z": draw(*shape),
            "next": draw(*shape),
        }
        loss_critic, loss_actor, parts, q_mean = self._losses(batch, noise)
        loss_critic = self._checked("critic_loss", loss_critic)
        loss_actor = self._checked("actor_loss", loss_actor)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_critic + loss_actor).backward()
        # The official code moves the target toward the critic as it was before this update.
        self._ema_update(self.critic_target, self.critic, self.config.tau)
        self.optimizer.step()
        metrics = {name: value.detach() for name, value in parts.items()}
        metrics.update(critic_loss=loss_critic.detach(), actor_loss=loss_actor.detach(), q_mean=q_mean)
        return metrics


__all__ = ["FQLAgent", "require_rewards"]
