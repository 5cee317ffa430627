"""Live plot panes of one session: energies, loss landscape and Fig. 6, the 1-D acceleration views,
and the lazily mounted distributed-control tab."""
from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import panel as pn

import solver
from solver.landscape import fig6_markers, fig6_problem, shows_fig6, terminal_landscape

from . import plots
from .distributed_tab import distributed_tab
from .model import SessionModel
from .runner import SolveRunner

DISTRIBUTED_TAB = "Distributed control"


def energy_plot(runner: SolveRunner) -> pn.pane.HoloViews:
    """Energy curves (total, kinetic, nonlocal, obstacle; log scale), streamed from the runner."""
    dmap = plots.live(hv.DynamicMap(plots.energy_curves, streams=[runner.energies])).opts(
        hv.opts.Overlay(height=330, responsive=True, show_grid=True))
    return pn.pane.HoloViews(dmap, css_classes=["energy-plot"], min_width=380)


def _landscape(data: dict | None) -> hv.Overlay:
    if not data or "error" in data:
        zero = np.linspace(-1.0, 1.0, 3)
        title = (f"Loss landscape unavailable: {data['error']}" if data else
                 "Loss landscape: appears a few seconds into a solve")
        return plots.landscape(zero, zero, np.zeros((3, 3)), None, title=title)
    return plots.landscape(data["a"], data["b"], data["E"], data["path"])


def fig6_view(model: SessionModel, runner: SolveRunner, n: int = 61) -> hv.Overlay:
    """Fig. 6 for the current problem if it is N = 2, 1-D velocity with particle target, else for the
    paper's Fig. 6 problem at the current eps (delta 0.1); with the solve's terminal-point path."""
    try:
        problem = model.build_problem()
    except solver.ProblemError:
        problem = None
    if problem is not None and shows_fig6(problem):
        title = f"Fig. 6: objective over the terminal points (eps = {problem.eps:g}, delta = {problem.delta:g})"
    else:
        eps = model.eps if model.eps > 0 else 0.01
        problem = fig6_problem(eps, 0.1)
        title = f"Fig. 6 problem (N = 2, M = 2, 1-D), eps = {eps:g}, delta = 0.1"
    markers = fig6_markers(problem)
    coords = np.array(list(markers.values())).ravel()
    lo, hi = coords.min() - 0.5, coords.max() + 0.5
    y = np.linspace(lo, hi, n)
    E = terminal_landscape(problem, y, y)
    path = None
    if runner.problem is not None and runner.problem.spec == problem.spec and runner.terminal_path:
        path = np.array(runner.terminal_path)[:, :2]
    return plots.fig6(y, y, E, markers, path, title).opts(
        hv.opts.Overlay(width=520, height=460))


def landscape_tab(model: SessionModel, runner: SolveRunner) -> pn.Row:
    """Live plane landscape (refreshed by the runner) and the Fig. 6 terminal-point landscape."""
    live = plots.live(hv.DynamicMap(_landscape, streams=[runner.landscape])).opts(
        hv.opts.Overlay(width=560, height=480))
    fig6_pane = pn.pane.HoloViews(fig6_view(model, runner), css_classes=["fig6-plot"])
    button = pn.widgets.Button(name="Recompute Fig. 6 (current eps / problem)", css_classes=["fig6-button"])
    button.on_click(lambda _e: setattr(fig6_pane, "object", fig6_view(model, runner)))

    def finished(event: Any) -> None:
        if event.new and runner.problem is not None and runner.problem.N == 2:
            fig6_pane.object = fig6_view(model, runner)

    runner.param.watch(finished, "final_status")
    return pn.Row(pn.pane.HoloViews(live, css_classes=["landscape-plot"]),
                  pn.Column(fig6_pane, button, pn.pane.Markdown(
                      "Markers: **+** source order, **x** target, **hexagon** the flipped "
                      "(crossing) assignment, **dot** the paper's initial guess (both at the target's mean).")))


def acceleration_tab(runner: SolveRunner) -> pn.Column:
    """Fig. 5 views for acceleration control: position against time and the phase plane."""
    left = plots.live(hv.DynamicMap(plots.position_time, streams=[runner.acceleration])).opts(
        hv.opts.Path(width=500, height=420))
    right = plots.live(hv.DynamicMap(plots.phase_plane, streams=[runner.acceleration])).opts(
        hv.opts.Overlay(width=500, height=420))
    return pn.Column(
        pn.pane.Markdown("For acceleration control (e.g. the *fig5_acceleration* preset): the first "
                         "coordinate of each particle against time, and the (position, velocity) "
                         "phase plane, as in the paper's Fig. 5."),
        pn.Row(pn.pane.HoloViews(left, css_classes=["position-time-plot"]),
               pn.pane.HoloViews(right, css_classes=["phase-plot"])))


def lazy_distributed_tab(tabs: pn.Tabs) -> None:
    """Append the 'Distributed control' tab; its content (and its worker thread) is built when the tab
    is first opened."""
    holder = pn.Column(pn.pane.Markdown("Loading ..."), css_classes=["distributed-holder"])
    tabs.append((DISTRIBUTED_TAB, holder))
    index, loaded = len(tabs) - 1, []

    def opened(event: Any) -> None:
        if event.new == index and not loaded:
            loaded.append(True)
            holder.objects = [distributed_tab()]

    tabs.param.watch(opened, "active")
