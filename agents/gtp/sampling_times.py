"""Where GTPAgent's K flow-map jumps stop: Karras' times (Eq. 15), or stops fitted to the trained map.

:class:`GTPSamplingTimes` is the part of :class:`agents.gtp.agent.GTPAgent` (which
subclasses it) that chooses the sampling times ``predict`` jumps through: Karras' times
of Eq. 15 for every K, except the K in ``config.fitted_sampling_steps``, whose
intermediate stops are fitted offline to the trained map (:mod:`agents.gtp.calibration`),
refitted whenever the weights have changed, and saved with the agent (its acting state).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from typing import Any

import torch

from agents.gtp.calibration import FittedTimes, clipped_actions, fine_path, fit_sampling_times, rms_distance
from agents.gtp.config import require_stop_counts
from agents.gtp.schedule import explicit_sampling_times, sampling_times
from ctflow_gym.data.validation import require_int


class GTPSamplingTimes:
    """The sampling times of :class:`~agents.gtp.agent.GTPAgent` (see the module docstring).

    Uses the agent's ``config``, ``actor_ema``, ``transitions``, ``_data``, ``num_timesteps``
    and ``_grid()``; ``_build`` sets the caches (``_times_cache``, ``_fitted``,
    ``_fitted_at``, ``_warned_unfitted``).
    """

    @property
    def sampling_steps(self) -> int:
        """K, the flow-map jumps per action used when ``predict`` is not told otherwise."""
        return self.config.sampling_steps

    @sampling_steps.setter
    def sampling_steps(self, steps: int) -> None:
        self._times(steps)
        self.config.sampling_steps = steps

    def _times(self, steps: int | tuple[float, ...]) -> tuple[float, ...]:
        """Karras' sampling times of K = ``steps`` map steps, or ``steps`` itself if it is a checked tuple of times.

        Training (the critic's bootstrap actions) and :meth:`flow_map_consistency` use
        these; acting uses :meth:`sampling_plan`.
        """
        if isinstance(steps, tuple):
            return steps
        key = (steps, self.config.max_time, self.config.min_time)
        if key not in self._times_cache:
            self._times_cache[key] = sampling_times(steps, self.config.max_time, self.config.min_time)
        return self._times_cache[key]

    def sampling_plan(self, steps: int) -> tuple[float, ...]:
        """The times T > t_1 > ... > 0 that ``predict`` jumps through with K = ``steps`` map steps.

        For K in ``config.fitted_sampling_steps`` the intermediate stops fitted to the
        trained map (:meth:`fit_sampling_times`): refitted on the attached dataset when
        ``learn`` or ``learn_online`` ends, before their evaluations, when the agent is
        saved and when it is loaded with a dataset (:meth:`_refresh_acting_state`), never
        here: acting never fits anything, so it stays cheap while the weights change
        (online fine-tuning acts with the fit of its last evaluation). Where there is no
        fit (a checkpoint saved before fits existed, loaded without a dataset: a warning
        says so once), Karras' times of Eq. 15.
        """
        require_int(steps, "sampling_steps")
        if steps < 2 or steps not in self.config.fitted_sampling_steps:
            return self._times(steps)
        if steps in self._fitted:
            return self._fitted[steps].times
        if steps not in self._warned_unfitted:
            self._warned_unfitted.add(steps)
            warnings.warn(
                f"sampling_steps={steps} is in fitted_sampling_steps but this agent has no fit of its times; "
                "acting with Karras' times (call fit_sampling_times(), or load with dataset=..., which fits them)"
            )
        return self._times(steps)

    def fit_sampling_times(self, steps=None, n_states: int = 1024, seed: int = 0) -> dict[int, FittedTimes]:
        """Fit K-step sampling's intermediate stops to the trained map (:mod:`agents.gtp.calibration`).

        For each K >= 2 in ``steps`` (default ``config.fitted_sampling_steps``), on
        ``n_states`` dataset states and start noises drawn with ``seed`` (not the agent's
        generator: fitting changes no random stream), over the current grid of Eq. 76.
        The fits become the times :meth:`sampling_plan` gives for those K, are saved
        with the agent, and are returned (each with its distance to the fine path, and
        Karras' for comparison). Needs the dataset (``GTPAgent.load(path, dataset=...)``).
        """
        steps = self.config.fitted_sampling_steps if steps is None else steps
        require_stop_counts(steps, "steps")
        observations, noise, levels = self._fit_inputs("fit_sampling_times", n_states, seed)
        if self._fitted_at != self.num_timesteps:
            self._fitted = {}
        for k in steps:
            self._fitted[k] = fit_sampling_times(self.actor_ema, observations, noise, self._times(k), levels)
        self._fitted_at = self.num_timesteps
        return {k: self._fitted[k] for k in steps}

    def sampling_plan_distance(self, times, n_states: int = 1024, seed: int = 0) -> float:
        """RMS distance of the actions of the plan ``times`` (T ... 0) to the finest trained path's.

        The quantity :meth:`fit_sampling_times` minimises, on the same states and start
        noises for the same ``n_states`` and ``seed``: to compare any plan with a fitted one.
        """
        plan = explicit_sampling_times(times, self.config.max_time)
        observations, noise, levels = self._fit_inputs("sampling_plan_distance", n_states, seed)
        act = lambda times: clipped_actions(self.actor_ema, observations, noise, times)  # noqa: E731
        return rms_distance(act(plan), act(fine_path(levels)))

    def _fits_stale(self) -> bool:
        """Whether the weights have trained since the last fit, or a K of ``fitted_sampling_steps`` has none."""
        missing = set(self.config.fitted_sampling_steps) - set(self._fitted)
        return self._fitted_at != self.num_timesteps or bool(missing)

    def _fit_inputs(self, caller: str, n_states: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """Dataset states and start noises drawn with ``seed``, and the trained levels T ... min_time."""
        if self.transitions is None:
            raise ValueError(f"{caller} draws dataset states; load the agent with dataset=...")
        require_int(n_states, "n_states")
        observations, noise = self._seeded_states(n_states, seed)
        levels = self._grid().flip(0)[:-1].tolist()  # T ... min_time, without the 0 below
        return observations, noise, levels

    def _seeded_states(self, n_states: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_states`` dataset states and start noises z ~ N(0, I), drawn with ``seed``.

        Drawn on the CPU and moved, so that the same seed gives the same states and
        noises (and fits, and diagnostics) on every device.
        """
        generator = torch.Generator().manual_seed(seed)
        index = torch.randint(len(self.transitions), (n_states,), generator=generator)
        noise = torch.randn(n_states, self.act_dim, generator=generator)
        return self._data["observations"][index.to(self.device)], noise.to(self.device)

    def _refresh_acting_state(self) -> None:
        """Refit the sampling times if the weights have trained since the last fit (and the dataset is attached)."""
        if self.transitions is not None and self.config.fitted_sampling_steps and self._fits_stale():
            self.fit_sampling_times()

    def _restore(self, path, meta=None) -> None:
        """Restore a checkpoint (:meth:`~agents.persistence.AgentPersistence._restore`), then fit missing times.

        A checkpoint saved before fits existed, loaded with a dataset, is fitted here, at
        load time, rather than at its first ``predict``.
        """
        super()._restore(path, meta)
        self._refresh_acting_state()

    def _acting_state(self) -> dict[str, Any]:
        self._refresh_acting_state()
        fits = {str(k): asdict(fit) for k, fit in sorted(self._fitted.items())}
        return {"fitted_sampling_times": fits, "fitted_at_step": self._fitted_at}

    def _set_acting_state(self, state: dict[str, Any]) -> None:
        self._fitted_at = state.get("fitted_at_step")
        fits = state.get("fitted_sampling_times", {})
        self._fitted = {
            int(k): FittedTimes(**{n: tuple(v) if isinstance(v, list) else v for n, v in fit.items()})
            for k, fit in fits.items()
        }
