"""Draw a refinement path: source, intermediate and refined actions of one window."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def plot_refinement_path(
    path: dict[str, np.ndarray], out_file: str | os.PathLike, window_index: int = 0, title: str | None = None
) -> Path:
    """Write a PNG with one panel per action dimension of window ``window_index``.

    ``path`` is what :meth:`TrajectoryRefiner.path` returns. The source (t = 0) is
    black, the refined window (last t) red, the intermediate times shades between.
    The file is written under a temporary name and renamed. Returns its path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actions = np.asarray(path["actions"])
    times = np.asarray(path["times"])
    if actions.ndim != 4:
        raise ValueError(f"path['actions'] must be (T, N, H, act_dim); got shape {actions.shape}")
    if not 0 <= window_index < actions.shape[1]:
        raise ValueError(f"window_index must be in [0, {actions.shape[1]}); got {window_index}")
    act_dim = actions.shape[-1]
    figure, axes = plt.subplots(act_dim, 1, figsize=(7, 1.8 * act_dim + 0.6), sharex=True, squeeze=False)
    colours = plt.cm.autumn_r(np.linspace(0.2, 1.0, max(len(times) - 1, 1)))
    steps = np.arange(actions.shape[2])
    for d in range(act_dim):
        axis = axes[d, 0]
        axis.plot(steps, actions[0, window_index, :, d], color="black", linewidth=2, label=f"source (t = {times[0]:g})")
        for j in range(1, len(times)):
            final = j == len(times) - 1
            axis.plot(
                steps,
                actions[j, window_index, :, d],
                color="red" if final else colours[j - 1],
                linewidth=2 if final else 1,
                label=f"refined (t = {times[j]:g})" if final else f"t = {times[j]:g}",
            )
        axis.set_ylabel(f"action {d}")
    axes[-1, 0].set_xlabel("step in window")
    axes[0, 0].legend(fontsize=7, ncol=min(len(times), 4), loc="upper right")
    figure.suptitle(title or "refinement path")
    figure.tight_layout()
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    staging = out_file.with_name(f".{out_file.stem}.tmp.png")
    figure.savefig(staging, dpi=100)
    plt.close(figure)
    os.replace(staging, out_file)
    return out_file
