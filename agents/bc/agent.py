"""BCAgent: behaviour cloning, the policy-extraction step of Flow to Better and the BC / %BC baselines.

One gradient step: on a minibatch of (normalised s, a in [-1, 1]), the mean squared error
between the deterministic policy's tanh(MLP(s)) and a (:func:`agents.bc.losses.bc_loss`),
and one Adam step with weight decay. No critic, no target network, no noise.

Settings (:class:`~agents.bc.config.BCConfig`): FTB's (ICLR 2024; its appendix and official
code) by default. ``top_fraction`` turns it into filtered BC, the "%BC" baseline of Chen et
al. 2021 (Decision Transformer): the best episodes are kept where the dataset is attached
(:meth:`BCAgent._training_transitions`, :func:`agents.bc.filtering.top_episodes`), so a
loaded agent given ``dataset=`` trains on the same episodes again.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.base import OfflineAgent
from agents.bc.config import BCConfig
from agents.bc.filtering import top_episodes
from agents.bc.losses import bc_loss
from agents.bc.networks import DeterministicPolicy
from agents.compilation import CompiledOrEager
from agents.registry import register_agent
from ctflow_gym.data.transitions import Transitions

ERROR_CHUNK = 65_536
"""Transitions per forward pass of :meth:`BCAgent.action_error` (bounds its memory on large datasets)."""


@register_agent("bc")
class BCAgent(OfflineAgent):
    """Behaviour cloning with stable-baselines3's API; Flow to Better's BC and the (filtered) BC baselines.

    ``BCAgent(env, dataset, top_fraction=0.1, ...)``: ``env`` an env or id, ``dataset`` a
    Minari dataset, id or path; keyword arguments override :class:`~agents.bc.config.BCConfig`
    fields. The defaults follow FTB's BC settings (the paper's appendix and its official code:
    a deterministic 2 x 256 ReLU MLP, MSE to the dataset's actions, Adam with learning rate
    1e-4 and weight decay 2e-4, batches of 1024, 100,000 steps as
    :data:`~agents.bc.config.FTB_TRAINING_STEPS`); ``top_fraction`` trains on the best
    episodes only, the filtered BC ("%BC") baseline of Chen et al. 2021 (the Decision
    Transformer paper). Then ``learn``, ``predict``, ``evaluate``, ``save`` and
    ``BCAgent.load`` as in :class:`agents.base.OfflineAgent`.

    The policy is deterministic: ``predict`` returns pi(s) whatever ``deterministic`` says
    (``deterministic=False`` adds no noise).
    """

    config_class = BCConfig

    def _build(self) -> None:
        cfg = self.config
        self.policy = DeterministicPolicy(self.obs_dim, self.act_dim, cfg.hidden, cfg.layers).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self._use_compile(None)

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"policy": self.policy}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"policy": self.optimizer}

    def _training_transitions(self, transitions: Transitions) -> Transitions:
        """All of ``transitions``; with ``top_fraction``, the best episodes' only.

        :func:`~agents.bc.filtering.top_episodes` picks them; the statistics that normalise
        observations stay the whole dataset's (the base class computes them before this).
        """
        if self.config.top_fraction is None:
            return transitions
        return top_episodes(transitions, self.config.top_fraction)

    def _use_compile(self, backend: str | None) -> None:
        self._loss = CompiledOrEager(self._policy_loss, backend)

    def _policy_loss(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return bc_loss(self.policy, observations, actions)

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss = self._checked("bc_loss", self._loss(batch["observations"], batch["actions"]))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"bc_loss": loss.detach()}

    def _act(self, observations: torch.Tensor, deterministic: bool, **options: Any) -> torch.Tensor:
        if options:
            raise TypeError(f"BCAgent.predict takes no acting options; got {sorted(options)}")
        return self.policy(observations)

    def action_error(self) -> float:
        """Mean squared error, in [-1, 1] action units, of the policy's actions on every training transition.

        The quantity ``bc_loss`` estimates on minibatches; needs the dataset (``load(..., dataset=...)``).
        """
        if self.transitions is None:
            raise ValueError("action_error compares with the dataset's actions; load the agent with dataset=...")
        observations, actions = self._data["observations"], self._data["actions"]
        total = 0.0
        with torch.inference_mode():
            for start in range(0, len(actions), ERROR_CHUNK):
                rows = slice(start, start + ERROR_CHUNK)
                total += float(bc_loss(self.policy, observations[rows], actions[rows])) * len(actions[rows])
        return total / len(actions)
