"""``RefinerEnsemble``: several fitted refiners as one, the member chosen by the seed.

Example (the setting measured in ``benchmarks/results/closed_loop_refinement_analysis.md``)::

    ensemble = RefinerEnsemble.fit(DEFAULT_DATASET_ID, seeds=(0, 1, 2), feedback="bootstrapped_advantage")
    policy = RefinedPolicy(sb3_model, ensemble, env, candidates=4, continuation=48,
                           value_fn=sb3_value_function(sb3_model))

Fit-seed variance dominates what a single refiner does to whole episodes
(``benchmarks/results/closed_loop_refinement_analysis.md``). An ensemble lets the
candidates of a verified window come from different fits: ``refine(..., seed=s)``
delegates to member ``s % len(members)``, and ``RefinedPolicy`` /
``RefinementWrapper`` give candidate i of window w the seed ``w * n + i``, so n
candidates rotate through the members (and through the strength ladder). Without a
seed the first member refines. Tracked execution uses the first member's
inverse-dynamics model for every member's plan (all were fitted on the same kind of
data; Eq. T1 is exact on plan whichever model corrects it).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ctflow_gym.checkpoint import read_checkpoint_meta, require_meta_keys, save_checkpoint
from ctflow_gym.refine.contract import RefinementResult, require_refiner
from ctflow_gym.refine.registry import load_refiner, refiner_kind, register_refiner


@register_refiner
class RefinerEnsemble:
    """Fitted refiners of one window length and env, used in turn by seed (see the module docstring).

    Args:
        members: two or more fitted refiners with the same ``window``, ``obs_dim``, ``act_dim``.
    """

    def __init__(self, members):
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
    def fit(cls, data, seeds=(0, 1, 2), progress_bar: bool = True, **refiner_kwargs) -> "RefinerEnsemble":
        """Fit one :class:`~ctflow_gym.refine.TrajectoryRefiner` per seed on ``data`` and ensemble them.

        ``refiner_kwargs`` are :class:`~ctflow_gym.refine.RefinerConfig` fields shared by every
        member (e.g. ``feedback="bootstrapped_advantage"``, the setting under which the
        ensemble was measured). Each member holds out its own episodes (its seed's split).
        """
        from ctflow_gym.refine.refiner import TrajectoryRefiner

        seeds = list(seeds)
        if len(seeds) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds: an ensemble needs at least 2 distinct seeds; got {seeds!r}")
        if "seed" in refiner_kwargs:
            raise TypeError("pass the members' seeds as seeds=..., not seed=")
        return cls([TrajectoryRefiner(seed=s, **refiner_kwargs).fit(data, progress_bar=progress_bar) for s in seeds])

    @property
    def is_fitted(self) -> bool:
        """Always True: members are fitted when the ensemble is made."""
        return True

    def refine(self, observations, actions=None, strength: float = 1.0, seed: int = 0, **options) -> RefinementResult:
        """Refine with member ``seed % len(members)`` (``options`` go to it)."""
        member = self.members[int(seed) % len(self.members)]
        return member.refine(observations, actions, strength=strength, **options)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the ensemble's record to ``path`` and each member to ``path/member_<i>``.

        The record goes first (its atomic write replaces the whole folder), then the
        members, each atomically. Returns ``path``.
        """
        path = Path(path)
        meta = {"members": len(self.members)}
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
        ensemble = cls([load_refiner(path / f"member_{i}", device=device) for i in range(int(meta["members"]))])
        ensemble.checkpoint_path = str(path.resolve())
        return ensemble
