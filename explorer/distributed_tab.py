"""The "Distributed control" tab: V, V_dstr, V_det and the bounds for a chosen n, T, U, K and graph,
the graph, gap and bound against n, sample paths under both optimal controls, and the marginals of a
particle system against its independent projection.

``DistributedCase`` is the case as ``param`` parameters (bounds and docs; the widgets are generated
from them). ``DistributedWorker`` runs ``solver.distributed.explore`` (the iterator the command line
also uses) in one background thread per tab: a newer request cancels the older one, and each stage's
result is applied on the document's event loop, only if it belongs to the newest request. Sliders
act when released (``value_throttled``).
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable

import holoviews as hv
import numpy as np
import panel as pn
import param

from solver.distributed.case import CaseError, parse_case
from solver.distributed.explore import Stage, explore
from solver.distributed.graphs import GRAPH_KINDS, NORMALIZATIONS

from .plots import live

ROWS = [("V", "V", "V_err"), ("V_dstr", "V_dstr", "V_dstr_err"), ("V_det", "V_det", "V_det_err"),
        ("V_dstr - V", "gap", None), ("bound (general RHS)", "bound", None),
        ("(T²/2n)‖K''‖² tr(J²)", "bound_trace", None), ("V_det bound", "bound_det", None), ("mean-field V̄", "V_mf", None)]
PLOT = {"width": 380, "height": 320}


class DistributedCase(param.Parameterized):
    """One case of the lab (the fields of CASE.json, README "Distributed vs full-information control")."""

    n = param.Integer(default=20, bounds=(2, 400), doc="Number of players.")
    T = param.Number(default=1.0, bounds=(0.05, 10.0), doc="Time horizon.")
    U = param.Selector(default="quadratic", objects=["quadratic", "logcosh"],
                       doc="Confinement: a x²/2 - b x, or a x²/2 + c log cosh x - b x.")
    a = param.Number(default=1.0, bounds=(0.0, 10.0), doc="U: curvature a >= 0.")
    b = param.Number(default=0.5, softbounds=(-2.0, 2.0), doc="U: linear coefficient b.")
    c = param.Number(default=1.0, bounds=(0.0, 10.0), doc="U: log cosh weight c >= 0 (logcosh only).")
    K = param.Selector(default="quadratic", objects=["quadratic", "logcosh"],
                       doc="Interaction: kappa z²/2, or kappa log cosh z.")
    kappa = param.Number(default=1.0, bounds=(0.0, 10.0), doc="K: strength kappa >= 0.")
    graph = param.Selector(default="ring", objects=list(GRAPH_KINDS), doc="The interaction graph J.")
    normalize = param.Selector(default="row", objects=list(NORMALIZATIONS),
                               doc="Weights: none (1 per edge), row (J = A/degree), 1/n, 1/(n-1).")
    d = param.Integer(default=4, bounds=(1, 50), doc="Degree of the random regular graph.")
    p = param.Number(default=0.2, bounds=(0.0, 1.0), doc="Edge probability of the Erdos-Renyi graph.")
    seed = param.Integer(default=0, bounds=(0, None), doc="Seed of random graphs and simulations.")

    def case_dict(self) -> dict[str, Any]:
        """The case as CASE.json (with the tab's faster AIS settings)."""
        U = {"kind": self.U, "a": self.a, "b": self.b, **({"c": self.c} if self.U == "logcosh" else {})}
        return {"n": self.n, "T": self.T, "U": U, "K": {"kind": self.K, "kappa": self.kappa},
                "J": {"graph": self.graph, "normalize": self.normalize, "d": self.d, "p": self.p, "seed": self.seed},
                "options": {"ais_particles": 500, "ais_target_se": None, "seed": self.seed}}


def results_html(res: dict[str, Any]) -> str:
    """The results table as HTML (one row per quantity, error estimates beside values)."""
    body = "".join(
        f"<tr><td>{label}</td><td data-key='{key}'>{res[key]:.10g}</td>"
        f"<td>{'' if err is None else ('exact' if res[err] == 0 else f'± {res[err]:.2g}')}</td>"
        f"<td>{res.get(key + '_method', '').replace('_', ' ')}</td></tr>"
        for label, key, err in ROWS)
    meta = f"{res['graph']}, n = {res['n']}, method for V: {res['V_method']}"
    return (f"<table><caption>{meta}</caption><tr><th>quantity</th><th>value</th><th>error</th><th>method</th></tr>"
            f"{body}</table>")


def node_positions(kind: str, n: int) -> np.ndarray:
    """Where to draw the players: a lattice on its grid, a star with its centre in the middle,
    everything else on a circle."""
    if kind == "lattice":
        rows = int(round(np.sqrt(n)))
        q, r = np.divmod(np.arange(n), n // rows)
        return np.column_stack([r, -q]).astype(float)
    ang = 2 * np.pi * np.arange(n) / n
    pos = np.column_stack([np.cos(ang), np.sin(ang)])
    if kind == "star":
        pos[0] = 0.0
    return pos


class DistributedWorker:
    """One background thread computing ``explore`` for the newest request; ``submit`` cancels the
    computation in progress. ``apply(stage)`` is called on the event loop for each stage of the
    newest request; ``close`` ends the thread."""

    def __init__(self, apply: Callable[[int, Stage], None], on_loop: Callable[[Callable[[], None]], None]) -> None:
        self._apply, self._on_loop = apply, on_loop
        self._requests: queue.Queue[tuple[int, dict] | None] = queue.Queue()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self.generation = 0
        self._thread = threading.Thread(target=self._loop, name="mfc-distributed", daemon=True)
        self._thread.start()

    def submit(self, case: dict) -> int:
        """Compute ``case`` next, cancelling what runs; returns the request's number."""
        with self._lock:
            self.generation += 1
            self._cancel.set()
            self._requests.put((self.generation, case))
            return self.generation

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self.generation += 1
            self._cancel.set()
        self._requests.put(None)
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            generation, spec = request
            if generation != self.generation:
                continue  # a newer request is waiting
            self._cancel.clear()
            try:
                stages = explore(parse_case(spec), cancel=self._cancel)
                for stage in stages:
                    self._publish(generation, stage)
            except (CaseError, ValueError) as err:
                self._publish(generation, Stage("error", 0.0, str(err)))

    def _publish(self, generation: int, stage: Stage) -> None:
        def apply() -> None:
            if generation == self.generation:  # still the newest request
                self._apply(generation, stage)
        if generation == self.generation:
            self._on_loop(apply)


def _draw_graph(data: tuple[np.ndarray, np.ndarray]) -> hv.Overlay:
    """The players (placed by ``node_positions``) and the edges of W, framed around the players."""
    pos, seg = data
    low, high = (pos.min(0), pos.max(0)) if len(pos) else (np.zeros(2) - 1, np.zeros(2) + 1)
    pad = 0.1 * float(max((high - low).max(), 1.0))
    return (hv.Segments(seg, kdims=["x0", "y0", "x1", "y1"]).opts(color="gray", alpha=0.5)
            * hv.Points(pos, kdims=["x", "y"]).opts(size=6, color="navy")).opts(
        width=320, height=320, xaxis=None, yaxis=None, title="graph W",
        xlim=(low[0] - pad, high[0] + pad), ylim=(low[1] - pad, high[1] + pad))


def _draw_curves(data: Any) -> hv.Overlay:
    """Gap and bound against n on log axes. The empty first frame has the same two labelled curves
    and log axes as every later one (Bokeh cannot change an axis' type later, and a frame of other
    curves would be drawn as new, separate renderers)."""
    ns, gap, bound = (np.array([1.0, 2.0]), np.full(2, np.nan), np.full(2, np.nan)) if data is None else (
        data.ns, data.gap, data.bound)
    how = "" if data is None else {"closed_form": " (closed forms)", "elimination": " (V exact by elimination)",
                                   "quadratic_twin": " (quadratic twin)"}[data.method]
    values = np.concatenate([gap, bound])
    values = values[values > 0]
    ylim = (values.min() / 2, values.max() * 2) if len(values) else (1e-3, 1.0)
    return (hv.Curve((ns, gap), "n", "value", label="V_dstr - V")
            * hv.Curve((ns, bound), "n", "value", label="bound").opts(line_dash="dashed")
            ).opts(hv.opts.Curve(logx=True, logy=True),
                   hv.opts.Overlay(**PLOT, title="gap and bound vs n" + how, ylim=ylim,
                                   xlim=(ns.min() / 1.2, ns.max() * 1.2),
                                   legend_position="bottom_left", logx=True, logy=True))


def _draw_paths(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> hv.Overlay:
    """Sample paths of player 1 against time, under the full-information and the distributed optimal
    controls: one NaN-separated path per control, so every frame has the same two renderers."""
    t, xf, xd = data
    return (hv.Path([_lines(t, xf)], kdims=["t", "X"], label="full information").opts(color="#1f77b4", alpha=0.6)
            * hv.Path([_lines(t, xd)], kdims=["t", "X"], label="distributed").opts(color="#ff7f0e", alpha=0.6)
            ).opts(**PLOT, title="player 1: full-info (blue) vs distributed (orange)", legend_position="top_left")


def _lines(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(T, K) sample paths at times t -> one (K (T + 1), 2) array of (t, x), paths separated by NaN."""
    T, K = x.shape
    out = np.full((K, T + 1, 2), np.nan)
    out[:, :T, 0], out[:, :T, 1] = t, x.T
    return out.reshape(-1, 2)


def _draw_marginals(data: Any, value: int) -> hv.Overlay:
    """Histograms of player 1's state in the particle system and in its independent projection at
    the chosen time (both empty until the projection is computed)."""
    if data is None:
        edges, hx, hy, title = np.array([0.0, 1.0]), np.zeros(1), np.zeros(1), "marginals (computing ...)"
    else:
        k = min(value, len(data.times) - 1)
        X, Y = data.X, data.Y
        edges = np.linspace(min(X.min(), Y.min()), max(X.max(), Y.max()), 41)
        hx = np.histogram(X[k][:, 0], edges, density=True)[0]
        hy = np.histogram(Y[k][:, 0], edges, density=True)[0]
        title = f"marginals at t = {data.times[k]:.2f}"
    return (hv.Histogram((edges, hx), kdims=["x"], vdims=["density"], label="X¹ particle system").opts(alpha=0.5)
            * hv.Histogram((edges, hy), kdims=["x"], vdims=["density"], label="Y¹ independent projection").opts(alpha=0.5)
            ).opts(**PLOT, title=title, legend_position="top_left")


def distributed_tab() -> pn.viewable.Viewable:
    """Build the tab (a Panel layout) with its own case model and worker."""
    case = DistributedCase()
    sliders = {name: {"throttled": True} for name, p in case.param.objects().items() if isinstance(p, param.Number)}
    widgets = pn.Param(case, widgets={**sliders, "graph": {"type": pn.widgets.Select, "css_classes": ["distributed-graph"]}},
                       show_name=False, sizing_mode="stretch_width")
    progress = pn.indicators.Progress(name="progress", value=0, max=100, width=250, height=20)
    status = pn.pane.Markdown("", css_classes=["distributed-status"])
    table = pn.pane.HTML("<table><tr><td>computing…</td></tr></table>", css_classes=["distributed-table"], width=560)
    graph_pipe = hv.streams.Pipe(data=(np.zeros((0, 2)), np.zeros((0, 4))))
    curve_pipe = hv.streams.Pipe(data=None)
    path_pipe = hv.streams.Pipe(data=(np.array([0.0]), np.zeros((1, 1)), np.zeros((1, 1))))
    proj_pipe = hv.streams.Pipe(data=None)
    frame = pn.widgets.Player(name="t index", start=0, end=10, value=10, interval=400, loop_policy="loop", width=300)
    doc = pn.state.curdoc

    def on_loop(fn: Callable[[], None]) -> None:
        """Run fn on the document's event loop (directly when there is no server document)."""
        if doc is None or doc.session_context is None:
            fn()
        else:
            doc.add_next_tick_callback(fn)

    def apply(generation: int, stage: Stage) -> None:
        progress.value = int(100 * stage.progress)
        if stage.name == "error":
            status.object = f"**error:** {stage.data}"
        elif stage.name == "values":
            table.object = results_html(stage.data)
            pos = node_positions(case.graph, case.n)
            edges = worker_model[0].edges[:, :2].astype(int) if worker_model else np.zeros((0, 2), int)
            graph_pipe.send((pos, np.column_stack([pos[edges[:, 0]], pos[edges[:, 1]]])))
            status.object = "values done; gap vs n…"
        elif stage.name == "gap":
            curve_pipe.send(stage.data)
            status.object = "gap vs n done; sample paths…"
        elif stage.name == "paths":
            path_pipe.send(stage.data)
            status.object = "sample paths done; independent projection…"
        elif stage.name == "projection":
            proj_pipe.send(stage.data)
            status.object = f"done: mean W2² of marginals at T = {stage.data.w2[-1]:.3g}"

    worker_model: list[Any] = []
    worker = DistributedWorker(apply, on_loop)

    def run(*_: Any) -> None:
        spec = case.case_dict()
        progress.value = 0
        try:
            worker_model[:] = [parse_case(spec).model]
        except CaseError as err:
            status.object = f"**error:** {err}"
            return
        status.object = "values…"
        worker.submit(spec)

    case.param.watch(run, [name for name in case.param if name != "name"])
    if doc is not None and doc.session_context is not None:
        pn.state.on_session_destroyed(lambda _ctx: worker.close(timeout=2.0))
    plots = pn.Row(pn.pane.HoloViews(live(hv.DynamicMap(_draw_graph, streams=[graph_pipe])), css_classes=["graph-plot"]),
                   pn.pane.HoloViews(live(hv.DynamicMap(_draw_curves, streams=[curve_pipe])), css_classes=["gap-plot"]))
    plots2 = pn.Row(pn.pane.HoloViews(live(hv.DynamicMap(_draw_paths, streams=[path_pipe])), css_classes=["paths-plot"]),
                    pn.Column(pn.pane.HoloViews(live(hv.DynamicMap(_draw_marginals, streams=[
                        proj_pipe, hv.streams.Params(frame, ["value"])])), css_classes=["marginals-plot"]),
                              frame))
    controls = pn.Column("### Distributed control", widgets, progress, status, width=280)
    layout = pn.Row(controls, pn.Column(table, plots, plots2))
    layout.worker = worker  # for tests and the session's clean-up
    run()
    return layout
