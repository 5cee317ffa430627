"""The interactive scene editor: the main plot with its draw tools and click-to-place obstacles.

``SceneEditor`` composes the scene from ``plots`` elements. Static layers (source and target points,
the target density) are rebuilt when the model's points change from outside the draw tools
(``scene_version``) or the mode changes; obstacles are a DynamicMap on the model's list and the
selection. The two layers that change many times per second while solving, the trajectories and the
particles at the time of the time slider, are written straight into their Bokeh data sources
(``LiveLayers``): a HoloViews re-render of the overlay costs tens of milliseconds of the event loop
per update, a data-source write about one. Modes: ``edit source`` / ``edit target`` attach a PointDraw tool (click to add,
drag to move, select and press Backspace to delete); ``place obstacles`` turns clicks into circles
(a click inside an existing circle selects it instead).
"""
from __future__ import annotations

import operator
from functools import reduce
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from panel.io.document import unlocked

import solver
from solver.targets import smoothed_density

from . import plots
from .edits import SceneHistory
from solver.generators import brush_points
from .model import POINTS as POINTS_KIND, SessionModel
from .runner import SolveRunner

MODES = ["edit source", "edit target", "paint", "place obstacles", "pan / zoom"]
SCENE_SIZE = 540
#: Pixels below the scene's frame: tick labels and the x axis' label (Bokeh left too few, and cut the label).
SCENE_BOTTOM = 70
#: Pixels above it: the title (with these, the frame is SCENE_SIZE square, as the equal ranges need).
SCENE_TITLE = 27
HINTS = {"edit source": "click to add source points, drag to move, Backspace deletes; box-select + Delete points",
         "edit target": "click to add target points, drag to move, Backspace deletes; box-select + Delete points",
         "paint": "drag a brush stroke: it becomes points of the chosen kind at the brush's spacing",
         "place obstacles": "click to place an obstacle, click one to select it, drag its centre to move it, "
                            "Backspace deletes the selected centre",
         "pan / zoom": "source, target, obstacles and trajectories"}


def scene_bounds(model: SessionModel, states: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """Square (x0, x1, y0, y1) bounds around the points, target and obstacles, with a margin."""
    dim = model.dim
    pts = [plots.as_scene_xy(model.source, dim, 0.0)]
    if model.edits_points:
        pts.append(plots.as_scene_xy(model.target_points, dim, 1.0))
    else:
        try:
            low, high = model.build_problem().target.bounding_box()
            pts.append(plots.as_scene_xy(np.array([low, high])[:, :dim], dim, 1.0))
        except solver.ProblemError:
            pass
    for shape in model.obstacle_shapes() if dim >= 2 else []:
        if shape is not None:
            pts.append(np.array(shape.bounding_box())[:, :2])
    if states is not None:
        pts.append(plots.trajectory_xy(states, dim).reshape(-1, 2))
    allp = np.vstack([p for p in pts if len(p)]) if any(len(p) for p in pts) else np.array([[0, 0], [1, 1]])
    lo, hi = allp.min(0), allp.max(0)
    if dim < 2:
        lo[1], hi[1] = 0.0, 1.0
    span = max(float((hi - lo).max()), 0.5) * 1.15
    mid = (lo + hi) / 2
    return mid[0] - span / 2, mid[0] + span / 2, mid[1] - span / 2, mid[1] + span / 2


class LiveLayers:
    """The Bokeh data sources of the scene's trajectory and particles-at-time-t layers, and what they
    show: ``states`` (N, M, D) or None, at time ``t``.

    ``hook(key)`` is a HoloViews plot hook that records the data source of the element it is attached
    to and fills it with the current data: it runs whenever the scene is rendered (also when its tab
    is shown again), so the latest plot's source is the one written and never shows stale data.
    ``show(states)`` and ``show_time(t)`` write into the sources, with the columns the elements were
    drawn with. Call them on the server's event loop (a Panel callback) or before the plot is shown.
    Each source is named ``live-<key>`` so browser tests can watch it."""

    def __init__(self, dim: int, states: np.ndarray | None, t: float) -> None:
        self.states, self.t = states, t
        self.redraw(dim)

    def redraw(self, dim: int) -> None:
        """Forget the sources of an old plot; the next render, in ``dim`` dimensions, records its own."""
        self.dim = dim
        self.sources: dict[str, Any] = {}
        self.glyphs: dict[str, Any] = {}

    def hook(self, key: str) -> Any:
        def record(plot: Any, element: hv.Element) -> None:
            self.sources[key], self.glyphs[key] = plot.handles["source"], plot.handles["glyph"]
            self.sources[key].name = f"live-{key}"
            self._write(key)
        return record

    def show(self, states: np.ndarray | None) -> None:
        """Draw ``states`` (or nothing for None)."""
        self.states = states
        self._write("trajectories")
        self._write("particles")

    def show_time(self, t: float) -> None:
        """Move the particles-at-time-t layer to time ``t``."""
        self.t = t
        self._write("particles")

    def _write(self, key: str) -> None:
        """Write one layer's source. ``unlocked`` sends the change to the browser whether or not the
        server holds the document lock: a button's event can be processed in a coroutine without it,
        and a bare write there raises in Bokeh's session ("_pending_writes should be non-None")."""
        if key not in self.sources:
            return
        glyph = self.glyphs[key]  # float32 below: half the bytes to the browser, ample for drawing
        if key == "trajectories":
            xy = plots.trajectory_path(self.states, self.dim).astype(np.float32)
            data = {glyph.xs: [xy[:, 0]], glyph.ys: [xy[:, 1]]}
        else:
            xy = plots.particles_xy(self.states, self.dim, self.t).astype(np.float32)
            data = {glyph.x: xy[:, 0], glyph.y: xy[:, 1]}
        with unlocked():
            self.sources[key].data = data


class SceneEditor(param.Parameterized):
    """Main plot of one session plus the obstacle controls (mode, radius, selection, table)."""

    mode = param.Selector(default="edit source", objects=MODES, doc="What a click on the scene does.")
    obstacle_kind = param.Selector(default=solver.OBSTACLES.default, objects=solver.OBSTACLES.kinds(),
                                   doc=" ".join(f"{k}: {solver.OBSTACLES.describe(k)}" for k in solver.OBSTACLES))
    obstacle_radius = param.Number(default=0.15, bounds=(0.01, None), softbounds=(0.01, 1.0),
                                   doc="Radius of new obstacles, and of the selected one (polygons: "
                                       "the distance from the centre to the farthest vertex).")
    selected = param.Integer(default=None, allow_None=True, doc="Index of the selected obstacle.")
    selected_points = param.Integer(default=0, bounds=(0, None), precedence=-1,
                                    doc="How many points the box-select tool has selected (edit modes; "
                                        "set by the scene, shown on the delete button).")
    paint_which = param.Selector(default="source", objects=["source", "target"],
                                 doc="Which points a brush stroke adds (paint mode).")
    brush_spacing = param.Number(default=0.05, bounds=(1e-3, None), softbounds=(0.01, 0.5),
                                 doc="Distance between painted points, along and across the stroke "
                                     "(density 1/spacing² per unit area).")
    brush_width = param.Number(default=0.15, bounds=(0.0, None), softbounds=(0.0, 1.0),
                               doc="Width of the painted band (0: one row of points along the stroke).")
    problem = param.String(default="", doc="A one-line message about the last scene gesture that failed.")

    def __init__(self, model: SessionModel, runner: SolveRunner, time: pn.widgets.FloatSlider,
                 **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        self.runner = runner
        self.time = time
        self.live = LiveLayers(model.dim, runner.states, time.value)
        self._centres: list[tuple[int, np.ndarray]] = []  # (obstacle index, centre) drawn in obstacle mode
        self._editing = False  # True while a draw-tool event edits the obstacles
        self.history = SceneHistory(model)
        self.pane = pn.pane.HoloViews(self._build(), css_classes=["scene-plot"], linked_axes=False,
                                      width=SCENE_SIZE + 140, height=SCENE_SIZE + SCENE_BOTTOM + SCENE_TITLE,
                                      sizing_mode="fixed")
        self.hint = pn.pane.Markdown(f"Mode: **{self.mode}**: {HINTS[self.mode]}", css_classes=["mode-hint"])
        self.table = pn.widgets.Tabulator(self._obstacle_frame(), css_classes=["obstacle-table"],
                                          show_index=True, selectable=1, height=170,
                                          layout="fit_columns", disabled=False,
                                          titles={"index": "#", "kind": "shape", "x": "x", "y": "y",
                                                  "radius": "radius"}, editors={"kind": None})
        self.table.on_edit(self._on_table_edit)
        self.table.param.watch(self._on_table_select, "selection")
        # one watcher: a preset changing several of these at once rebuilds the scene once
        model.param.watch(self._rebuild, ["scene_version", "dynamics", "target_params"])
        model.param.watch(self._on_obstacles, "obstacles")
        self.param.watch(self._rebuild, "mode")
        self.param.watch(self._on_radius, "obstacle_radius")
        runner.trajectories.add_subscriber(self._on_states)
        time.param.watch(lambda e: self.live.show_time(e.new), "value")

    # ----------------------------------------------------------------------------- plot
    def _build(self) -> hv.Overlay:
        model, dim = self.model, self.model.dim
        kx, ky = plots.scene_axes(dim)
        x0, x1, y0, y1 = scene_bounds(model, self.runner.states)
        source = plots.scene_points(model.source, dim, "source", plots.SOURCE_COLOR, t=0.0)
        layers: list[Any] = []
        if model.edits_points:
            target = plots.scene_points(model.target_points, dim, "target", plots.TARGET_COLOR,
                                        marker="diamond", t=1.0)
        else:
            target = plots.scene_points(np.zeros((0, dim)), dim, "target", plots.TARGET_COLOR, t=1.0).opts(
                show_legend=False)  # the density image stands for the target
            layers.append(self._density((x0, x1, y0, y1)))
        self._selection = None
        self._count_selected([])
        if self.mode == "edit source" or (self.mode == "edit target" and model.edits_points):
            which, edited = ("source", source) if self.mode == "edit source" else ("target", target)
            edited.opts(tools=["box_select"], nonselection_alpha=0.35)
            self._draw = hv.streams.PointDraw(source=edited, add=True, drag=True)
            self._draw.add_subscriber(lambda data: self._on_draw(which, data))
            self._selection = hv.streams.Selection1D(source=edited)
            self._selection.add_subscriber(self._count_selected)
        if self.mode == "paint" and dim >= 2:
            stroke = hv.Path([], kdims=[kx, ky], label="brush stroke").opts(color="#ff7f0e", line_width=3, alpha=0.6)
            layers.append(stroke)
            self._draw = hv.streams.FreehandDraw(source=stroke, num_objects=1)
            self._draw.add_subscriber(self._on_stroke)
        centres = None
        if self.mode == "place obstacles" and dim >= 2:
            self._centres = [(k, s.center[:2].copy()) for k, s in enumerate(model.obstacle_shapes()) if s is not None]
            xy = np.array([c for _, c in self._centres]).reshape(-1, 2)
            centres = hv.Points(xy, kdims=[kx, ky], label="obstacle centres").opts(
                color="#555555", marker="square", size=9)
            self._draw = hv.streams.PointDraw(source=centres, add=True, drag=True)
            self._draw.add_subscriber(self._on_centres)
        obstacles = hv.DynamicMap(
            lambda obstacles, selected: plots.obstacle_polygons(self._outlines(), dim, selected),
            streams=[hv.streams.Params(model, ["obstacles"]), hv.streams.Params(self, ["selected"])])
        self.live.redraw(dim)
        paths = plots.trajectories(None, dim).opts(hooks=[self.live.hook("trajectories")])
        now = plots.particles_at(None, dim, self.time.value).opts(hooks=[self.live.hook("particles")])
        active = {"paint": ["freehand_draw"], "pan / zoom": ["wheel_zoom"]}.get(self.mode, ["point_draw"])
        title = f"Scene ({self.mode}: see the hint beside it)"  # the whole hint overran the plot's width
        overlay = reduce(operator.mul, layers + [obstacles, paths, source, target, now]
                         + ([centres] if centres is not None else []))
        return overlay.opts(
            hv.opts.Overlay(title=title, xlim=(x0, x1), ylim=(y0, y1), frame_width=SCENE_SIZE,
                            frame_height=SCENE_SIZE, legend_position="top_left", xlabel=kx, ylabel=ky,
                            active_tools=active, toolbar="right", show_grid=True,
                            backend_opts={"plot.toolbar.autohide": False, "plot.min_border_bottom": SCENE_BOTTOM}))

    def _density(self, bounds: tuple[float, float, float, float]) -> hv.Element:
        """The continuum target as K_delta * m_1 on a grid (an empty image if it is invalid)."""
        dim = self.model.dim
        x0, x1, y0, y1 = bounds
        try:
            problem = self.model.build_problem()
        except solver.ProblemError:
            return hv.Image((np.linspace(x0, x1, 2), np.linspace(y0, y1, 2), np.zeros((2, 2))),
                            kdims=list(plots.scene_axes(dim)))
        xs = np.linspace(x0, x1, 90)
        if dim >= 2:
            ys = np.linspace(y0, y1, 90)
            X, Y = np.meshgrid(xs, ys)
            grid = np.zeros((X.size, problem.target.dim))
            grid[:, 0], grid[:, 1] = X.ravel(), Y.ravel()
            grid[:, 2:dim] = problem.target.mean()[2:dim]
            values = smoothed_density(problem.target, grid, problem.delta).reshape(X.shape)
            return plots.density_image(xs, ys, values, dim)
        line = np.zeros((len(xs), problem.target.dim))
        line[:, 0] = xs
        dens = smoothed_density(problem.target, line, problem.delta)
        dens = 1.0 + 0.25 * dens / (dens.max() or 1.0)
        return hv.Area((xs, dens, np.ones_like(xs)), kdims=[plots.scene_axes(dim)[0]],
                       vdims=[plots.scene_axes(dim)[1], "base"], label="target density").opts(
            color=plots.TARGET_COLOR, alpha=0.4)

    def _rebuild(self, *_: Any) -> None:
        self.pane.object = self._build()
        self.hint.object = f"Mode: **{self.mode}**: {HINTS[self.mode]}"

    # ----------------------------------------------------------------------------- events
    def _on_states(self, data: np.ndarray | None) -> None:
        """New trajectories from the runner (or None after a reset): write the live layers."""
        self.live.show(data)

    def _count_selected(self, index: list[int]) -> None:
        # a plain parameter: param.edit_constant would toggle every parameter's ``constant`` and with it
        # the ``disabled`` of every widget made from them, on every redraw (8 solving tabs: eps changes
        # answered at a 95th percentile of 1.0-2.4 s against 0.4-0.9 s)
        self.selected_points = len(index)

    def delete_selected_points(self) -> int:
        """Delete the points selected with the box-select tool (edit source / edit target modes);
        returns how many."""
        if self._selection is None or not self._selection.index:
            return 0
        which = "source" if self.mode == "edit source" else "target"
        points = self.model.source if which == "source" else self.model.target_points
        drop = [i for i in self._selection.index if 0 <= i < len(points)]
        self.model.set_points(which, np.delete(points, drop, axis=0))  # redraws: the selection is gone
        return len(drop)

    def _on_draw(self, which: str, data: dict) -> None:
        kx, ky = plots.scene_axes(self.model.dim)
        xs = np.asarray(data.get(kx, []), dtype=float)
        pts = np.column_stack([xs, data.get(ky, [])]) if self.model.dim >= 2 else xs[:, None]
        self.model.set_points(which, pts, external=False)

    def _on_stroke(self, data: dict) -> None:
        """A finished brush stroke: its points (``brush_points``) join the chosen points, and the
        scene is redrawn without the stroke."""
        xs, ys = data.get("xs") or [], data.get("ys") or []
        if not xs:
            return
        stroke = np.column_stack([np.asarray(xs[-1], dtype=float), np.asarray(ys[-1], dtype=float)])
        try:
            added = brush_points(stroke, self.brush_spacing, self.brush_width)
        except ValueError as err:
            self.problem = str(err)
            self._rebuild()  # drop the stroke
            return
        self.problem = ""
        current = self.model.source if self.paint_which == "source" else self.model.target_points
        if self.paint_which == "target" and not self.model.edits_points:
            current = np.zeros((0, 2))  # painting a target makes it particles
            self.model.set_target_kind(POINTS_KIND)
        self.model.set_points(self.paint_which, np.vstack([current, added]) if len(current) else added)

    def _on_centres(self, data: dict) -> None:
        """The obstacle-centre layer changed in the browser (place-obstacles mode): a click added a
        centre (a new obstacle, or a selection when it fell inside one), a drag moved one, Backspace
        deleted one."""
        kx, ky = plots.scene_axes(self.model.dim)
        now = np.column_stack([data.get(kx, []), data.get(ky, [])]).astype(float).reshape(-1, 2)
        drawn = self._centres
        self._editing = True
        try:
            if len(now) == len(drawn) + 1:
                x, y = now[-1]
                hit = self.model.obstacle_at(x, y)
                if hit is None:
                    self.model.add_obstacle(x, y, self.obstacle_radius, self.obstacle_kind)
                    hit = len(self.model.obstacles) - 1
                    self._centres = drawn + [(hit, now[-1].copy())]
                self._select(hit)
                if len(self._centres) == len(drawn):  # a click inside an obstacle: drop the extra centre
                    self._rebuild()
            elif len(now) == len(drawn):
                for (k, old), new in zip(drawn, now):
                    if not np.array_equal(old, new):
                        self.model.move_obstacle(k, float(new[0]), float(new[1]))
                        self._select(k)
                self._centres = [(k, new.copy()) for (k, _), new in zip(drawn, now)]
            else:
                kept = {k for k, old in drawn if any(np.array_equal(old, new) for new in now)}
                for k, _ in reversed(drawn):
                    if k not in kept:
                        self.model.remove_obstacle(k)
                self.selected = None
                self._rebuild()  # indices shifted: redraw the centres from the model
        finally:
            self._editing = False

    def _select(self, index: int) -> None:
        self.selected = index
        self.table.selection = [index]

    def _outlines(self) -> list[tuple[int, np.ndarray]]:
        """(index, outline) of every valid obstacle, for drawing."""
        return [(k, s.outline()) for k, s in enumerate(self.model.obstacle_shapes()) if s is not None]

    def _on_radius(self, event: param.parameterized.Event) -> None:
        if self.selected is not None and self.selected < len(self.model.obstacles):
            self.model.resize_obstacle(self.selected, float(event.new))

    def delete_selected(self) -> None:
        """Remove the selected obstacle."""
        if self.selected is not None and self.selected < len(self.model.obstacles):
            self.model.remove_obstacle(self.selected)
        self.selected = None
        self.table.selection = []

    # ----------------------------------------------------------------------------- table
    def _obstacle_frame(self) -> pd.DataFrame:
        rows = [{"kind": "invalid", "x": np.nan, "y": np.nan, "radius": np.nan} if s is None else
                {"kind": s.kind, "x": s.center[0], "y": s.center[1] if len(s.center) > 1 else 0.0, "radius": s.size}
                for s in self.model.obstacle_shapes()]
        return pd.DataFrame(rows, columns=["kind", "x", "y", "radius"]).astype(
            {"x": float, "y": float, "radius": float})

    def _on_obstacles(self, *_: Any) -> None:
        self.table.value = self._obstacle_frame()
        if self.selected is not None and self.selected >= len(self.model.obstacles):
            self.selected = None
        if self.mode == "place obstacles" and not self._editing:
            self._rebuild()  # a change from elsewhere (table, Delete, undo): the centres follow

    def _on_table_edit(self, event: Any) -> None:
        k = int(event.row)
        shape = self.model.obstacle_shapes()[k]
        if shape is not None and event.column in ("x", "y", "radius"):
            value = float(event.value)
            if event.column == "radius":
                self.model.resize_obstacle(k, value)
            else:
                center = [float(c) for c in shape.center[:2]]
                center[0 if event.column == "x" else 1] = value
                self.model.move_obstacle(k, *center)
        self._on_obstacles()

    def _on_table_select(self, event: param.parameterized.Event) -> None:
        self.selected = event.new[0] if event.new else None
        shape = self.model.obstacle_shapes()[self.selected] if self.selected is not None else None
        if shape is not None:
            with param.discard_events(self):
                self.obstacle_radius = shape.size
