"""The "Distributed control" tab: V, V_dstr, V_det and the bounds for a chosen n, T, U, K and graph,
the graph, gap and bound against n, sample paths under both optimal controls, and the marginals of a
particle system against its independent projection. Computations run in a background thread; the
page is updated only through HoloViews Pipes and Panel object parameters, scheduled on the
document's event loop."""
from __future__ import annotations

import threading
from typing import Any, Callable

import holoviews as hv
import numpy as np
import panel as pn

from solver.distributed.case import Case, CaseError, Options, parse_case
from solver.distributed.cavi import cavi
from solver.distributed.controls import (GaussianDistributedDrift, GaussianFullInfoDrift, GridDistributedDrift,
                                         QuadratureFullInfoDrift, simulate_paths)
from solver.distributed.projection import PairDrift, independent_projection
from solver.distributed.quadratic import gaussian_values
from solver.distributed.sweep import gap_curve
from solver.distributed.values import compute

hv.extension("bokeh")

GRAPHS = {"ring": ("ring", "none"), "complete 1/n": ("complete", "1/n"), "complete 1/(n-1)": ("complete", "1/(n-1)"),
          "random d-regular": ("regular", "none"), "Erdos-Renyi": ("erdos_renyi", "none"), "star": ("star", "none"),
          "2-D lattice": ("lattice", "none")}
ROWS = [("V", "V", "V_err"), ("V_dstr", "V_dstr", "V_dstr_err"), ("V_det", "V_det", "V_det_err"),
        ("V_dstr - V", "gap", None), ("bound (general RHS)", "bound", None),
        ("(T²/2n)‖K''‖² tr(J²)", "bound_trace", None), ("V_det bound", "bound_det", None), ("mean-field V̄", "V_mf", None)]


def results_html(res: dict[str, Any]) -> str:
    """The results table as HTML (one row per quantity, error estimates beside values)."""
    body = "".join(
        f"<tr><td>{label}</td><td data-key='{key}'>{res[key]:.10g}</td>"
        f"<td>{'' if err is None else ('exact' if res[err] == 0 else f'± {res[err]:.2g}')}</td></tr>"
        for label, key, err in ROWS)
    meta = f"{res['graph']}, n = {res['n']}, method for V: {res['V_method']}"
    return f"<table><caption>{meta}</caption><tr><th>quantity</th><th>value</th><th>error</th></tr>{body}</table>"


def node_positions(kind: str, n: int) -> np.ndarray:
    """Lattice on its grid, star with the centre in the middle, everything else on a circle."""
    if kind == "lattice":
        rows = int(round(np.sqrt(n)))
        q, r = np.divmod(np.arange(n), n // rows)
        return np.column_stack([r, -q]).astype(float)
    ang = 2 * np.pi * np.arange(n) / n
    pos = np.column_stack([np.cos(ang), np.sin(ang)])
    if kind == "star":
        pos[0] = 0.0
    return pos


def distributed_tab() -> pn.viewable.Viewable:
    """Build the tab (a Panel layout)."""
    n = pn.widgets.IntSlider(name="n", start=2, end=400, value=20)
    T = pn.widgets.FloatInput(name="T", value=1.0, start=0.05, step=0.1)
    u_kind = pn.widgets.Select(name="U", options=["quadratic", "logcosh"], value="quadratic")
    a = pn.widgets.FloatInput(name="U: a", value=1.0, start=0.0, step=0.1)
    b = pn.widgets.FloatInput(name="U: b", value=0.5, step=0.1)
    c = pn.widgets.FloatInput(name="U: c (logcosh)", value=1.0, start=0.0, step=0.1)
    k_kind = pn.widgets.Select(name="K", options=["quadratic", "logcosh"], value="quadratic")
    kappa = pn.widgets.FloatInput(name="K: kappa", value=1.0, start=0.0, step=0.1)
    graph = pn.widgets.Select(name="graph", options=list(GRAPHS), value="ring", css_classes=["distributed-graph"])
    normalize = pn.widgets.Select(name="normalize", options=["as named", "none", "row"], value="row")
    d = pn.widgets.IntInput(name="d (regular)", value=4, start=1)
    p = pn.widgets.FloatInput(name="p (Erdos-Renyi)", value=0.2, start=0.0, end=1.0, step=0.05)
    seed = pn.widgets.IntInput(name="seed", value=0, start=0)
    progress = pn.indicators.Progress(name="progress", value=0, max=100, width=250, height=20)
    status = pn.pane.Markdown("")
    table = pn.pane.HTML("<table><tr><td>computing…</td></tr></table>", css_classes=["distributed-table"], width=560)

    graph_pipe = hv.streams.Pipe(data=(np.zeros((0, 2)), np.zeros((0, 4))))
    curve_pipe = hv.streams.Pipe(data=None)
    path_pipe = hv.streams.Pipe(data=(np.array([0.0]), np.zeros((1, 1)), np.zeros((1, 1))))
    proj_pipe = hv.streams.Pipe(data=None)
    frame = pn.widgets.Player(name="t index", start=0, end=10, value=10, interval=400, loop_policy="loop", width=300)

    def draw_graph(data):
        pos, seg = data
        return (hv.Segments(seg, kdims=["x0", "y0", "x1", "y1"]).opts(color="gray", alpha=0.5)
                * hv.Points(pos).opts(size=6, color="navy")).opts(
            width=320, height=320, xaxis=None, yaxis=None, title="graph W")

    def draw_curves(data):
        if data is None:
            return (hv.Curve([], "n", "value") * hv.Curve([], "n", "value")).opts(
                width=380, height=320, title="gap and bound vs n")
        ns, gap, rhs = data
        return (hv.Curve((ns, gap), "n", "value", label="V_dstr - V").opts(logx=True, logy=True)
                * hv.Curve((ns, rhs), "n", "value", label="bound").opts(logx=True, logy=True, line_dash="dashed")
                ).opts(width=380, height=320, title="gap and bound vs n (quadratic twin)", legend_position="bottom_left")

    def draw_paths(data):
        t, xf, xd = data
        curves = [hv.Curve((t, xf[:, k]), "t", "X").opts(color="#1f77b4", alpha=0.6) for k in range(xf.shape[1])]
        curves += [hv.Curve((t, xd[:, k]), "t", "X").opts(color="#ff7f0e", alpha=0.6) for k in range(xd.shape[1])]
        return hv.Overlay(curves).opts(width=380, height=320, title="player 1: full-info (blue) vs distributed (orange)")

    def draw_marginals(data, value):
        if data is None:
            return hv.Overlay([hv.Histogram(([0.0, 1.0], [0.0]))]).opts(width=380, height=320)
        times, X, Y = data
        k = min(value, len(times) - 1)
        edges = np.linspace(min(X.min(), Y.min()), max(X.max(), Y.max()), 41)
        hx = np.histogram(X[k][:, 0], edges, density=True)[0]
        hy = np.histogram(Y[k][:, 0], edges, density=True)[0]
        return (hv.Histogram((edges, hx), kdims=["x"], vdims=["density"], label="X¹ particle system").opts(alpha=0.5)
                * hv.Histogram((edges, hy), kdims=["x"], vdims=["density"], label="Y¹ independent projection").opts(alpha=0.5)
                ).opts(width=380, height=320, title=f"marginals at t = {times[k]:.2f}", legend_position="top_left")

    plots = pn.Row(
        hv.DynamicMap(draw_graph, streams=[graph_pipe]),
        hv.DynamicMap(draw_curves, streams=[curve_pipe]),
    )
    plots2 = pn.Row(
        hv.DynamicMap(draw_paths, streams=[path_pipe]),
        pn.Column(hv.DynamicMap(draw_marginals, streams=[proj_pipe, hv.streams.Params(frame, ["value"])]), frame),
    )

    def case_dict() -> dict[str, Any]:
        kind, norm = GRAPHS[graph.value]
        if normalize.value != "as named" and not kind == "complete":
            norm = normalize.value
        U = {"kind": "quadratic", "a": a.value, "b": b.value} if u_kind.value == "quadratic" else \
            {"kind": "logcosh", "a": a.value, "c": c.value, "b": b.value}
        return {"n": n.value, "T": T.value, "U": U, "K": {"kind": k_kind.value, "kappa": kappa.value},
                "J": {"graph": kind, "normalize": norm, "d": d.value, "p": p.value, "seed": seed.value},
                "options": {"ais_particles": 600, "ais_temperatures": 100, "seed": seed.value}}

    lock = threading.Lock()
    generation = [0]

    def on_loop(doc, fn: Callable[[], None]) -> None:
        """Run fn on the document's event loop (directly when there is no server document)."""
        if doc is None or doc.session_context is None:
            fn()
        else:
            doc.add_next_tick_callback(fn)

    def work(spec: dict[str, Any], gen: int, doc) -> None:
        def publish(fn: Callable[[], None]) -> None:
            """Apply fn on the event loop unless a newer computation started or the session ended."""
            if gen == generation[0]:
                on_loop(doc, lambda: fn() if gen == generation[0] else None)

        def step(pct: int, msg: str) -> None:
            publish(lambda: (setattr(progress, "value", pct), setattr(status, "object", msg)))

        try:
            case: Case = parse_case(spec)
        except CaseError as exc:
            step(0, f"**error:** {exc}")
            return
        m = case.model
        step(10, "values…")
        res = compute(Case(m, Options(**spec["options"])))
        kind = spec["J"]["graph"]
        pos = node_positions(kind, m.n)
        E = m.edges[:, :2].astype(int)
        seg = np.column_stack([pos[E[:, 0]], pos[E[:, 1]]])
        publish(lambda: (setattr(table, "object", results_html(res)), graph_pipe.send((pos, seg))))
        step(40, "gap vs n…")
        ns = sorted({max(4, x) for x in (8, 16, 32, 64, 128, 256)} | {m.n if m.n >= 4 else 4})
        extra = {"d": spec["J"]["d"], "seed": spec["J"]["seed"]} if kind == "regular" else \
            {"p": spec["J"]["p"], "seed": spec["J"]["seed"]} if kind == "erdos_renyi" else {}
        try:
            curve = gap_curve(kind, ns, T=m.T, a=spec["U"]["a"], b=spec["U"]["b"], kappa=spec["K"]["kappa"],
                              normalize_mode=spec["J"]["normalize"], **extra)
            publish(lambda: curve_pipe.send((curve.ns, curve.gap, curve.bound)))
        except ValueError:
            pass
        step(60, "sample paths…")
        if m.quadratic:
            g = gaussian_values(m)
            full, dstr = GaussianFullInfoDrift.from_model(m), GaussianDistributedDrift(m.T, np.full(m.n, g.mean), g.var_dstr)
        else:
            full = QuadratureFullInfoDrift(m) if m.n <= 3 else None
            dstr = GridDistributedDrift.from_cavi(m, cavi(m))
        t, xd = simulate_paths(m, dstr, steps=100, paths=8, seed=seed.value)
        xf = simulate_paths(m, full, steps=100, paths=8, seed=seed.value)[1] if full is not None else xd[:, :0]
        publish(lambda: path_pipe.send((t, xf[:, :, 0], xd[:, :, 0])))
        step(80, "independent projection…")
        pr = independent_projection(m.graph.J, PairDrift(a.value, b.value, kappa.value, "tanh"), m.T, 50,
                                    samples=2000, records=11, seed=seed.value)
        publish(lambda: proj_pipe.send((pr.times, pr.X, pr.Y)))
        step(100, f"done: mean W2² of marginals at T = {pr.w2[-1]:.3g}")

    def run(*_: Any) -> None:
        with lock:
            generation[0] += 1
            gen = generation[0]
        progress.value = 0
        threading.Thread(target=work, args=(case_dict(), gen, pn.state.curdoc), daemon=True).start()

    def cancel(_: Any) -> None:
        generation[0] = -1

    if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
        pn.state.on_session_destroyed(cancel)
    for w in (n, T, u_kind, a, b, c, k_kind, kappa, graph, normalize, d, p, seed):
        w.param.watch(run, "value")
    controls = pn.Column("### Distributed control", n, T, u_kind, a, b, c, k_kind, kappa, graph, normalize, d, p, seed,
                         progress, status, width=260)
    layout = pn.Row(controls, pn.Column(table, plots, plots2))
    run()
    return layout


if __name__.startswith("bokeh"):
    distributed_tab().servable()
