"""PNG export of the scene and the energy curves (matplotlib, rendered on the server).

The CSV and session exports are ``solver.io``'s (one implementation shared with the CLI); this module
only draws a static picture of what the explorer shows, for reports.
"""
from __future__ import annotations

import io
from types import ModuleType

import numpy as np
import pandas as pd

from . import plots
from .model import SessionModel


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the off-screen Agg backend, imported at the first picture: importing it
    costs ~0.3 s, which the server's first tab would otherwise wait for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def scene_png(model: SessionModel, states: np.ndarray | None, history: pd.DataFrame | None) -> bytes:
    """PNG bytes: the scene (obstacles, trajectories, source, target, terminal points) and energies."""
    plt = pyplot()
    dim = model.dim
    kx, ky = plots.scene_axes(dim)
    fig, (ax, ax_e) = plt.subplots(1, 2, figsize=(12, 5.5), dpi=110)
    for shape in model.obstacle_shapes() if dim >= 2 else []:
        if shape is not None:
            ax.add_patch(plt.Polygon(shape.outline(), closed=True, color="#bbbbbb", alpha=0.6))
    if states is not None:
        for line in plots.trajectory_xy(states, dim):
            ax.plot(line[:, 0], line[:, 1], color=plots.TRAJ_COLOR, alpha=0.5, lw=0.8)
        end = plots.as_scene_xy(states[:, -1], dim, 1.0)
        ax.scatter(end[:, 0], end[:, 1], s=14, color=plots.TERMINAL_COLOR, label="terminal points", zorder=3)
    src = plots.as_scene_xy(model.source, dim, 0.0)
    ax.scatter(src[:, 0], src[:, 1], s=14, color=plots.SOURCE_COLOR, label="source", zorder=3)
    if model.edits_points:
        tgt = plots.as_scene_xy(model.target_points, dim, 1.0)
        ax.scatter(tgt[:, 0], tgt[:, 1], s=18, marker="D", color=plots.TARGET_COLOR, label="target", zorder=3)
    ax.set(title=f"{model.title}", xlabel=kx, ylabel=ky)
    if dim >= 2:
        ax.set_aspect("equal", adjustable="datalim")
    ax.legend(loc="best", fontsize=8)
    if history is not None and len(history):
        for term in plots.ENERGY_TERMS:
            y = history[term].to_numpy(dtype=float)
            ax_e.plot(history["iteration"], np.where(y > 0, y, np.nan), color=plots.ENERGY_COLORS[term],
                      label="total" if term == "objective" else term)
        ax_e.set_yscale("log")
        ax_e.legend(fontsize=8)
    ax_e.set(title="Energies (log scale)", xlabel="iteration", ylabel="energy")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
