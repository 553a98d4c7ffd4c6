"""GTPAgent: offline actor-critic with a generative trajectory policy (GTP paper, arXiv 2510.11499).

One gradient step is Algorithm 1 of the paper:

1. critic: clipped double-Q TD learning (Eq. 16) against EMA targets, the next
   action sampled from the EMA actor (or the max over several, ``max_q_backup``);
2. advantage weights w(s, a) of Eq. 14 from A = min_j Q_j(s, a) - V(s);
3. actor: L_consistency (Eq. 17, with the score approximation of Eq. 11: the teacher
   sees a + u z, no ODE solver) + lambda_flow * L_flow (Eq. 18), both weighted by w,
   on noise levels from the growing schedule of Eq. 76;
4. EMA updates of the actor teacher and the critic target.

With ``eta = 0`` the weights are 1 and no critic is trained: GTP-BC.

By default five independent double-Q critics are trained side by side
(``critic_ensemble``, a departure from the paper: see its entry in the config); wherever
min_j Q appears here, it is then the mean over critics of each one's min_j Q (each
critic's TD target is its own).

Acting (Eq. 15): a_T ~ N(0, T^2 I), then K flow-map jumps down to 0, with the EMA actor
(the averaged weights that also serve as the consistency teacher), for N =
``action_candidates`` draws of a_T per state; the action is the candidate with the
highest min_j Q_target_j(s, a) (:meth:`GTPAgent.select_actions`; with an ensemble, the mean
over critics less ``candidate_pessimism`` times their spread). N = 1 is Eq. 15 as
printed: one sample. The paper evaluates "following the setting of Ding & Jin (2024)",
whose code (Diffusion-QL's) samples 50 candidates and picks by Q; we take the argmax
(D-QL draws from softmax(Q), which scored lower here: Q ~ 200 makes the softmax's
temperature an accident of the reward scale). The measurements that made N = 50 the
default are on the Results page of the documentation. Without a critic (GTP-BC) N is ignored.

Where the K jumps stop: Karras' times (the paper's) for every K, except the K in
``config.fitted_sampling_steps`` (default K = 2), whose intermediate stops are fitted
offline to the trained map (:mod:`agents.gtp.calibration`, :meth:`GTPAgent.fit_sampling_times`),
refitted whenever the weights have changed, and saved with the agent
(:mod:`agents.gtp.sampling_times`).

``deterministic=True`` draws the start noise from a generator seeded with
:data:`DETERMINISTIC_NOISE_SEED` at every call, so the same observations give the same
actions (what save/load round trips and ``evaluate_policy(deterministic=True)`` need)
and each action is still a sample of the learned policy. (Before, it started from
a_T = 0, the prior's mean: not a sample, and its score was an accident of K; see the
GTP diagnostics analysis linked from the Results page of the documentation.) ``deterministic=False`` draws from
the agent's seeded generator.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from agents.base import OfflineAgent
from agents.compilation import CompiledOrEager
from agents.gtp.calibration import FittedTimes
from agents.gtp.config import GTPConfig, require_pessimism
from agents.gtp.losses import actor_losses, advantage_weights, critic_loss, td_target
from agents.gtp.networks import FlowMapActor
from agents.gtp.sampling_times import GTPSamplingTimes
from agents.gtp.schedule import (
    discretization_steps,
    explicit_sampling_times,
    sample_consistency_times,
    time_grid,
)
from agents.registry import register_agent
from ctflow_gym.data.validation import require_int
from ctflow_gym.models import DoubleQ, DoubleQEnsemble

DETERMINISTIC_NOISE_SEED = 0
"""Seed of the start noise ``predict(deterministic=True)`` draws anew at every call."""


@register_agent("gtp")
class GTPAgent(GTPSamplingTimes, OfflineAgent):
    """Generative Trajectory Policy agent with stable-baselines3's API.

    ``GTPAgent(env, dataset, eta=5.0, ...)``: ``env`` an env or id, ``dataset`` a Minari
    dataset, id or path; keyword arguments override :class:`GTPConfig` fields (every
    knob is documented there). Then ``learn``, ``predict``, ``evaluate``, ``save`` and
    ``GTPAgent.load`` as in :class:`agents.base.OfflineAgent`.

    ``predict(obs, deterministic=True, sampling_steps=K, action_candidates=N)`` picks K
    and N per call; the attributes ``sampling_steps`` and ``action_candidates`` set the
    defaults (what ``evaluate_policy`` uses).
    """

    config_class = GTPConfig
    predict_time_options = frozenset(
        {"sampling_steps", "action_candidates", "candidate_pessimism", "fitted_sampling_steps"}
    )

    def _build(self) -> None:
        cfg = self.config
        actor = FlowMapActor(self.obs_dim, self.act_dim, cfg.actor_hidden, cfg.actor_layers, cfg.sigma_data)
        self.actor = actor.to(self.device)
        self.actor_ema = copy.deepcopy(self.actor).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic = self.critic_target = self.critic_optimizer = None
        if cfg.eta > 0:
            if cfg.critic_ensemble == 1:
                critic = DoubleQ(self.obs_dim, self.act_dim, cfg.critic_hidden, cfg.critic_layers)
            else:
                critic = DoubleQEnsemble(
                    self.obs_dim, self.act_dim, cfg.critic_hidden, cfg.critic_layers, cfg.critic_ensemble
                )
            self.critic = critic.to(self.device)
            self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
            self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self._use_compile(None)
        self._grid_cache: tuple[int, torch.Tensor] | None = None
        self._times_cache: dict[tuple, tuple[float, ...]] = {}
        self._fitted: dict[int, FittedTimes] = {}
        self._fitted_at: int | None = None
        self._warned_unfitted: set[int] = set()

    def _modules(self) -> dict[str, torch.nn.Module]:
        modules = {"actor": self.actor, "actor_ema": self.actor_ema}
        if self.critic is not None:
            modules.update(critic=self.critic, critic_target=self.critic_target)
        return modules

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {"actor": self.actor_optimizer}
        if self.critic_optimizer is not None:
            optimizers["critic"] = self.critic_optimizer
        return optimizers

    # ------------------------------------------------------------------ acting
    @property
    def action_candidates(self) -> int:
        """N, the actions sampled per state at ``predict``, of which the one with the highest Q is taken."""
        return self.config.action_candidates

    @action_candidates.setter
    def action_candidates(self, candidates: int) -> None:
        require_int(candidates, "action_candidates")
        self.config.action_candidates = candidates

    def sample_actions(
        self,
        observations: torch.Tensor,
        steps: int | tuple[float, ...],
        deterministic: bool,
        actor: FlowMapActor | None = None,
    ) -> torch.Tensor:
        """K-step actions in [-1, 1] for normalised ``observations`` (Eq. 15), one per row.

        ``steps`` is K (times from :func:`~agents.gtp.schedule.sampling_times`) or the
        times themselves, as :func:`~agents.gtp.schedule.explicit_sampling_times` returns them.

        a_T is drawn from the agent's generator, or with ``deterministic`` from a
        generator seeded with :data:`DETERMINISTIC_NOISE_SEED`. ``actor`` defaults to the
        EMA actor.
        """
        noise = self._start_noise(observations.shape[0], deterministic)
        return (actor or self.actor_ema).sample(observations, self._times(steps), noise).clamp(-1.0, 1.0)

    def _start_noise(self, rows: int, deterministic: bool) -> torch.Tensor:
        """z ~ N(0, I) of shape (rows, act_dim): from the agent's generator, or the fixed-seed one.

        The fixed-seed noise is drawn on the CPU and moved, so that ``deterministic=True``
        acts the same on every device (CPU and CUDA generators are different algorithms).
        """
        if not deterministic:
            return torch.randn(rows, self.act_dim, device=self.device, generator=self.generator)
        generator = torch.Generator().manual_seed(DETERMINISTIC_NOISE_SEED)
        return torch.randn(rows, self.act_dim, generator=generator).to(self.device)

    def select_actions(
        self,
        observations: torch.Tensor,
        steps: int | tuple[float, ...],
        candidates: int,
        deterministic: bool,
        pessimism: float = 0.0,
    ) -> torch.Tensor:
        """The policy's actions: of ``candidates`` K-step samples per state, the one with the highest Q.

        Q is the target critic's ``min_q``: min_j Q_target_j(s, a), averaged over critics when
        ``critic_ensemble > 1`` (the critic the TD targets use). With ``pessimism`` beta > 0
        (an ensemble only) a candidate's Q is that mean less beta times the members' standard
        deviation (:meth:`candidate_values`). With one candidate, or without a critic (GTP-BC),
        this is :meth:`sample_actions`.
        """
        if candidates == 1 or self.critic_target is None:
            return self.sample_actions(observations, steps, deterministic)
        batch = observations.shape[0]
        states = observations.repeat_interleave(candidates, dim=0)
        actions = self.sample_actions(states, steps, deterministic)
        q = self.candidate_values(states, actions, pessimism).view(batch, candidates)
        return actions.view(batch, candidates, -1)[torch.arange(batch, device=self.device), q.argmax(dim=1)]

    def candidate_values(self, states: torch.Tensor, actions: torch.Tensor, pessimism: float = 0.0) -> torch.Tensor:
        """What candidates are ranked by, shape (B,): mean_m Q_m - ``pessimism`` * std_m Q_m.

        Q_m is member m's min(q1, q2) of the target critic; the std is over members (Bessel's
        correction). ``pessimism`` 0 is the critic's own ``min_q``.
        """
        require_pessimism(pessimism, self.config.critic_ensemble)
        if pessimism == 0:
            return self.critic_target.min_q(states, actions)
        members = self.critic_target.member_min_q(states, actions)
        return members.mean(0) - pessimism * members.std(0)

    def _act(
        self,
        observations: torch.Tensor,
        deterministic: bool,
        sampling_steps: int | None = None,
        action_candidates: int | None = None,
        sampling_times=None,
        candidate_pessimism: float | None = None,
    ) -> torch.Tensor:
        steps = self.sampling_steps if sampling_steps is None else sampling_steps
        if sampling_times is None:
            steps = self.sampling_plan(steps)
        else:
            times = explicit_sampling_times(sampling_times, self.config.max_time)
            if sampling_steps is not None and sampling_steps != len(times) - 1:
                raise ValueError(
                    f"sampling_steps ({sampling_steps!r}) and sampling_times ({len(times) - 1} steps) disagree; "
                    "give one of them"
                )
            steps = times
        candidates = self.action_candidates if action_candidates is None else action_candidates
        require_int(candidates, "action_candidates")
        pessimism = self.config.candidate_pessimism if candidate_pessimism is None else candidate_pessimism
        require_pessimism(pessimism, self.config.critic_ensemble)
        return self.select_actions(observations, steps, candidates, deterministic, pessimism)

    def predict(
        self,
        observation,
        state=None,
        episode_start=None,
        deterministic: bool = True,
        sampling_steps: int | None = None,
        action_candidates: int | None = None,
        sampling_times=None,
        candidate_pessimism: float | None = None,
    ) -> tuple[Any, Any]:
        """SB3's ``predict``; ``sampling_steps`` (K >= 1), ``action_candidates`` (N >= 1) and
        ``candidate_pessimism`` (beta >= 0) override :attr:`sampling_steps`,
        :attr:`action_candidates` and ``config.candidate_pessimism`` for this call.

        ``sampling_times`` (a sequence T = ``config.max_time`` > t_1 > ... > 0) replaces
        the K-step times of Eq. 15 (Karras spacing, :func:`~agents.gtp.schedule.sampling_times`)
        for this call, e.g. ``(80, 0.567, 0)`` for a K = 2 that stops lower in between
        (section 7 of the GTP diagnostics analysis, linked from the docs' Results page). It is
        an acting option only, not saved; with ``sampling_steps`` too the two must agree.
        Without it, K jumps through :meth:`sampling_plan` (K): the fitted stops for the K
        in ``config.fitted_sampling_steps``, Karras' times otherwise.
        """
        return super().predict(
            observation,
            state,
            episode_start,
            deterministic,
            sampling_steps=sampling_steps,
            action_candidates=action_candidates,
            sampling_times=sampling_times,
            candidate_pessimism=candidate_pessimism,
        )

    def flow_map_consistency(
        self, steps=(1, 2, 5), reference_steps: int = 12, n_states: int = 256, seed: int = 0
    ) -> dict[str, float]:
        """How much the K-step policy's action depends on K: a consistent flow map barely does.

        For ``n_states`` dataset states (drawn with ``seed``) and one draw a_T ~ N(0, T^2 I)
        each, the root-mean-square distance (in [-1, 1] action units) between the action
        after K map steps and after ``reference_steps``, for each K in ``steps``
        (``"stochastic K=k"``), and the same from a_T = 0 (``"deterministic K=k"``).
        """
        if self.transitions is None:
            raise ValueError("flow_map_consistency draws dataset states; this agent has no dataset")
        obs, noise = self._seeded_states(n_states, seed)
        result = {}
        for mode, start in (("stochastic", noise), ("deterministic", None)):
            sample = lambda k: self.actor_ema.sample(obs, self._times(k), start).clamp(-1.0, 1.0)  # noqa: E731
            reference = sample(reference_steps)
            for k in steps:
                result[f"{mode} K={k}"] = float(((sample(k) - reference) ** 2).sum(-1).mean().sqrt())
        return result

    # ---------------------------------------------------------------- training
    def _graph_key(self) -> int:
        """The number of noise levels of Eq. 76 now: a captured step is bound to the grid's length."""
        return int(self._grid().shape[0])

    def _weights_changed(self) -> None:
        """Drop the actors' sampling plans, which are keyed by the weights' version counters, and the fits."""
        self.actor._sampling_cache.clear()
        self.actor_ema._sampling_cache.clear()
        self._fitted_at = None

    def _grid(self) -> torch.Tensor:
        cfg = self.config
        total = max(self.target_timesteps, 1)
        points = discretization_steps(self.num_timesteps, total, cfg.schedule_min_steps, cfg.schedule_max_steps)
        if self._grid_cache is None or self._grid_cache[0] != points:
            self._grid_cache = (points, time_grid(points, cfg.min_time, cfg.max_time, device=self.device))
        return self._grid_cache[1]

    def _bootstrap_values(
        self, observations: torch.Tensor, next_observations: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """EMA-actor actions at s' (for the TD target) and at s (for V), in one batched call.

        Returns (actions at s' of shape (samples * B, act_dim), actions at s of shape
        (value_samples * B, act_dim)); ``samples`` is ``max_q_samples`` with the max-Q
        backup, else 1.
        """
        cfg = self.config
        samples = cfg.max_q_samples if cfg.max_q_backup else 1
        states = torch.cat([next_observations.repeat(samples, 1), observations.repeat(cfg.value_samples, 1)])
        actions = self.sample_actions(states, cfg.train_sampling_steps, deterministic=False)
        split = samples * next_observations.shape[0]
        return actions[:split], actions[split:]

    def _next_value(self, next_observations: torch.Tensor, next_actions: torch.Tensor) -> torch.Tensor:
        """The TD target's value of s': min_j Q_target_j(s', a') (Eq. 16).

        Under the max-Q backup (``samples`` sampled a' per s'), Diffusion-QL's: each
        head's max over the samples, then the min of the two heads (not the max of the
        min, which is lower). Shape (B,); with an ensemble of critics (members, B), each
        member's own target.
        """
        samples = next_actions.shape[0] // next_observations.shape[0]
        q1, q2 = self.critic_target(next_observations.repeat(samples, 1), next_actions)
        if samples > 1:
            q1, q2 = (q.view(*q.shape[:-1], samples, -1).max(-2).values for q in (q1, q2))
        return torch.minimum(q1, q2)

    def _policy_value(self, observations: torch.Tensor, policy_actions: torch.Tensor) -> torch.Tensor:
        """V(s) = E_{a' ~ pi} min_j Q_j(s, a'), averaged over ``value_samples`` actions."""
        samples = policy_actions.shape[0] // observations.shape[0]
        return self.critic.min_q(observations.repeat(samples, 1), policy_actions).view(samples, -1).mean(0)

    def _critic_loss(
        self, obs: torch.Tensor, actions: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 16 on the batch, and min_j Q_j(s, a) of the data actions (detached; per member for an ensemble)."""
        q1, q2 = self.critic(obs, actions)
        return critic_loss(q1, q2, target), torch.minimum(q1, q2).detach()

    def _actor_losses(self, obs, actions, noise, t, u, tau, weights) -> tuple[torch.Tensor, torch.Tensor]:
        """The two weighted terms of Eq. 19: L_consistency (Eq. 17) and L_flow (Eq. 18)."""
        return actor_losses(self.actor, self.actor_ema, obs, actions, noise, t, u, tau, weights)

    def _use_compile(self, backend: str | None) -> None:
        self._losses = {
            "critic": CompiledOrEager(self._critic_loss, backend),
            "actor": CompiledOrEager(self._actor_losses, backend),
        }

    def _step(
        self, optimizer: torch.optim.Optimizer, groups: list[list[torch.nn.Parameter]], loss: torch.Tensor
    ) -> torch.Tensor:
        """One optimiser step with each group's gradient norm clipped; returns the (mean) norm before clipping.

        The actor is one group; a critic says its own (``clip_groups``: an ensemble
        clips member by member, each as a lone critic would be).
        """
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        limit = self.config.grad_norm or float("inf")
        norms = [torch.nn.utils.clip_grad_norm_(group, limit) for group in groups]
        optimizer.step()
        return norms[0] if len(norms) == 1 else torch.stack(norms).mean()

    def _train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Metrics stay 0-dim tensors: ``learn`` sums them on the device and reads them at
        # its log interval, so a step waits for the device only in the NaN guard.
        cfg = self.config
        # The weights change: the fitted sampling times are stale, even where a later
        # learn(reset_num_timesteps=True) ends on the step count they were fitted at.
        self._fitted_at = None
        obs, actions = batch["observations"], batch["actions"]
        metrics: dict[str, torch.Tensor] = {}
        weights = torch.ones(obs.shape[0], device=self.device)
        if cfg.eta > 0:
            with torch.no_grad():
                next_actions, policy_actions = self._bootstrap_values(obs, batch["next_observations"])
                next_value = self._next_value(batch["next_observations"], next_actions)
                target = td_target(batch["rewards"], batch["terminations"], next_value, cfg.gamma)
            loss_q, member_q = self._losses["critic"](obs, actions, target)
            loss_q = self._checked("critic_loss", loss_q)
            metrics["critic_grad_norm"] = self._step(self.critic_optimizer, self.critic.clip_groups(), loss_q)
            with torch.no_grad():
                # Q of the data actions from the forward pass of the critic loss (one
                # step stale; an ensemble's members averaged, as its min_q does), V
                # with the updated critic.
                q = self.critic.combine(member_q)
                advantage = q - self._policy_value(obs, policy_actions)
                weights = advantage_weights(advantage, cfg.eta, cfg.max_weight)
                metrics.update(
                    critic_loss=loss_q.detach() / cfg.critic_ensemble,  # per critic, comparable across M
                    q_mean=q.mean(),
                    td_error=(member_q - target).abs().mean(),
                    advantage_std=advantage.std(),
                    advantage_positive_fraction=(advantage > 0).float().mean(),
                    weight_mean=weights.mean(),
                    weight_max=weights.max(),
                    weight_clipped_fraction=(weights >= cfg.max_weight * (1 - 1e-6)).float().mean(),
                    # Kish's effective sample size of the weighted batch, as a share of the batch.
                    weight_ess_fraction=weights.sum() ** 2 / (weights**2).sum() / weights.numel(),
                    policy_action_saturation=(policy_actions.abs() >= 1.0).float().mean(),
                )

        t, u, tau = sample_consistency_times(obs.shape[0], self._grid(), self.generator, cfg.tau_sampling)
        noise = torch.randn(actions.shape, device=self.device, generator=self.generator)
        loss_consistency, loss_flow = self._losses["actor"](obs, actions, noise, t, u, tau, weights)
        loss_consistency = self._checked("consistency_loss", loss_consistency)
        loss_flow = self._checked("flow_loss", loss_flow)
        loss_actor = loss_consistency + cfg.lambda_flow * loss_flow
        metrics["actor_grad_norm"] = self._step(self.actor_optimizer, [list(self.actor.parameters())], loss_actor)

        self._ema_update(self.actor_ema, self.actor, cfg.ema if cfg.teacher_ema is None else cfg.teacher_ema)
        if self.critic is not None:
            self._ema_update(self.critic_target, self.critic, cfg.ema)
        metrics.update(
            actor_loss=loss_actor.detach(), consistency_loss=loss_consistency.detach(), flow_loss=loss_flow.detach()
        )
        return metrics
