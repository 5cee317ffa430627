"""Live plot panes of one session: energies and the loss landscape beside the scene (plain Bokeh
figures written in place), Fig. 6, the 1-D acceleration views; parts of a page built once it has
loaded (``after_load``, ``when_loaded``) and tabs built when first opened (``lazy_tab``)."""
from __future__ import annotations

import weakref
from typing import Any, Callable

import bokeh.plotting as bokeh_plotting
import contourpy
import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
from bokeh.document import Document
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper, PrintfTickFormatter, Range1d
from bokeh.palettes import Viridis256
from panel.io.document import unlocked

import solver
from solver.landscape import fig6_markers, fig6_problem, shows_fig6, terminal_landscape

from . import plots
from .model import SessionModel
from .runner import SolveRunner

def energy_plot(runner: SolveRunner) -> pn.pane.Bokeh:
    """Energy curves (total, kinetic, nonlocal, obstacle; log scale), streamed from the runner."""
    layers = EnergyLayers()
    runner.energies.add_subscriber(layers.show)
    layers.show(runner.energies.data)
    layers.figure.css_classes = ["energy-plot"]  # on the figure: a Bokeh pane drops its own css classes
    pane = pn.pane.Bokeh(layers.figure, min_width=300, sizing_mode="stretch_width")
    return pane


#: The live plots' tools (HoloViews' defaults, without its per-element setup).
LIVE_TOOLS = "pan,wheel_zoom,box_zoom,save,reset"


class EnergyLayers:
    """The energy plot, a Bokeh figure written in place: ``show(data)`` takes the runner's energy frame
    (columns ``runner.ENERGY_COLUMNS``) and draws each term against the iteration, and the run's best
    objective so far dashed (the total jumps up where a check start begins), non-positive values left
    out (log axis), the axes framed around what is drawn. Plain Bokeh, not HoloViews: a HoloViews
    render of its four curves costs ~70 ms of the server's event loop per update and ~0.3 s per new
    browser tab; building the figure costs a few ms and a write about one. Each curve's data source
    has the columns ``iteration`` and ``energy``."""

    def __init__(self) -> None:
        self.figure = bokeh_plotting.figure(
            title="Energies (log scale)", y_axis_type="log", x_axis_label="iteration", y_axis_label="energy",
            height=330, sizing_mode="stretch_width", margin=(5, 10), tools=LIVE_TOOLS, x_range=Range1d(0.0, 1.0),
            y_range=Range1d(0.1, 10.0))
        self.sources: dict[str, ColumnDataSource] = {}
        for term in plots.ENERGY_TERMS:
            self.sources[term] = ColumnDataSource({"iteration": np.zeros(0), "energy": np.zeros(0)})
            self.figure.line("iteration", "energy", source=self.sources[term], color=plots.ENERGY_COLORS[term],
                             line_width=2 if term == "objective" else 1.5,
                             legend_label="total" if term == "objective" else term)
        self.sources["best"] = ColumnDataSource({"iteration": np.zeros(0), "energy": np.zeros(0)})
        self.figure.line("iteration", "energy", source=self.sources["best"], color=plots.ENERGY_COLORS["objective"],
                         line_width=1.5, line_dash="dashed", legend_label="best so far")
        self.figure.legend.location = "top_right"
        self.figure.toolbar.logo = None

    def show(self, data: pd.DataFrame | None) -> None:
        if data is None:
            return
        iterations = data["iteration"].to_numpy(dtype=float) if len(data) else np.zeros(0)
        drawn = []
        with unlocked():
            for term in (*plots.ENERGY_TERMS, "best"):
                values = data[term].to_numpy(dtype=float) if term in data and len(data) else np.zeros(0)
                values = np.where(values > 0, values, np.nan)
                drawn.append(values[np.isfinite(values)])
                self.sources[term].data = {"iteration": iterations, "energy": values}
            if len(iterations):
                low, high = float(iterations.min()), float(iterations.max())
                self.figure.x_range.update(start=low, end=high if high > low else low + 1.0)
            positive = np.concatenate(drawn)
            if len(positive):
                self.figure.y_range.update(start=float(positive.min()) / 1.5, end=float(positive.max()) * 1.5)


class LandscapeLayers:
    """The live landscape plot, a Bokeh figure written in place (as the scene's ``LiveLayers``): a
    slice comes once a second during a solve, and a HoloViews re-render of the image, its contours
    and the path costs ~150 ms of the server's event loop (and ~0.3 s per new browser tab), which the
    trajectory updates need. ``show(data)`` (on the event loop) writes the image, the contour lines
    (``contourpy``), the iterate's path, the colour range, the axes' ranges and the title. The
    runner's landscape Pipe calls it. Data sources: ``image`` (columns image, x, y, dw, dh), then
    ``contours`` and ``path`` (xs, ys)."""

    def __init__(self) -> None:
        # the slice's offsets are small multiples of the directions (often 1e-4 .. 1e-2): short scientific
        # labels, few of them, else Bokeh writes 0.00100 and the like, which overlap beside the scene; the
        # colour bar goes below, so the image keeps the narrow column's width
        figure = bokeh_plotting.figure(
            title=LANDSCAPE_WAITING, x_axis_label="a (gradient direction)", y_axis_label="b (last step direction)",
            height=330, sizing_mode="stretch_width", margin=(5, 10), tools=LIVE_TOOLS, x_range=Range1d(-1.0, 1.0),
            y_range=Range1d(-1.0, 1.0))
        for axis in (figure.xaxis[0], figure.yaxis[0]):
            axis.formatter = PrintfTickFormatter(format="%.1e")
        figure.xaxis[0].ticker.desired_num_ticks = 3
        self.color_mapper = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0)
        self.sources = {"image": ColumnDataSource({"image": [np.zeros((2, 2))], "x": [-1.0], "y": [-1.0],
                                                   "dw": [2.0], "dh": [2.0]}),
                        "contours": ColumnDataSource({"xs": [np.zeros(0)], "ys": [np.zeros(0)]}),
                        "path": ColumnDataSource({"xs": [np.zeros(0)], "ys": [np.zeros(0)]})}
        figure.image("image", x="x", y="y", dw="dw", dh="dh", source=self.sources["image"],
                     color_mapper=self.color_mapper)
        figure.multi_line("xs", "ys", source=self.sources["contours"], line_color="white", line_width=0.7,
                          line_alpha=0.7)
        figure.multi_line("xs", "ys", source=self.sources["path"], line_color="#ff7f0e", line_width=2,
                          legend_label="iterate path")
        figure.scatter([0.0], [0.0], marker="star", size=10, color="#ff7f0e", legend_label="current iterate")
        figure.legend.location = "bottom_right"
        figure.toolbar.logo = None
        figure.add_layout(ColorBar(color_mapper=self.color_mapper, title="objective", orientation="horizontal",
                                   formatter=PrintfTickFormatter(format="%.3g")), "below")
        self.figure = figure

    def show(self, data: dict | None) -> None:
        """Write a slice {"a", "b", "E", "path"} (or an {"error": ...} / None) into the plot."""
        figure = self.figure
        with unlocked():
            if not data or "error" in data:
                figure.title.text = (f"Loss landscape unavailable: {data['error']}" if data else LANDSCAPE_WAITING)
                return
            a, b, E = np.asarray(data["a"]), np.asarray(data["b"]), np.asarray(data["E"])
            self.sources["image"].data = {"image": [E], "x": [a[0]], "y": [b[0]], "dw": [a[-1] - a[0]],
                                          "dh": [b[-1] - b[0]]}
            finite = E[np.isfinite(E)]
            if len(finite):
                self.color_mapper.update(low=float(finite.min()), high=float(finite.max()))
            lines = contour_path(a, b, E, levels=12)
            self.sources["contours"].data = {"xs": [lines[:, 0]], "ys": [lines[:, 1]]}
            path = np.zeros((0, 2)) if data.get("path") is None else np.asarray(data["path"], dtype=float)
            self.sources["path"].data = {"xs": [path[:, 0]], "ys": [path[:, 1]]}
            figure.x_range.update(start=float(a[0]), end=float(a[-1]))
            figure.y_range.update(start=float(b[0]), end=float(b[-1]))
            figure.title.text = LANDSCAPE_TITLE


LANDSCAPE_WAITING = "Loss landscape: shown during a solve"
LANDSCAPE_TITLE = "Loss landscape at the iterate"


def contour_path(a: np.ndarray, b: np.ndarray, E: np.ndarray, levels: int) -> np.ndarray:
    """Contour lines of E[j, i] = E(a[i], b[j]) at ``levels`` evenly spaced values strictly inside its
    range, as one (n, 2) polyline with NaN rows between the lines (empty for a flat or invalid E)."""
    finite = E[np.isfinite(E)]
    if len(finite) == 0 or finite.max() <= finite.min():
        return np.zeros((0, 2))
    generator = contourpy.contour_generator(a, b, np.where(np.isfinite(E), E, np.nan))
    pieces = []
    for level in np.linspace(finite.min(), finite.max(), levels + 2)[1:-1]:
        for line in generator.lines(level):
            pieces += [line, np.full((1, 2), np.nan)]
    return np.vstack(pieces) if pieces else np.zeros((0, 2))


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


def landscape_plot(runner: SolveRunner) -> pn.pane.Bokeh:
    """The live loss-landscape slice around the current iterate, with the iterate's path (streamed
    by the runner; shown beside the scene)."""
    layers = LandscapeLayers()
    runner.landscape.add_subscriber(layers.show)
    layers.figure.css_classes = ["landscape-plot"]  # on the figure: a Bokeh pane drops its own css classes
    pane = pn.pane.Bokeh(layers.figure, min_width=300, sizing_mode="stretch_width")
    return pane


def fig6_tab(model: SessionModel, runner: SolveRunner) -> pn.Column:
    """The Fig. 6 terminal-point landscape (computed when built: the app builds this tab only when it
    is first opened), recomputed on request and after a two-particle solve."""
    fig6_pane = pn.pane.HoloViews(fig6_view(model, runner), css_classes=["fig6-plot"])
    button = pn.widgets.Button(name="Recompute Fig. 6 (current eps / problem)", css_classes=["fig6-button"])
    button.on_click(lambda _e: setattr(fig6_pane, "object", fig6_view(model, runner)))

    def finished(event: Any) -> None:
        if event.new and runner.problem is not None and runner.problem.N == 2:
            fig6_pane.object = fig6_view(model, runner)

    runner.param.watch(finished, "final_status")
    return pn.Column(fig6_pane, button, pn.pane.Markdown(
        "Markers: **+** source order, **x** target, **hexagon** the flipped "
        "(crossing) assignment, **dot** the paper's initial guess (both at the target's mean)."))


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


def _placeholder(css: str, **layout: Any) -> pn.Column:
    """A "Loading ..." column whose ``objects`` are replaced by the real content later."""
    return pn.Column(pn.pane.Markdown("Loading ..."), css_classes=[css], sizing_mode="stretch_width", **layout)


#: Per session document, the work waiting for its page to load (``when_loaded``).
_LOAD_WORK: "weakref.WeakKeyDictionary[Document, list[Callable[[], None]]]" = weakref.WeakKeyDictionary()


def when_loaded(work: Callable[[], None]) -> None:
    """Run ``work`` once the session's page has loaded, in registration order, with the session's other
    such work under one frozen hold: each addition of models to a document makes Bokeh re-collect all
    of them (~40-60 ms for a tab), so three parts added by three callbacks cost three collections, and
    the next tab's request waited behind them. (Outside a server, e.g. in tests, it runs at once.)"""
    doc = pn.state.curdoc
    if doc is None:
        work()
        return
    queue = _LOAD_WORK.get(doc)
    first = queue is None
    if first:
        queue = _LOAD_WORK[doc] = []
    queue.append(work)
    if first:
        pn.state.onload(lambda: _run_load_work(doc))


def _run_load_work(doc: Document) -> None:
    with pn.io.hold(doc, freeze=True):
        for work in _LOAD_WORK.pop(doc, []):
            work()


def after_load(build: Callable[[], pn.viewable.Viewable], css: str, height: int) -> pn.Column:
    """A holder whose content ``build()`` is built once the page has loaded (``when_loaded``), for
    parts below the fold or beside the scene: a new tab's page arrives sooner, smaller, and its scene
    and controls are usable while such parts follow."""
    holder = _placeholder(css, min_height=height)
    when_loaded(lambda: setattr(holder, "objects", [build()]))
    return holder


def lazy_tab(tabs: pn.Tabs, title: str, build: Callable[[], pn.viewable.Viewable], css: str) -> None:
    """Append a tab whose content (and any worker it starts) is built when the tab is first opened:
    a new browser tab opens faster, and work nobody looks at is never done."""
    holder = _placeholder(css)
    tabs.append((title, holder))
    index, loaded = len(tabs) - 1, []

    def opened(event: Any) -> None:
        if event.new == index and not loaded:
            loaded.append(True)
            holder.objects = [build()]

    tabs.param.watch(opened, "active")


def prime_text_panes(areas: list[list[pn.viewable.Viewable]]) -> None:
    """Re-render every text pane (Markdown, HTML, Alert) in ``areas`` once (call it ``when_loaded``):
    Panel renders such a pane without its theme's default stylesheet and adds that at the pane's first
    update, and a changed stylesheet list makes Bokeh re-collect every model of the document (45 ms for
    one tab, 150 ms and more with solves running: in process, a person's first edit of eps cost the
    server 344-376 ms, the next ones 16-33 ms; primed, 29 ms). Primed together under one frozen hold
    they cost one such collection (~0.1 s), at load instead of at the first edit. (Updating them while
    the session's document is being built broke the page.)"""
    with pn.io.hold(freeze=True):
        for area in areas:
            for item in area:
                for pane in item.select(pn.pane.markup.HTMLBasePane):
                    pane.param.trigger("object")  # re-renders it (setting the text would unbind bound panes)
