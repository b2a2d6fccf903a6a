"""Picture of E5 trials with matplotlib (no GL): the depth image the perception saw,
and the end-effector paths seen from above (x-y) and from the side (x-z), with the
TRUE target, each arm's goal estimate and the success radius.

Files are written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle

from ..atomic import atomic_savefig
from ..errors import InvalidArgument

__all__ = ["plot_trials", "save_figure"]


def save_figure(fig: matplotlib.figure.Figure, path: pathlib.Path) -> None:
    """Save ``fig`` as PNG at ``path`` atomically and close it."""
    try:
        atomic_savefig(fig, path, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def plot_trials(
    path: pathlib.Path,
    depth: np.ndarray,
    target: np.ndarray,
    paths: Mapping[str, np.ndarray],
    goals: Mapping[str, np.ndarray],
    tolerance: float,
    title: str = "",
) -> None:
    """Draw one trial (possibly several arms on the same target) into ``path`` (PNG).

    Args:
        depth: the (possibly noisy) depth image ``(H, W)`` in metres.
        target: TRUE target ``(3,)``.
        paths: label -> end-effector positions ``(T, 3)``.
        goals: label -> goal estimate ``(3,)`` given to the controller.
        tolerance: success radius (m), drawn around the target.
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise InvalidArgument("depth", d.shape, "must be a 2-d image")
    if set(goals) - set(paths):
        raise InvalidArgument("goals", sorted(goals), f"labels must be among {sorted(paths)}")
    g = np.asarray(target, dtype=np.float64)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), layout="constrained")
    lo, hi = np.percentile(d, [2, 98])
    im = axes[0].imshow(d, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1e-6)
    axes[0].set_title("depth image (m)")
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    fig.colorbar(im, ax=axes[0], fraction=0.046)
    views = ((axes[1], 0, 1, "top view", "y (m)"), (axes[2], 0, 2, "side view", "z (m)"))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, i, j, name, ylabel in views:
        for k, (label, p) in enumerate(paths.items()):
            arr = np.asarray(p, dtype=np.float64)
            c = colours[k % len(colours)]
            ax.plot(arr[:, i], arr[:, j], "-", color=c, label=f"{label} path")
            ax.plot(arr[-1, i], arr[-1, j], "o", color=c, ms=4)
            if label in goals:
                est = np.asarray(goals[label], dtype=np.float64)
                ax.plot(est[i], est[j], "x", color=c, ms=9, mew=2, label=f"{label} estimate")
        ax.add_patch(Circle((g[i], g[j]), tolerance, fill=False, ls="--", color="k"))
        ax.plot(g[i], g[j], "*", color="k", ms=12, label="true target")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("x (m)")
        ax.set_ylabel(ylabel)
        ax.set_title(name)
    axes[1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
