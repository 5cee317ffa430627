"""The polygon obstacle (added through the registry alone): its depth against closed forms, its
penalty against eq. (59) on a fine regular polygon, its gradient, the closed forms of convex polygons
(values, gradients, Hessians) against the general construction, validation, a solve and the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from solver import ProblemError, problem_from_dict, solve
from solver.costs import Circle, Polygon
from solver.costs.obstacles import deepest_along
from solver.costs.polygon import segment_depth_on_lines
from solver.kernels import second_order
from solver.optimizers import _batched_hessian

SQUARE = Polygon(np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 1.0], [0.0, 1.0]]))


def test_depth_of_a_rectangle():
    """Inside: the distance to the nearest side; outside: minus the distance to the nearest side or corner."""
    pts = np.array([[1.0, 0.5], [0.2, 0.5], [1.9, 0.95], [3.0, 0.5], [3.0, 2.0], [-1.0, -1.0]])
    want = [0.5, 0.2, 0.05, -1.0, -np.hypot(1.0, 1.0), -np.hypot(1.0, 1.0)]
    assert SQUARE.depth(pts) == pytest.approx(want, abs=1e-15)
    # the inradius comes from a grid search refined tenfold (spacing (2/63) 16^-9, far below 1e-9)
    assert SQUARE.center == pytest.approx([1.0, 0.5]) and SQUARE._inradius == pytest.approx(0.5, abs=1e-9)


def test_a_fine_regular_polygon_has_the_penalty_of_a_disc():
    """s (2 rho - s) is eq. (59) for a disc; a regular 400-gon of circumradius r = 0.7 differs from the
    disc by r (1 - cos(pi/400)) < 2.2e-5 in depth and inradius, so by less than 2 (2r) 2.2e-5 < 7e-5
    in the penalty."""
    theta = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    poly = Polygon(np.column_stack([np.cos(theta), np.sin(theta)]) * 0.7 + [1.0, 1.0])
    disc = Circle(np.array([1.0, 1.0]), 0.7)
    pts = torch.as_tensor(np.random.default_rng(0).uniform(0.0, 2.0, (2000, 2)))
    assert float((poly.penalty(pts) - disc.penalty(pts)).abs().max()) < 7e-5
    assert float(disc.penalty(pts).max()) > 0.4  # points deep inside were drawn


def test_penalty_gradient_is_exact_inside():
    """Away from the boundary and from the medial axis (where the nearest side changes) the penalty is
    smooth: autograd against central differences."""
    pts = torch.tensor([[0.3, 0.6], [1.7, 0.2], [0.6, 0.85]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: SQUARE.penalty(p), (pts,), eps=1e-7, atol=1e-7)


BASE = {"source": {"points": [[0.0, 0.0], [0.0, 1.0]]}, "target": {"kind": "particles", "points": [[3, 0], [3, 1]]}}


@pytest.mark.parametrize("vertices, message", [
    ([[0, 0], [1, 0]], "needs at least 3 corners"),
    ([[0, 0], [2, 2], [2, 0], [0, 1]], "edges 0 and 2 cross"),
    ([[0, 0], [1, 1], [2, 2]], "enclose no area"),
    ([[1, 0], [2, 0], [2, 0], [2, 1], [1, 1]], "corners 1 and 2 are the same point"),
    ([[0, 0], [1, 0], [1]], "rows of equal length"),
])
def test_bad_polygons_give_one_line(vertices, message):
    with pytest.raises(ProblemError) as err:
        problem_from_dict(dict(BASE, obstacles=[{"kind": "polygon", "vertices": vertices}]))
    assert err.value.field == "obstacles[0].vertices" and message in str(err.value)


def wall_problem(**changes):
    """A 4 x 4 grid pushed through a thin wall with a gap: two polygons block all but the gap."""
    g = np.stack(np.meshgrid(np.linspace(0, 0.3, 4), np.linspace(0, 0.3, 4)), -1).reshape(-1, 2)
    walls = [{"kind": "polygon", "vertices": [[1.0, -1.5], [1.2, -1.5], [1.2, 0.0], [1.0, 0.0]]},
             {"kind": "polygon", "vertices": [[1.0, 0.3], [1.2, 0.3], [1.2, 1.8], [1.0, 1.8]]}]
    spec = {"source": {"points": g.tolist()}, "target": {"kind": "particles", "points": (g + [2, 0]).tolist()},
            "obstacles": walls, "eps": 0.01, "M": 11, "optimizer": {"time_limit": 30}}
    return dict(spec, **changes)


def test_paths_go_through_the_gap():
    p = problem_from_dict(wall_problem())
    r = solve(p)
    # eq. (59)-style penalties are soft: 1e-3 is the depth the acceptance criteria allow at time points
    assert p.obstacles.depth(r.positions).max() < 1e-3
    assert r.final.energies["nonlocal"] < 0.05  # and the particles still reach the target


def test_polygon_through_the_command_line(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps(wall_problem(M=5, optimizer={"time_limit": 10})))
    res = subprocess.run([sys.executable, "-m", "solver", "solve", str(tmp_path / "p.json"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "max_obstacle_depth" in summary and summary["obstacle"] >= 0


def test_the_smoothing_scales_with_the_inradius():
    """The obstacle penalty's smoothing is relative to its peak, the smallest inradius squared: for a
    0.5 x 2 wall (inradius 0.25, size 1.03) 0.25^2, not 1.03^2, which let the continuation's widest band
    (30 times the smoothing) exceed the whole penalty; with a disc of radius 0.2 beside it, 0.2^2."""
    wall = {"kind": "polygon", "vertices": [[1.5, -0.5], [2.0, -0.5], [2.0, 1.5], [1.5, 1.5]]}
    spec = {"source": {"points": [[0.0, 0.0], [0.0, 1.0]]},
            "target": {"kind": "particles", "points": [[3.0, 0.0], [3.0, 1.0]]}, "obstacles": [wall]}
    obstacles = problem_from_dict(spec).obstacles
    assert obstacles.smoothing(1.0) == pytest.approx(0.25**2, rel=1e-8)  # the inradius to the grid's 1e-9
    assert 30 * obstacles.smoothing(2.5e-3) < 0.25**2  # the widest band lies within the peak
    spec["obstacles"] = [wall, {"center": [1.0, 2.0], "radius": 0.2}]
    assert problem_from_dict(spec).obstacles.smoothing(1.0) == pytest.approx(0.04, rel=1e-12)


CONVEX = [Polygon(np.array([[0.2, 0.1], [0.9, 0.2], [0.7, 0.8], [0.3, 0.6]])),
          Polygon(np.array([[1.0, 0.0], [1.4, 0.0], [1.4, 1.2], [1.0, 1.2]]))]


def edge_distance_penalties(polygons, y, smoothing):
    """The penalties at the points and along the segments of paths y (N, M, 2) by the general
    construction (distances to the edges themselves, each segment's deepest point by ``deepest_along``'s
    search), which non-convex polygons use: the reference for the closed forms of convex ones."""
    a, b = y[:, :-1], y[:, 1:]
    points = sum(p.penalty(y, smoothing) for p in polygons)
    segments = sum(p.penalty_along(a, b, torch.as_tensor(deepest_along(p.depth, a.detach().numpy(), b.detach().numpy())),
                                   smoothing) for p in polygons)
    return points, segments


@pytest.mark.parametrize("smoothing", [0.0, 0.01])
def test_convex_closed_forms_equal_the_edge_distances(smoothing):
    """Inside a convex polygon the distance to the boundary is the least distance to the edges' lines, so
    the closed forms (values, and gradients through ``closed_form``) equal the general construction, on
    random paths crossing a quadrilateral and a rectangle: to rounding (1e-13 of the largest), with
    segments whose deepest point is a crossing of two lines among them."""
    torch.manual_seed(1)
    y = (torch.rand(40, 7, 2, dtype=torch.float64) * 1.6).requires_grad_(True)
    points, segments = edge_distance_penalties(CONVEX, y, smoothing)
    closed_points = Polygon.penalty_of(CONVEX, y, smoothing)
    closed_segments = Polygon.segment_penalty_of(CONVEX, y[:, :-1], y[:, 1:], smoothing)
    scale = float(segments.detach().abs().max())
    assert scale > 0.05  # the paths do enter the polygons
    assert float((closed_points - points).detach().abs().max()) <= 1e-13 * scale
    assert float((closed_segments - segments).detach().abs().max()) <= 1e-13 * scale
    reference = torch.autograd.grad(points.sum() + segments.sum(), y)[0]
    closed = torch.autograd.grad(closed_points.sum() + closed_segments.sum(), y)[0]
    assert float((closed - reference).abs().max()) <= 1e-13 * float(reference.abs().max())
    crossing = segment_depth_on_lines(CONVEX[0], y[:, :-1].detach(), y[:, 1:].detach())
    assert int((crossing.tied & (crossing.depth > 0)).sum()) >= 10  # deepest points on two lines' crossing


@pytest.mark.parametrize("smoothing", [0.0, 0.01])
def test_convex_hessians_equal_automatic_differentiation(smoothing):
    """``convex_hessians`` (each trajectory's Hessian at its points and along its segments, crossings of
    two lines included) against double backward through the general construction: equal to rounding
    (1e-12 of the largest entry); a non-convex polygon has none (``hessians_of`` is None)."""
    torch.manual_seed(2)
    N, M = 40, 7
    y = torch.rand(N, M, 2, dtype=torch.float64) * 1.6
    V = 2 * M
    with second_order():
        tangents = torch.eye(V, dtype=torch.float64).reshape(V, 1, M, 2).expand(V, N, M, 2).contiguous()
        columns = _batched_hessian(lambda q: sum(t.sum() for t in edge_distance_penalties(CONVEX, q, smoothing)),
                                   y, tangents)
    automatic = columns.reshape(V, N, V).permute(1, 2, 0)
    assert float(automatic.abs().max()) > 1.0
    closed = Polygon.hessians_of(CONVEX, y, smoothing, segments=True)
    assert float((closed - automatic).abs().max()) <= 1e-12 * float(automatic.abs().max())
    ell = Polygon(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.4], [0.4, 0.4], [0.4, 1.0], [0.0, 1.0]]))
    assert not ell._convex and Polygon.hessians_of([ell, *CONVEX], y, smoothing) is None


def test_a_non_convex_polygon_keeps_the_edge_distances():
    """An L-shaped polygon (its inner corner is the nearest boundary point of points near it) beside a
    convex one: ``penalty_of`` and ``segment_penalty_of`` are the general construction for it and the
    closed forms for the other, to rounding."""
    ell = Polygon(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.4], [0.4, 0.4], [0.4, 1.0], [0.0, 1.0]]))
    torch.manual_seed(3)
    y = torch.rand(30, 5, 2, dtype=torch.float64) * 1.5
    shapes = [ell, CONVEX[1]]
    points, segments = edge_distance_penalties(shapes, y, 0.01)
    assert float(points.max()) > 0.01 and float(segments.max()) > 0.01
    assert torch.allclose(Polygon.penalty_of(shapes, y, 0.01), points, rtol=0, atol=1e-15)
    assert torch.allclose(Polygon.segment_penalty_of(shapes, y[:, :-1], y[:, 1:], 0.01), segments, rtol=0, atol=1e-15)
