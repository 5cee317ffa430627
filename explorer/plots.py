"""HoloViews elements of the explorer (pure functions of arrays; no widgets, no state).

2-D scenes show the first two coordinates; 1-D scenes put the position on the horizontal axis and
time t on the vertical axis (source at t = 0, target at t = 1), as in the paper's 1-D figures.
"""
from __future__ import annotations

import holoviews as hv
import numpy as np

from solver.paths import at_time

SOURCE_COLOR = "#1f77b4"
TARGET_COLOR = "#d62728"
TRAJ_COLOR = "#7f7f7f"
TERMINAL_COLOR = "#2ca02c"
ENERGY_TERMS = ("objective", "kinetic", "nonlocal", "obstacle")
ENERGY_COLORS = {"objective": "black", "kinetic": SOURCE_COLOR, "nonlocal": TARGET_COLOR,
                 "obstacle": "#9467bd"}


def scene_axes(dim: int) -> tuple[str, str]:
    """Axis labels of the scene: (x0, x1) in 2-D, (x, t) in 1-D."""
    return ("x₀", "x₁") if dim >= 2 else ("x", "t")


def as_scene_xy(points: np.ndarray, dim: int, t: float) -> np.ndarray:
    """Scene coordinates of points: the first two coordinates, or (x, t) in 1-D."""
    if len(points) == 0:
        return np.zeros((0, 2))
    if dim >= 2:
        return np.asarray(points)[:, :2]
    return np.column_stack([np.asarray(points)[:, 0], np.full(len(points), t)])


def scene_points(points: np.ndarray, dim: int, label: str, color: str, marker: str = "circle",
                 t: float = 0.0) -> hv.Points:
    """Source (t = 0) or target (t = 1) particles as scene points."""
    kx, ky = scene_axes(dim)
    return hv.Points(as_scene_xy(points, dim, t), kdims=[kx, ky], label=label).opts(
        color=color, marker=marker, size=7, line_color="white" if marker == "circle" else color)


def obstacle_polygons(outlines: list[tuple[int, np.ndarray]], dim: int, selected: int | None = None) -> hv.Polygons:
    """Obstacles, given as (index, outline polygon), filled (2-D scenes only); the selected one is
    highlighted."""
    kx, ky = scene_axes(dim)
    data = [{kx: poly[:, 0], ky: poly[:, 1], "obstacle": k, "state": "selected" if k == selected else "obstacle"}
            for k, poly in outlines if dim >= 2]
    return hv.Polygons(data, kdims=[kx, ky], vdims=["obstacle", "state"], label="obstacles").opts(
        color="state", cmap={"obstacle": "#bbbbbb", "selected": "#ff9f1c"}, alpha=0.6, line_color="#555555",
        tools=["hover"], show_legend=False)


def density_image(xs: np.ndarray, ys: np.ndarray, values: np.ndarray, dim: int) -> hv.Overlay:
    """A continuum target drawn as the smoothed density K_delta * m_1 (image) with contours."""
    kx, ky = scene_axes(dim)
    img = hv.Image((xs, ys, values), kdims=[kx, ky], vdims=["density"], label="target density").opts(
        cmap="Reds", alpha=0.55, colorbar=False)
    contours = hv.operation.contours(img, levels=5).opts(cmap=["#b2182b"], line_width=1, show_legend=False)
    return img * contours


def _nan_joined(lines: np.ndarray) -> np.ndarray:
    """(N, M, 2) polylines -> one (N (M+1), 2) array separated by NaN rows (fast to draw)."""
    N, M, _ = lines.shape
    out = np.full((N, M + 1, 2), np.nan)
    out[:, :M] = lines
    return out.reshape(N * (M + 1), 2)


def trajectory_xy(states: np.ndarray, dim: int) -> np.ndarray:
    """(N, M, 2) scene coordinates of trajectories: positions, or (x, t) in 1-D."""
    N, M, _ = states.shape
    if dim >= 2:
        return states[:, :, :2]
    t = np.broadcast_to(np.linspace(0.0, 1.0, M), (N, M))
    return np.stack([states[:, :, 0], t], axis=-1)


def trajectory_path(states: np.ndarray | None, dim: int) -> np.ndarray:
    """All trajectories as one (N (M+1), 2) polyline in scene coordinates, particles separated by
    NaN rows (empty for None)."""
    return np.zeros((0, 2)) if states is None else _nan_joined(trajectory_xy(states, dim))


def trajectories(states: np.ndarray | None, dim: int) -> hv.Path:
    """One polyline per particle through its M time points (linear interpolation in time)."""
    kx, ky = scene_axes(dim)
    return hv.Path([trajectory_path(states, dim)], kdims=[kx, ky], label="trajectories").opts(
        color=TRAJ_COLOR, alpha=0.5, line_width=1, show_legend=True)  # listed even while empty


def particles_xy(states: np.ndarray | None, dim: int, t: float) -> np.ndarray:
    """(N, 2) scene coordinates of the particles at time t (empty for None)."""
    return np.zeros((0, 2)) if states is None else as_scene_xy(at_time(states, t), dim, t)


def particles_at(states: np.ndarray | None, dim: int, t: float) -> hv.Points:
    """The particles at time t (terminal points at t = 1)."""
    kx, ky = scene_axes(dim)
    return hv.Points(particles_xy(states, dim, t), kdims=[kx, ky], label="particles at time t").opts(
        color=TERMINAL_COLOR, size=6, marker="circle")


def fig6(y1: np.ndarray, y2: np.ndarray, E: np.ndarray, markers: dict[str, tuple[float, float]],
         path: np.ndarray | None, title: str) -> hv.Overlay:
    """The paper's Fig. 6: the objective over the terminal points (y₁, y₂) with its markers."""
    kdims = ["terminal point y₁", "terminal point y₂"]
    img = hv.Image((y1, y2, np.log10(E - E.min() + 1e-12)), kdims=kdims, vdims=["log10(E - min E)"]).opts(
        cmap="viridis", colorbar=True)
    lines = hv.operation.contours(img, levels=15).opts(cmap=["white"], line_width=0.6, alpha=0.6,
                                                       show_legend=False)
    styles = {"source": ("cross", "white"), "target": ("x", "red"), "flipped": ("hex", "orange"),
              "initial": ("circle", "black")}
    marks = [hv.Points([markers[k]], kdims=kdims, label=k).opts(marker=m, color=c, size=14)
             for k, (m, c) in styles.items() if k in markers]
    trail = hv.Path([np.zeros((0, 2)) if path is None else path], kdims=kdims,
                    label="iterate path").opts(color="#ff7f0e", line_width=2)
    return hv.Overlay([img, lines, trail] + marks).opts(title=title, legend_position="bottom_right")


def position_time(data: np.ndarray | None) -> hv.Path:
    """Fig. 5 (left): position against time, one line per particle (1-D acceleration control);
    ``data`` are the (N, M, 2d) states or None."""
    states, data = data, np.zeros((0, 2))
    if states is not None:
        N, M, _ = states.shape
        t = np.broadcast_to(np.linspace(0.0, 1.0, M), (N, M))
        data = _nan_joined(np.stack([t, states[:, :, 0]], axis=-1))
    return hv.Path([data], kdims=["t", "position x"], label="trajectories").opts(
        color=SOURCE_COLOR, alpha=0.6, title="Position against time", show_legend=True)


def phase_plane(data: np.ndarray | None) -> hv.Overlay:
    """Fig. 5 (right): trajectories in the (position, velocity) phase plane, with endpoints;
    ``data`` are the (N, M, 2d) states (velocities after positions) or None."""
    states = data
    kdims = ["position x", "velocity v"]
    if states is None or states.shape[2] < 2:
        lines, start, end = np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2))
    else:
        xv = states[:, :, [0, states.shape[2] // 2]]  # first position and its velocity
        lines, start, end = _nan_joined(xv), xv[:, 0], xv[:, -1]
    return (hv.Path([lines], kdims=kdims, label="trajectories").opts(color=TRAJ_COLOR, alpha=0.6)
            * hv.Points(start, kdims=kdims, label="source").opts(color=SOURCE_COLOR, size=6)
            * hv.Points(end, kdims=kdims, label="terminal").opts(color=TERMINAL_COLOR, size=6)
            ).opts(title="Phase plane", legend_position="top_left")


#: Element types whose ranges follow their data in a live plot.
_FRAMEWISE = ("Curve", "Path", "Points", "Image", "Segments", "Histogram", "Area", "Polygons")


def live(dmap: hv.DynamicMap) -> hv.DynamicMap:
    """A DynamicMap whose axes follow every new frame. HoloViews reads ``framewise`` per element (an
    Overlay-level option alone leaves the axes at the first, often empty, frame's 0..1)."""
    return dmap.opts(*(getattr(hv.opts, kind)(framewise=True) for kind in _FRAMEWISE))
