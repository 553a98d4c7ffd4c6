"""Nearest eligible neighbours of window latents, the search behind local pairs (CTF paper, section 2.2).

A window's eligible neighbours are all windows except itself and the windows of its own
episode whose start is fewer than H steps away (a shifted copy shares most of its
steps). A window overlaps at most ``m`` windows of its episode (``m`` computed from the
starts: 2H - 1 at stride 1), so its k nearest eligible neighbours are among the
``k + m`` nearest of all. Those are found with FAISS and the overlapping ones dropped,
which needs no N x N mask and no N x N distance matrix.

The index (``neighbour_index``, a field of :class:`~ctflow_gym.refine.RefinerConfig`):

- ``"exact"``: ``IndexFlatL2``, every distance computed (O(N^2 d) time, O(N k) memory);
- ``"ivf"``: an inverted file of ``nlist`` k-means cells (:func:`ivf_lists`, about
  4 sqrt(N)), each query scanning the :data:`IVF_PROBES` cells nearest to it;
- ``"auto"`` (default): exact up to :data:`EXACT_MAX_WINDOWS` windows (the shipped
  dataset's ~70k training windows stay exact, so fits on it are as before), ivf above;
- any other string is handed to ``faiss.index_factory`` (e.g. ``"HNSW32"``,
  ``"IVF1024,Flat"``), for users who know FAISS; a string FAISS does not know is an
  error naming ``neighbour_index``.

Why ``"auto"`` switches: exact search is quadratic in the number of windows, so it is
fine at the shipped dataset's size and far too slow at a million windows, while ivf with
:data:`IVF_PROBES` probes finds nearly the same neighbours in a small fraction of the
time (the measured times and recall are on the Results page of the documentation).
"""

from __future__ import annotations

import math

import numpy as np

EXACT_MAX_WINDOWS = 100_000
"""``neighbour_index="auto"`` searches exactly up to this many windows, approximately above."""
IVF_PROBES = 16
"""Cells an ivf query scans (FAISS's ``nprobe``)."""
IVF_TRAINING_POINTS_PER_LIST = 40
"""k-means of the ivf cells trains on at most this many latents per cell (a seeded subsample;
FAISS asks for at least 39)."""
IVF_KMEANS_ITERATIONS = 10
"""Iterations of that k-means (FAISS's default is 25; cells only need to be roughly right,
the probes absorb the rest)."""
QUERY_CHUNK = 65_536
"""Queries per FAISS search call: bounds the candidate arrays of one call to chunk x (k + m)."""
NAMED_INDEXES = ("auto", "exact", "ivf")


def ivf_lists(n: int) -> int:
    """Number of ivf cells for ``n`` latents: the power of two nearest 4 sqrt(n), at least 1."""
    return max(1, 2 ** round(math.log2(max(4 * math.sqrt(n), 1))))


def resolve_index(index: str, n: int) -> str:
    """The FAISS factory string ``index`` stands for with ``n`` latents."""
    if index == "auto":
        index = "exact" if n <= EXACT_MAX_WINDOWS else "ivf"
    if index == "exact":
        return "Flat"
    if index == "ivf":
        return f"IVF{ivf_lists(n)},Flat"
    return index


def require_index(index, dim: int = 16) -> None:
    """Raise ``ValueError`` naming ``neighbour_index`` unless FAISS can build ``index`` for ``dim``-d latents."""
    if not isinstance(index, str) or not index:
        raise ValueError(f"neighbour_index must be one of {NAMED_INDEXES} or a FAISS factory string; got {index!r}")
    if index in NAMED_INDEXES:
        return
    import faiss

    try:
        faiss.index_factory(dim, index)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"neighbour_index {index!r} is not an index FAISS knows ({reason}); use one of {NAMED_INDEXES} "
            "or a faiss.index_factory string such as 'HNSW32' or 'IVF1024,Flat'"
        ) from None


def _build(latents: np.ndarray, factory: str, seed: int):
    import faiss

    index = faiss.index_factory(latents.shape[1], factory)
    ivf = faiss.try_extract_index_ivf(index)  # None unless the index is an inverted file
    if not index.is_trained:
        cap = IVF_TRAINING_POINTS_PER_LIST * (ivf.nlist if ivf is not None else 256)
        rng = np.random.default_rng(seed)
        sample = latents if len(latents) <= cap else latents[np.sort(rng.choice(len(latents), cap, replace=False))]
        if ivf is not None:
            ivf.cp.seed = seed
            ivf.cp.max_points_per_centroid = IVF_TRAINING_POINTS_PER_LIST
            ivf.cp.niter = IVF_KMEANS_ITERATIONS
        index.train(sample)
    index.add(latents)
    if ivf is not None:
        ivf.nprobe = min(IVF_PROBES, ivf.nlist)
    if hasattr(index, "hnsw"):
        index.hnsw.efSearch = max(index.hnsw.efSearch, 128)
    return index


def search(
    latents: np.ndarray, count: int, index: str = "auto", seed: int = 0, queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` nearest latents of every latent, itself included: (indices, distances), (Q, count).

    Distances are Euclidean, ascending; an index that finds fewer than ``count``
    neighbours pads with index -1, distance inf. ``seed`` seeds the training of
    approximate indexes (the k-means of ivf), so a search is reproducible.
    ``queries`` (indices into ``latents``; default all) limits whose neighbours are found.
    """
    latents = np.ascontiguousarray(latents, dtype=np.float32)
    n, dim = latents.shape
    require_index(index, dim)
    queries = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    built = _build(latents, resolve_index(index, n), seed)
    indices = np.empty((len(queries), count), dtype=np.int64)
    distances = np.empty((len(queries), count), dtype=np.float32)
    for begin in range(0, len(queries), QUERY_CHUNK):
        rows = slice(begin, min(begin + QUERY_CHUNK, len(queries)))
        squared, found = built.search(latents[queries[rows]], count)
        indices[rows], distances[rows] = found, np.sqrt(np.maximum(squared, 0))
    distances[indices < 0] = np.inf
    return indices, distances


def max_overlaps(episode_ids: np.ndarray, start_steps: np.ndarray, window: int) -> int:
    """Largest number of windows (itself included) any window overlaps in its episode."""
    span = int(start_steps.max() - start_steps.min()) + 2 * window + 1
    keys = np.sort(episode_ids.astype(np.int64) * span + (start_steps - start_steps.min()).astype(np.int64))
    hi = np.searchsorted(keys, keys + window - 1, side="right")
    lo = np.searchsorted(keys, keys - window + 1, side="left")
    return int((hi - lo).max())


def nearest_neighbours(
    latents: np.ndarray,
    episode_ids: np.ndarray,
    start_steps: np.ndarray,
    window: int,
    k: int,
    index: str = "auto",
    seed: int = 0,
    queries: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest eligible neighbours of every latent: (indices, distances), (N, k).

    Eligible: not itself, not a window of its episode starting fewer than ``window``
    steps away. Sorted by distance; missing neighbours (fewer than k eligible windows,
    or an approximate index that found too few) have index -1, distance inf. ``index``,
    ``seed`` and ``queries`` (then the rows are those latents') as in :func:`search`.
    """
    n = len(latents)
    count = min(n, k + max_overlaps(episode_ids, start_steps, window))
    indices, distances = search(latents, count, index, seed, queries)
    found = indices >= 0
    safe = np.where(found, indices, 0)
    own = (np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64))[:, None]
    overlapping = ~found | (
        (episode_ids[safe] == episode_ids[own]) & (np.abs(start_steps[safe] - start_steps[own]) < window)
    )
    # A stable sort keeps distance order among the eligible candidates.
    order = np.argsort(overlapping, axis=1, kind="stable")[:, :k]
    eligible = ~np.take_along_axis(overlapping, order, 1)
    width = order.shape[1]
    all_indices = np.full((len(own), k), -1, dtype=np.int64)
    all_distances = np.full((len(own), k), np.inf, dtype=np.float32)
    all_indices[:, :width] = np.where(eligible, np.take_along_axis(indices, order, 1), -1)
    all_distances[:, :width] = np.where(eligible, np.take_along_axis(distances, order, 1), np.inf)
    return all_indices, all_distances


def recall(approximate: np.ndarray, exact: np.ndarray) -> float:
    """recall@k: the share of the exact k nearest neighbours (index >= 0) that ``approximate`` also found.

    Both are (N, k) neighbour arrays of the same latents, as :func:`nearest_neighbours` returns.
    """
    wanted = exact >= 0
    hits = (exact[:, :, None] == approximate[:, None, :]).any(axis=2) & wanted
    return float(hits.sum() / max(wanted.sum(), 1))
