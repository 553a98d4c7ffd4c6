"""The Intrinsic Action Variance (IAV) of a dataset, from which DeFlow derives its trust region delta.

DeFlow's README: "we compute the average variance of actions among k-nearest neighbors
(k = 5) for each state ... and normalize it by the action dimension". Its repository
ships no script for it, so the choices are ours and stated here:

- neighbours are the k dataset states nearest to each query state in Euclidean distance,
  the query state itself included (a k-nearest-neighbour query of the dataset against
  itself), on the observations as the agent sees them (normalised);
- the variance is the population variance (ddof = 0) of those k actions, per action
  dimension, in the agent's action units ([-1, 1]), the units delta is compared in;
- IAV is the mean over query states and action dimensions ("normalised by the action
  dimension"); on large datasets it is estimated on a seeded sample of query states,
  the neighbours still searched among all states.

The search is exact brute force (every squared distance |q|^2 - 2 q.x + |x|^2 in float32,
then the k smallest), the same computation as FAISS's ``IndexFlatL2``, done in torch so
that the agents need nothing beyond torch (FAISS is the refiner's; an exact search gains
nothing from it).
"""

from __future__ import annotations

import numpy as np
import torch

from ctflow_gym.data.validation import require_int

DISTANCES_PER_CHUNK = 1 << 25
"""Query-to-state distances computed at once (128 MiB of float32): bounds the memory of a chunk."""


def intrinsic_action_variance(
    observations: np.ndarray,
    actions: np.ndarray,
    neighbours: int = 5,
    max_states: int | None = None,
    seed: int = 0,
) -> float:
    """The IAV: the mean over query states and action dimensions of the variance of the k neighbours' actions.

    Args:
        observations: (N, obs_dim) states (normalised as the agent sees them).
        actions: (N, act_dim) the actions taken in them (in [-1, 1]).
        neighbours: k, the states whose actions make each variance (the state itself included).
        max_states: estimate on this many query states drawn without replacement with
            ``seed`` (None: every state is a query).
        seed: seeds that draw.

    Raises ``ValueError`` naming ``neighbours`` when the dataset has fewer than k states
    (the trust region cannot be derived; pass ``target_divergence`` instead), and naming
    ``observations`` / ``actions`` when their shapes do not match.
    """
    observations = np.ascontiguousarray(observations, dtype=np.float32)
    actions = np.asarray(actions, dtype=np.float64)
    if observations.ndim != 2 or actions.ndim != 2 or len(observations) != len(actions):
        raise ValueError(
            f"observations and actions must be (N, obs_dim) and (N, act_dim) arrays of the same N; "
            f"got {observations.shape} and {actions.shape}"
        )
    require_int(neighbours, "neighbours", least=2)
    if len(observations) < neighbours:
        raise ValueError(
            f"neighbours: the trust region delta cannot be derived from {len(observations)} states with "
            f"k = {neighbours} nearest neighbours; give target_divergence explicitly or use more data"
        )
    states = torch.from_numpy(observations)
    squared_norms = states.square().sum(dim=1)
    queries = np.arange(len(observations))
    if max_states is not None and max_states < len(queries):
        queries = np.sort(np.random.default_rng(seed).choice(len(queries), max_states, replace=False))
    chunk = max(1, DISTANCES_PER_CHUNK // len(observations))
    total = 0.0
    for start in range(0, len(queries), chunk):
        rows = torch.from_numpy(queries[start : start + chunk])
        distances = squared_norms[rows, None] - 2.0 * states[rows] @ states.T + squared_norms[None, :]
        found = distances.topk(neighbours, dim=1, largest=False).indices.numpy()
        total += float(actions[found].var(axis=1).mean(axis=1).sum())
    return total / len(queries)


__all__ = ["intrinsic_action_variance"]
