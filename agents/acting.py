"""How an offline agent acts: SB3's ``predict``, ``evaluate`` and the env SB3 callbacks ask for.

:class:`AgentActing` is the acting half of :class:`agents.base.OfflineAgent` (which
subclasses it): the action mapping between the env's box and the agent's [-1, 1], the
normalised, checked ``predict`` around an algorithm's ``_act``, and evaluation in the env
through SB3's ``evaluate_policy`` (:mod:`agents.evaluation`). It holds no state of its
own: it uses the agent's ``stats``, ``env``, action bounds and ``_act``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.evaluation import evaluate_predict, evaluation_vec_env, monitored_vec_env, require_vectorization
from ctflow_gym.data.validation import require_observation


class AgentActing:
    """The acting methods of :class:`~agents.base.OfflineAgent` (see the module docstring)."""

    def to_unit_actions(self, actions: np.ndarray) -> np.ndarray:
        """Env actions -> [-1, 1] (clipped, so recorded actions outside the box stay in)."""
        unit = 2.0 * (np.asarray(actions, np.float32) - self.action_low) / (self.action_high - self.action_low) - 1.0
        return np.clip(unit, -1.0, 1.0)

    def from_unit_actions(self, unit: np.ndarray) -> np.ndarray:
        """[-1, 1] -> env actions, clipped to the box."""
        actions = self.action_low + (np.clip(unit, -1.0, 1.0) + 1.0) * 0.5 * (self.action_high - self.action_low)
        return np.clip(actions, self.action_low, self.action_high)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        **options: Any,
    ) -> tuple[np.ndarray, Any]:
        """``(action, state)`` for one observation (obs_dim,) or a batch (B, obs_dim).

        SB3's signature; ``state`` is passed through (the policy is memoryless).
        Actions are clipped to the env's action box. ``options`` go to the
        algorithm (e.g. ``sampling_steps`` for GTP). An observation of another shape,
        or holding NaN or inf, is a ``ValueError`` naming ``observation``
        (:func:`~ctflow_gym.data.validation.require_observation`).
        """
        if self.stats is None:
            raise ValueError("this agent has no normalisation statistics: it was neither trained nor loaded")
        obs = require_observation(np.asarray(observation, dtype=np.float32), self.obs_dim)
        batched = obs.ndim == 2
        obs_t = torch.as_tensor(self.stats.normalize_observations(obs.reshape(-1, self.obs_dim)), device=self.device)
        with torch.inference_mode():
            unit = self._act(obs_t, deterministic, **options).float().cpu().numpy()
        actions = self.from_unit_actions(unit)
        return (actions if batched else actions[0]), state

    def get_env(self):
        """The evaluation env as an SB3 VecEnv (what SB3 callbacks expect of a model)."""
        if self._eval_env is None:
            self._eval_env = monitored_vec_env(self.env)
        return self._eval_env

    def get_vec_normalize_env(self):
        """SB3 callbacks ask for this; offline agents have no VecNormalize."""
        return None

    def evaluate(
        self,
        n_episodes: int = 10,
        deterministic: bool = True,
        seed: int | None = None,
        n_envs: int = 1,
        vectorization: str = "sync",
        **options: Any,
    ) -> dict[str, Any]:
        """Run ``n_episodes`` in the env with SB3's ``evaluate_policy``.

        Returns the episode ``returns``, ``mean_return``, ``std_return`` and, for
        envs with D4RL reference returns, the D4RL ``normalized_score`` (mean) and
        its std. ``seed`` (default: the agent's seed + the step count) seeds resets;
        ``options`` go to :meth:`predict`.

        ``n_envs`` > 1 runs the episodes in that many envs at once, with one batched
        ``predict`` per step for all (:func:`agents.evaluation.evaluation_vec_env`,
        ``vectorization`` ``"sync"`` or ``"async"``); env i starts from ``seed + i``, so
        the episodes differ from ``n_envs=1`` (the default: the env of :meth:`get_env`).
        """
        seed = self.seed + self.num_timesteps if seed is None else seed
        require_vectorization(n_envs, vectorization)
        single = n_envs == 1 and vectorization == "sync"
        vec_env = self.get_env() if single else evaluation_vec_env(self.env, n_envs, vectorization)
        try:
            return evaluate_predict(self.predict, vec_env, self.env_id, n_episodes, deterministic, seed, **options)
        finally:
            if not single:
                vec_env.close()
