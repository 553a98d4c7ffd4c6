"""Summaries of repeated measurements, as every report of the package gives them."""

from __future__ import annotations

import numpy as np


def mean_se(values) -> dict[str, float]:
    """``{"mean", "se"}`` of ``values``: the mean and its standard error (sample std / sqrt(n)).

    The standard error is NaN for fewer than two values; an empty input is a ``ValueError``.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("values: at least one measurement is needed")
    se = float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")
    return {"mean": float(values.mean()), "se": se}
