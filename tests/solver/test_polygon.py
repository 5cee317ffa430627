"""The polygon obstacle (added through the registry alone): its depth against closed forms, its
penalty against eq. (59) on a fine regular polygon, its gradient, validation, a solve and the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from solver import ProblemError, problem_from_dict, solve
from solver.costs import Circle, Polygon

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
