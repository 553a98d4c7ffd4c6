"""``RefinerEnsemble``: several fitted refiners as one, combined by turn or by mean, with an agreement gate.

Example (the settings measured on the Results page of the documentation)::

    ensemble = RefinerEnsemble.fit(DEFAULT_DATASET_ID, seeds=(0, 1, 2), feedback="bootstrapped_advantage")
    policy = RefinedPolicy(sb3_model, ensemble, env, candidates=4, continuation=48,
                           value_fn=sb3_value_function(sb3_model))

Fit-seed variance dominates what a single refiner does to whole episodes (see the
Results page of the documentation). Two ways to combine fits:

- ``combine="rotate"`` (default; for verification): ``refine(..., seed=s)`` delegates
  to member ``s % M``, and ``RefinedPolicy`` / ``RefinementWrapper`` give candidate i of
  window w the seed ``w * n + i``, so n candidates rotate through the members (and
  through the strength ladder). Without a seed the first member refines.
- ``combine="mean"`` (for refinement without verification): every member refines the
  window and the refined window is the members' mean (states and actions alike), so
  a move the members agree on survives and what only one fit proposes is shrunk by 1/M.

``agreement_gate`` g in [0, 1] leaves a window as it was where the members disagree.
With d_i = a_i - a (member i's refined actions minus the source actions, the window
flattened), the agreement is ``||mean_i d_i|| / mean_i ||d_i||``: 1 when every member
moves the window the same way, about 1/sqrt(M) when their moves are unrelated, and 1
for a window no member moves. A window whose agreement is below g is returned
unchanged (source states and actions; ``RefinementResult.gated`` marks it). Gating
refines every member whatever ``combine`` is (M refiner calls per window).

Tracked execution uses the first member's inverse-dynamics model for every plan (all
were fitted on the same kind of data; Eq. T1 is exact on plan whichever model corrects
it). ``RefinerEnsemble.fit`` gives every member the same held-out episodes
(``split_seed``), so :func:`~ctflow_gym.refine.held_out_windows` can evaluate the
ensemble on windows none of its members trained on (``fit_info``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctflow_gym.checkpoint import read_checkpoint_meta, require_meta_keys, save_checkpoint
from ctflow_gym.data.windows import Windows
from ctflow_gym.refine.contract import RefinementResult, require_refiner
from ctflow_gym.refine.registry import load_refiner, refiner_kind, register_refiner

COMBINES = ("rotate", "mean")


@dataclass(frozen=True)
class EnsembleRefinement(RefinementResult):
    """A :class:`~ctflow_gym.refine.RefinementResult` with what the agreement gate saw.

    Attributes:
        agreement: (N,) the members' agreement per window (module docstring).
        gated: (N,) True where the window was left as it was.
    """

    agreement: np.ndarray | None = None
    gated: np.ndarray | None = None


def agreement(source_actions: np.ndarray, member_actions: np.ndarray) -> np.ndarray:
    """(N,) agreement of M members' refinements of N windows (see the module docstring).

    Args:
        source_actions: (N, H, act_dim) the windows as they were.
        member_actions: (M, N, H, act_dim) each member's refined actions.
    """
    moves = (np.asarray(member_actions) - np.asarray(source_actions)[None]).reshape(
        len(member_actions), len(source_actions), -1
    )
    spread = np.linalg.norm(moves, axis=2).mean(axis=0)
    together = np.linalg.norm(moves.mean(axis=0), axis=1)
    return np.where(spread > 0, together / np.maximum(spread, 1e-12), 1.0)


@register_refiner
class RefinerEnsemble:
    """Fitted refiners of one window length and env, combined (see the module docstring).

    Args:
        members: two or more fitted refiners with the same ``window``, ``obs_dim``, ``act_dim``.
        combine: ``"rotate"`` (member ``seed % M`` refines; for verified candidates) or
            ``"mean"`` (the members' mean refined window; for unverified refinement).
        agreement_gate: windows whose members' agreement is below it are left as they
            were; 0 (default) gates nothing.
    """

    def __init__(self, members, combine: str = "rotate", agreement_gate: float = 0.0):
        if combine not in COMBINES:
            raise ValueError(f"combine must be one of {COMBINES}; got {combine!r}")
        if isinstance(agreement_gate, bool) or not isinstance(agreement_gate, (int, float, np.floating)):
            raise ValueError(f"agreement_gate must be a number in [0, 1]; got {agreement_gate!r}")
        if not 0.0 <= float(agreement_gate) <= 1.0:
            raise ValueError(f"agreement_gate must be in [0, 1]; got {agreement_gate!r}")
        self.combine = combine
        self.agreement_gate = float(agreement_gate)
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"members: an ensemble needs at least 2 refiners; got {len(members)}")
        for i, member in enumerate(members):
            require_refiner(member, f"members[{i}]")
        shapes = {(m.window, m.obs_dim, m.act_dim) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"members must share window, obs_dim and act_dim; got {sorted(shapes)}")
        self.members = members
        self.window, self.obs_dim, self.act_dim = shapes.pop()
        self.env_id = members[0].env_id
        self.inverse_dynamics = getattr(members[0], "inverse_dynamics", None)
        self.checkpoint_path: str | None = None

    @classmethod
    def fit(
        cls,
        data,
        seeds=(0, 1, 2),
        progress_bar: bool = True,
        combine: str = "rotate",
        agreement_gate: float = 0.0,
        **refiner_kwargs,
    ) -> "RefinerEnsemble":
        """Fit one :class:`~ctflow_gym.refine.TrajectoryRefiner` per seed on ``data`` and ensemble them.

        ``refiner_kwargs`` are :class:`~ctflow_gym.refine.RefinerConfig` fields shared by every
        member (e.g. ``feedback="bootstrapped_advantage"``, the setting under which the
        ensemble was measured). Every member holds out the same episodes: ``split_seed``
        defaults to the first seed.
        """
        from ctflow_gym.refine.refiner import TrajectoryRefiner

        seeds = list(seeds)
        if len(seeds) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds: an ensemble needs at least 2 distinct seeds; got {seeds!r}")
        if "seed" in refiner_kwargs:
            raise TypeError("pass the members' seeds as seeds=..., not seed=")
        refiner_kwargs.setdefault("split_seed", seeds[0])
        members = [TrajectoryRefiner(seed=s, **refiner_kwargs).fit(data, progress_bar=progress_bar) for s in seeds]
        return cls(members, combine=combine, agreement_gate=agreement_gate)

    @property
    def is_fitted(self) -> bool:
        """Always True: members are fitted when the ensemble is made."""
        return True

    @property
    def fit_info(self) -> dict:
        """What :func:`~ctflow_gym.refine.held_out_windows` needs: the episodes every member held out.

        ``held_out_episodes`` is the intersection of the members' (all of them when the
        ensemble was made by :meth:`fit`); ``dataset_id`` is the members' shared one, or
        None when they differ or do not say.
        """
        infos = [getattr(m, "fit_info", None) or {} for m in self.members]
        ids = {info.get("dataset_id") for info in infos}
        held_out = set(infos[0].get("held_out_episodes", []))
        for info in infos[1:]:
            held_out &= set(info.get("held_out_episodes", []))
        return {"dataset_id": ids.pop() if len(ids) == 1 else None, "held_out_episodes": sorted(held_out)}

    def refine(self, observations, actions=None, strength: float = 1.0, seed: int = 0, **options) -> RefinementResult:
        """Refine by ``combine``, then gate (see the module docstring); ``options`` go to every member called.

        Only ``predicted_gain`` is kept from the members (their mean under ``"mean"``):
        deviations and latents of a combined window are not any one member's. The
        result's ``agreement`` (N,) and ``gated`` (N,) say what the gate saw, whenever
        all members refined.
        """
        if self.combine == "rotate" and self.agreement_gate == 0.0:
            member = self.members[int(seed) % len(self.members)]
            return member.refine(observations, actions, strength=strength, **options)
        if isinstance(observations, Windows):
            observations, actions = observations.observations, observations.actions
        results = [m.refine(observations, actions, strength=strength, **options) for m in self.members]
        source_obs = np.asarray(observations, dtype=np.float32).reshape(results[0].observations.shape)
        source_act = np.asarray(actions, dtype=np.float32).reshape(results[0].actions.shape)
        member_obs = np.stack([r.observations for r in results])
        member_act = np.stack([r.actions for r in results])
        # A window no member moves is returned as the source exactly (a mean of equal
        # float32 values can round away from them).
        unmoved = (member_act == source_act).all(axis=(0, 2, 3)) & (member_obs == source_obs).all(axis=(0, 2, 3))
        if self.combine == "mean":
            refined_obs, refined_act = member_obs.mean(axis=0), member_act.mean(axis=0)
            gains = [r.predicted_gain for r in results]
            gain = None if any(g is None for g in gains) else np.mean(gains, axis=0)
        else:
            chosen = int(seed) % len(self.members)
            refined_obs, refined_act, gain = member_obs[chosen], member_act[chosen], results[chosen].predicted_gain
        agree = agreement(source_act, member_act)
        gated = agree < self.agreement_gate
        keep = (gated | unmoved)[:, None, None]
        refined_obs = np.where(keep, source_obs, refined_obs).astype(np.float32)
        refined_act = np.where(keep, source_act, refined_act).astype(np.float32)
        if gain is not None:
            gain = np.where(gated, 0.0, gain)
        return EnsembleRefinement(refined_obs, refined_act, predicted_gain=gain, agreement=agree, gated=gated)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ensemble's record to ``path`` and each member to ``path/member_<i>``.

        The record goes first (its atomic write replaces the whole folder), then the
        members, each atomically. Returns ``path``.
        """
        path = Path(path)
        meta = {"members": len(self.members), "combine": self.combine, "agreement_gate": self.agreement_gate}
        save_checkpoint(path, refiner_kind(type(self)), meta, {"members": torch.tensor([len(self.members)])})
        for i, member in enumerate(self.members):
            member.save(path / f"member_{i}")
        self.checkpoint_path = str(path.resolve())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> "RefinerEnsemble":
        """Read an ensemble written by :meth:`save` (each member by its own recorded kind)."""
        path = Path(path)
        meta = read_checkpoint_meta(path, family="refiner", kinds=[refiner_kind(cls)])
        require_meta_keys(path, meta, ("members",))
        members = [load_refiner(path / f"member_{i}", device=device) for i in range(int(meta["members"]))]
        ensemble = cls(members, meta.get("combine", "rotate"), meta.get("agreement_gate", 0.0))
        ensemble.checkpoint_path = str(path.resolve())
        return ensemble
