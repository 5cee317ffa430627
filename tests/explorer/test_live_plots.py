"""The explorer's live plots follow their data (no browser): the energy and landscape figures after a
write, the distributed tab's DynamicMaps rendered to Bokeh and fed through their streams; each checks
the figure's ranges and renderers. (Issue 11: the energy plot kept its first, empty frame's axes 0..1
while its sources held the curves.)"""
from __future__ import annotations

import time
from types import SimpleNamespace

import holoviews as hv
import numpy as np
import pandas as pd
import pytest

from explorer import plots
from explorer.distributed_tab import _draw_curves, _draw_graph, _draw_marginals, _draw_paths
from explorer.views import EnergyLayers, LandscapeLayers, contour_path

hv.extension("bokeh")


def render(callback, data, *extra):
    """The Bokeh figure of a live DynamicMap fed by a Pipe starting at ``data``, and the Pipe."""
    pipe = hv.streams.Pipe(data=data)
    dmap = plots.live(hv.DynamicMap(callback, streams=[pipe, *extra]))
    return hv.renderer("bokeh").get_plot(dmap).state, pipe


def covers(rng, values) -> bool:
    """The range spans the finite values (a range can be padded, never narrower)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return rng.start <= v.min() and rng.end >= v.max()


def test_energy_plot_axes_follow_the_solve_and_skip_zero_terms():
    layers = EnergyLayers()
    fig = layers.figure
    renderers_before = len(fig.renderers)
    it = np.arange(1.0, 500.0)
    frame = pd.DataFrame({"iteration": it, "objective": 3 + 1 / it, "kinetic": 2 + 0 * it, "nonlocal": 1 / it,
                          "obstacle": 0 * it,  # no obstacles: an all-zero term, left out on a log axis
                          "best": 3 + 1 / it})
    started = time.perf_counter()
    layers.show(frame)
    print(f"one energy update: {1000 * (time.perf_counter() - started):.1f} ms on the event loop")
    assert covers(fig.x_range, it) and fig.x_range.end > 1  # the issue: stuck at 0..1
    assert covers(fig.y_range, np.r_[frame["objective"], frame["nonlocal"]])
    assert fig.y_range.start > 0  # log axis: a zero term must not drag the range to 0
    assert len(fig.renderers) == renderers_before  # updated in place, not drawn as new glyphs
    ys = [np.asarray(r.data_source.data["energy"], dtype=float) for r in fig.renderers]
    # total, kinetic, nonlocal; no obstacle; the best so far (dashed)
    assert [np.isfinite(y).sum() for y in ys] == [len(it)] * 3 + [0, len(it)]
    assert fig.renderers[-1].glyph.line_dash == [6] and fig.legend[0].items[-1].label.value == "best so far"
    assert np.array_equal(ys[0], frame["objective"].to_numpy())


def test_landscape_writes_the_slice_into_its_plot_quickly():
    layers = LandscapeLayers()
    fig = layers.figure
    assert fig.title.text.startswith("Loss landscape: shown during")
    a = np.linspace(-0.3, 0.3, 21)
    b = np.linspace(-2.0, 5.0, 21)
    E = np.add.outer(b, 2 * a) ** 2 + 1.0  # E[j, i] at (a[i], b[j])
    path = np.array([[0.1, 4.0], [0.05, 2.0], [0.0, 0.0]])
    started = time.perf_counter()
    layers.show({"a": a, "b": b, "E": E, "path": path})
    took = time.perf_counter() - started
    print(f"one landscape update: {1000 * took:.1f} ms on the event loop")
    assert covers(fig.x_range, a) and covers(fig.y_range, b)
    assert fig.title.text == "Loss landscape at the iterate"
    assert np.array_equal(layers.sources["image"].data["image"][0], E)
    assert (layers.color_mapper.low, layers.color_mapper.high) == (E.min(), E.max())
    contours = layers.sources["contours"].data
    assert np.isfinite(np.asarray(contours["xs"][0], dtype=float)).sum() > 50  # the level lines
    trail = layers.sources["path"].data
    assert np.array_equal(trail["xs"][0], path[:, 0]) and np.array_equal(trail["ys"][0], path[:, 1])
    layers.show({"error": "ValueError: no"})
    assert fig.title.text == "Loss landscape unavailable: ValueError: no"


def test_contour_lines_lie_on_their_levels():
    a = np.linspace(-1.0, 1.0, 41)
    E = np.add.outer(a**2, a**2)  # E = a² + b²: circles
    lines = contour_path(a, a, E, levels=3)
    radii = np.hypot(lines[:, 0], lines[:, 1])
    radii = radii[np.isfinite(radii)]
    levels = np.linspace(0.0, 2.0, 5)[1:-1]  # 0.5, 1, 1.5: circles of radius sqrt(level) where inside
    nearest = np.abs(radii[:, None] ** 2 - levels[None, :]).min(axis=1)
    assert nearest.max() < 2e-3  # linear interpolation on a 0.05 grid: error ~ h²/4 of E's curvature
    assert len(contour_path(a, a, np.ones((41, 41)), levels=3)) == 0  # a flat slice has no lines


def test_distributed_graph_is_framed_around_its_players():
    fig, pipe = render(_draw_graph, (np.zeros((0, 2)), np.zeros((0, 4))))
    pos = np.column_stack([np.linspace(3.0, 8.0, 10), np.linspace(-4.0, -1.0, 10)])
    pipe.send((pos, np.column_stack([pos[:-1], pos[1:]])))
    assert covers(fig.x_range, pos[:, 0]) and covers(fig.y_range, pos[:, 1])
    # framed: the players fill most of the plot, not one corner of a fixed box
    assert fig.x_range.end - fig.x_range.start < 2 * (pos[:, 0].max() - pos[:, 0].min())


def test_distributed_gap_plot_draws_its_two_curves_in_place():
    fig, pipe = render(_draw_curves, None)
    count = len(fig.renderers)
    ns = np.array([2.0, 4.0, 8.0, 16.0])
    pipe.send(SimpleNamespace(ns=ns, gap=0.1 / ns, bound=0.3 / ns, method="elimination"))
    assert len(fig.renderers) == count == 2
    assert fig.title.text == "gap and bound vs n (V exact by elimination)"
    assert covers(fig.x_range, ns) and covers(fig.y_range, np.r_[0.1 / ns, 0.3 / ns])
    assert [list(r.data_source.data["n"]) for r in fig.renderers] == [list(ns)] * 2


@pytest.mark.parametrize("players", [3, 7])
def test_distributed_paths_and_marginals_follow_their_data(players):
    t = np.linspace(0.0, 2.0, 21)
    fig, pipe = render(_draw_paths, (np.array([0.0]), np.zeros((1, 1)), np.zeros((1, 1))))
    xf = np.cumsum(np.ones((21, players)), axis=0) * 0.5
    pipe.send((t, xf, -xf))
    assert len(fig.renderers) == 2
    assert covers(fig.x_range, t) and covers(fig.y_range, np.r_[xf.ravel(), -xf.ravel()])
    time_index = hv.streams.Stream.define("TimeIndex", value=0)()
    fig, pipe = render(_draw_marginals, None, time_index)
    X = np.random.default_rng(0).normal(5.0, 1.0, (21, 400, players))
    pipe.send(SimpleNamespace(times=t, X=X, Y=X + 1.0))
    assert len(fig.renderers) == 2
    assert covers(fig.x_range, np.r_[X[0, :, 0], X[0, :, 0] + 1.0])
