"""Whole-path avoidance (``obstacle_segments``): the segment penalty's gradient, random scenes whose
piecewise-linear trajectories stay outside every obstacle, the obstacle-aware start, and Fig. 4's
objective unchanged when the option is off."""
from __future__ import annotations

import inspect
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from solver import problem_from_dict, solve
from solver.costs import Circle, Polygon
from solver.costs.obstacles import Obstacles, circle_hessians
from solver.init import Cancelled, around_obstacles, detour
from solver.kernels import second_order
from solver.objective import Objective
from solver.optimizers import _batched_hessian
from tests.problems import gaussian_samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shape", [Circle(np.array([0.5, 0.4]), 0.3),
                                   Polygon(np.array([[0.2, 0.1], [0.9, 0.2], [0.7, 0.8], [0.3, 0.6]]))],
                         ids=["circle", "polygon"])
def test_segment_penalty_gradient_matches_finite_differences(shape):
    """Segments crossing the shape (their deepest point strictly inside, away from kinks): autograd
    against central differences."""
    a = torch.tensor([[0.0, 0.35], [0.1, 0.9]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[1.0, 0.45], [0.9, -0.1]], dtype=torch.float64, requires_grad=True)
    value = type(shape).segment_penalty_of([shape], a, b)
    assert bool((value > 0).all())  # both segments enter the shape
    assert torch.autograd.gradcheck(lambda a, b: type(shape).segment_penalty_of([shape], a, b), (a, b),
                                    eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("smoothing", [0.0, 0.01])
def test_closed_form_disc_hessians_equal_automatic_differentiation(dim, smoothing):
    """``circle_hessians`` (each trajectory's Hessian of the disc penalty at its time points and along
    its segments) against double backward through ``penalty_sum`` and ``segment_penalty_of``, on random
    paths crossing two discs (points and segments inside, in the smoothed band and beyond it, segments
    whose nearest point is interior or an end), in 2-D and in 3-D with a 2-D disc (acting on the first
    two coordinates) beside a ball. Both are sums of the same closed-form terms: equal to rounding
    (1e-12 of the largest entry)."""
    torch.manual_seed(dim)
    N, M = 9, 7
    centres = [np.array([0.5, 0.5] + [0.5] * (dim - 2)), np.array([1.0, 0.4])]
    circles = [Circle(centres[0], 0.35), Circle(centres[1], 0.3)]
    pos = torch.rand(N, M, dim, dtype=torch.float64) * 1.5
    V = M * dim

    def penalty(y):
        pairs = Circle.segment_penalty_of(circles, y[:, :-1], y[:, 1:], smoothing)
        return Circle.penalty_of(circles, y, smoothing).sum() + pairs.sum()

    with second_order():
        tangents = torch.eye(V, dtype=torch.float64).reshape(V, 1, M, dim).expand(V, N, M, dim).contiguous()
        columns = _batched_hessian(penalty, pos, tangents)  # column k of every trajectory's block
    automatic = columns.reshape(V, N, V).permute(1, 2, 0)
    assert float(automatic.abs().max()) > 1.0  # the paths do enter the discs
    closed = circle_hessians(circles, pos, smoothing, segments=True)
    assert float((closed - automatic).abs().max()) <= 1e-12 * float(automatic.abs().max())


@pytest.mark.parametrize("dynamics", ["velocity", "acceleration"])
def test_own_hessians_with_discs_in_closed_form_equal_the_automatic_ones(dynamics, monkeypatch):
    """``own_hessians`` adds discs in closed form through the positions' Jacobian; without it (all by
    automatic differentiation, as for non-convex polygons, whose ``hessians_of`` is None) the blocks agree to rounding
    (1e-12 of the largest), under velocity control (positions are the variables) and acceleration
    control (positions are sums of the controls), on paths that cross the discs."""
    from solver import optimizers
    spec = {"source": {"points": [[0.0, 0.0], [0.1, 0.3], [-0.2, 0.1], [0.05, -0.2]]},
            "target": {"kind": "particles", "points": [[2.0, 0.1], [1.9, -0.2], [2.2, 0.3], [2.1, 0.0]]},
            # (the second disc's top is not at y = 0.1, where the straight path from (-0.2, 0.1) runs: a segment
            # exactly tangent to it sits on the smoothed penalty's kink, where the two Hessians may differ)
            "obstacles": [{"center": [1.0, 0.05], "radius": 0.3}, {"center": [0.6, -0.08], "radius": 0.2}],
            "obstacle_segments": True, "eps": 0.05, "M": 9, "dynamics": {"kind": dynamics}}
    if dynamics == "acceleration":
        for key in ("source", "target"):
            spec[key]["velocities"] = [[1.0, 0.0]] * 4
    objective, _ = optimizers._working(Objective(problem_from_dict(spec)))
    x = optimizers.OTStart(blob=False).variables(Objective(objective.problem))  # straight: through the discs
    closed = optimizers.own_hessians(objective, x)
    monkeypatch.setattr(Obstacles, "hessians", lambda self, positions, smoothing=0.0: None)
    automatic = optimizers.own_hessians(objective, x)
    assert float((closed - automatic).abs().max()) <= 1e-12 * float(automatic.abs().max())
    assert float(objective.obstacle(objective.positions(x))) > 0  # the discs do act here


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("smoothing", [0.0, 0.01])
def test_fused_disc_penalties_equal_the_plain_expressions(dim, smoothing):
    """The discs' penalties at points and along segments with their closed-form gradients (an autograd
    Function, used outside ``second_order()``) against the plain expressions (inside it), on random
    paths crossing two discs: values and gradients equal to rounding (1e-13 of the largest)."""
    torch.manual_seed(10 + dim)
    circles = [Circle(np.array([0.5, 0.5] + [0.5] * (dim - 2)), 0.35), Circle(np.array([1.0, 0.4]), 0.3)]
    pos = (torch.rand(9, 7, dim, dtype=torch.float64) * 1.5).requires_grad_(True)

    def value_and_gradient():
        values = (Circle.penalty_of(circles, pos, smoothing),
                  Circle.segment_penalty_of(circles, pos[:, :-1], pos[:, 1:], smoothing))
        return values, torch.autograd.grad(sum(v.sum() for v in values), pos)[0]

    fused, fused_grad = value_and_gradient()
    with second_order():
        plain, plain_grad = value_and_gradient()
    assert float(plain_grad.abs().max()) > 1.0  # the paths do enter the discs
    for f, p in zip(fused, plain):
        assert torch.allclose(f, p, rtol=0, atol=1e-13 * float(p.detach().abs().max()))
    assert float((fused_grad - plain_grad).abs().max()) <= 1e-13 * float(plain_grad.abs().max())


def test_circle_segment_depth_is_exact():
    """The deepest point of a segment in a disc is its point closest to the centre."""
    c = Circle(np.array([0.0, 0.0]), 1.0)
    a, b = np.array([[-2.0, 0.5]]), np.array([[2.0, 0.5]])
    assert c.segment_depth(a, b) == pytest.approx([0.5], abs=1e-15)
    fine = np.linspace(0, 1, 100001)[:, None] * (b - a) + a
    assert c.depth(fine).max() == pytest.approx(0.5, abs=1e-9)  # sampling agrees to its resolution


def random_scene(seed: int, segments: bool) -> dict:
    """A blob of 40 particles, a target cloud, and three non-overlapping obstacles between them."""
    rng = np.random.default_rng(seed)
    source = rng.normal([0.0, 0.0], 0.15, (40, 2))
    target = rng.normal([2.0, 0.2], 0.15, (40, 2))
    obstacles = [{"kind": "circle", "center": [0.7, rng.uniform(-0.5, -0.1)], "radius": 0.22},
                 {"kind": "circle", "center": [1.0, rng.uniform(0.15, 0.5)], "radius": 0.22},
                 {"kind": "polygon", "vertices": [[1.35, -0.25], [1.55, -0.25], [1.55, 0.05], [1.35, 0.05]]}]
    return {"source": {"points": source.tolist()}, "target": {"kind": "particles", "points": target.tolist()},
            "obstacles": obstacles, "obstacle_segments": segments, "eps": 0.01, "M": 12,
            "optimizer": {"time_limit": 20}}


def deepest_sampled(p, positions: np.ndarray) -> float:
    """The deepest of 201 points per straight segment of the trajectories inside any obstacle."""
    t = np.linspace(0.0, 1.0, 201)[:, None, None, None]
    return float(p.obstacles.depth(positions[None, :, :-1] + t * (positions[None, :, 1:] - positions[None, :, :-1])).max())


@pytest.mark.parametrize("seed", [0, 1])
def test_whole_paths_stay_outside_every_obstacle(seed):
    """With whole-path avoidance no point of the piecewise-linear trajectories (sampled 200 times per
    segment) lies deeper than 1e-3 inside an obstacle (a soft penalty: 1e-3 is the bound asked)."""
    p = problem_from_dict(random_scene(seed, True))
    r = solve(p)
    pos = r.positions
    assert deepest_sampled(p, pos) < 1e-3
    assert p.obstacles.path_depth(pos) < 1e-3
    assert r.final.energies["nonlocal"] < 0.1  # and the particles still arrive


def test_the_obstacle_aware_start_goes_around():
    """Straight lines through the obstacles, bent: the start's paths are (nearly) outside, ends kept."""
    p = problem_from_dict(random_scene(0, True))
    objective = Objective(p)
    straight = p.init.variables(objective)
    before = objective.positions(straight).detach().numpy()
    bent = objective.positions(around_obstacles(objective, straight)).detach().numpy()
    assert p.obstacles.path_depth(before) > 0.1  # the straight start crosses them
    assert p.obstacles.path_depth(bent) < 0.02  # the bent one goes around (a penalty, not a constraint)
    assert np.abs(bent[:, -1] - before[:, -1]).max() < 1e-3  # terminal points pinned


def test_a_path_through_the_seam_of_two_overlapping_discs_is_moved_around_them():
    """Two discs overlapping along the x axis' normal: a straight path through their seam is pushed up by
    one and down by the other. ``detour`` moves it around the pair, ends kept."""
    spec = {"source": {"points": [[-1.0, 0.0]]}, "target": {"kind": "particles", "points": [[1.0, 0.0]]},
            "obstacles": [{"center": [0.0, 0.15], "radius": 0.2}, {"center": [0.0, -0.15], "radius": 0.2}],
            "obstacle_segments": True, "M": 11}
    p = problem_from_dict(spec)
    straight = np.linspace([-1.0, 0.0], [1.0, 0.0], 11)[None]
    moved = detour(p.obstacles, straight, 0.0)
    assert p.obstacles.path_depth(straight) == pytest.approx(0.05)  # r - 0.15 at the seam
    assert p.obstacles.path_depth(moved) <= 0.0
    assert np.abs(moved[:, [0, -1]] - straight[:, [0, -1]]).max() == 0.0
    assert np.abs(moved[0, :, 1]).max() > 0.35 - 1e-9  # around the pair: past 0.15 + 0.2


def test_a_crowd_through_a_gap_in_a_wall_of_discs_stays_out_of_the_wall():
    """The playful preset (80 particles, a wall of six overlapping discs with a gap, segments on): no
    segment deeper than 1e-3 in any disc after 15 s (before the seams were detoured: 4.7e-2)."""
    spec = json.loads((ROOT / "assets" / "playful" / "gap_in_a_wall.json").read_text())
    p = problem_from_dict(dict(spec, optimizer={"time_limit": 15}))
    assert p.obstacles.segments
    assert p.obstacles.path_depth(solve(p).positions) < 1e-3


def test_fig4_objective_is_unchanged_without_segments():
    """The published Fig. 4 trajectories, evaluated with the option off (the preset's default), give the
    published objective 16.16196 (paper-data README; its rounding: 5e-6)."""
    spec = json.loads((ROOT / "assets" / "fig4_obstacles.json").read_text())
    data = np.load(ROOT / "assets" / "paper-data" / "fig4_obstacles.npz")
    p = problem_from_dict(spec)
    assert not p.obstacles.segments
    positions = np.concatenate([data["z"][:, None, :], data["X"].transpose(0, 2, 1)], axis=1)
    objective = Objective(p)
    energies = objective.energies(objective.variables_from_positions(torch.as_tensor(positions)))
    assert float(energies["objective"]) == pytest.approx(16.16196, abs=5e-6)
    with_segments = problem_from_dict(dict(spec, obstacle_segments=True))
    more = Objective(with_segments).energies(objective.variables_from_positions(torch.as_tensor(positions)))
    assert float(more["obstacle"]) >= float(energies["obstacle"])  # segments only add penalty


def test_under_acceleration_control_the_drawn_paths_stay_outside_too():
    """Acceleration control (Fig. 5's dynamics): the positions are the discrete spline's knots and the
    explorer draws and exports the straight segments between them, so the same segment penalty keeps
    those out. Off, the converged segments cut a disc or the polygon (measured 5.8e-3 deep); on, none
    deeper than 1e-3 (sampled 200 times per segment)."""
    spec = {"source": {"points": [[0.0, 0.0], [0.1, 0.3], [-0.2, 0.1], [0.05, -0.2]],
                       "velocities": [[1.0, 0.0]] * 4},
            "target": {"kind": "particles", "points": [[2.0, 0.1], [1.9, -0.2], [2.2, 0.3], [2.1, 0.0]],
                       "velocities": [[1.0, 0.0]] * 4},
            "obstacles": [{"center": [1.0, 0.05], "radius": 0.3},
                          {"kind": "polygon", "vertices": [[0.5, 0.4], [0.8, 0.45], [0.7, 0.8]]}],
            "dynamics": {"kind": "acceleration"}, "eps": 0.05, "M": 9, "optimizer": {"time_limit": 30}}
    depths = {}
    for segments in (False, True):
        p = problem_from_dict(dict(spec, obstacle_segments=segments))
        depths[segments] = deepest_sampled(p, solve(p).positions)
    assert depths[False] > 1e-3  # the scene needs the option: its straight segments cut an obstacle
    assert depths[True] < 1e-3


@pytest.mark.parametrize("beyond", ["size", "interaction"])
def test_obstacle_problems_beyond_structured_newton_converge_by_the_plateau(beyond, monkeypatch):
    """Obstacle problems that structured Newton does not take (more than ``STRUCTURED_VARS`` terminal
    unknowns, here lowered so that 40 particles are beyond it; or interacting particles) are solved by
    L-BFGS, which now stops by the plateau rule: its last ``GLASSY_WINDOW`` iterations gained at most
    ``plateau`` of the (smoothed) objective it descends, while no particle moved farther than
    ``PLATEAU_MOVE`` times the cap. Before, it crawled on (the runs below: 4,883 and 7,589 iterations
    where they now take 1,254 and 3,166; 700 - 2,000 particles past a disc, 300 interacting ones: to
    their 60-90 s time limits), and the reassignment rounds that follow a local solve came late or never."""
    from solver import optimizers, trust_region
    from solver.trust_region import PLATEAU_MOVE

    spec = gaussian_samples(40, 3, obstacles=[{"center": [1.5, 0.8], "radius": 0.2}], optimizer={"time_limit": 60})
    if beyond == "size":
        monkeypatch.setattr(trust_region, "STRUCTURED_VARS", 10)  # read by structured_system_bytes
    else:
        spec["interaction"] = [{"kind": "gaussian", "strength": 0.1, "width": 0.1}]
    p = problem_from_dict(spec)
    objective = Objective(p)
    # the objective robust's local solves descend: the penalty's kink smoothed (on the raw penalty, on one
    # machine, L-BFGS crawled along the kink, steps of 1e-10 at a one-sided gradient of 23.7, until its
    # rtol rule stopped it, before the plateau)
    work, _ = optimizers._working(objective)
    x = around_obstacles(objective, p.init.variables(objective))
    steps = list(optimizers._local(work, x, p.optimizer, "local", 0, 0))
    window = optimizers.GLASSY_WINDOW
    assert steps[-1].status == "converged" and len(steps) > window
    f = [s.energies["objective"] for s in steps]
    assert f[-window - 1] - f[-1] <= p.optimizer.plateau * abs(f[-1])
    assert max(s.step_size for s in steps[-window:]) <= PLATEAU_MOVE * optimizers.max_move(objective)
    r = solve(p)
    assert r.final.status == "converged"
    # measured 1,254 and 3,166 (before the plateau: 4,883 and 7,589); the count is chaotic in the start:
    # sources perturbed by 1e-13 (relative) took 1,254-3,574 iterations for "size" (12 runs)
    assert r.final.iteration < {"size": 4500, "interaction": 5000}[beyond]
    assert r.final.energies["nonlocal"] < 0.05 * r.final.energies["objective"]  # and the particles arrive


def test_lbfgs_in_full_trajectories_stops_by_the_plateau_at_any_size(monkeypatch):
    """Without obstacles, an L-BFGS solve in full trajectories (here 40 interacting particles, far below
    the terminal states' ``PLATEAU_MIN_VARS``) stops by the plateau over ``GLASSY_WINDOW`` iterations,
    as every other solve of a glassy landscape does; ``"plateau": 0`` asks for L-BFGS's own rule
    (``rtol`` over 10 iterations), the crawl every such solve took before (300 interacting particles
    with a Gaussian target: at the 60 s limit, now converged in 14-27 s; the measured trade is in
    ``optimizers._local``). The plateau's solve takes fewer iterations and ends within the glassy
    spread of the crawl's objective."""
    from solver import optimizers, trust_region

    calls = []
    lbfgs = optimizers.lbfgs

    def recorded(*args, **kwargs):
        bound = inspect.signature(lbfgs).bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append((bound.arguments["window"], bound.arguments["plateau"]))
        return lbfgs(*args, **kwargs)
    monkeypatch.setattr(optimizers, "lbfgs", recorded)
    spec = gaussian_samples(40, 3, M=10, interaction=[{"kind": "gaussian", "strength": 0.1, "width": 0.1}])
    results = {}
    for plateau in ("default", 0.0):
        calls.clear()
        p = problem_from_dict(spec if plateau == "default" else {**spec, "optimizer": {"plateau": plateau}})
        assert p.N * p.dynamics.state_dim <= trust_region.PLATEAU_MIN_VARS
        results[plateau] = r = solve(p)
        assert r.final.status == "converged" and calls
        expected = (optimizers.GLASSY_WINDOW, p.optimizer.plateau) if p.optimizer.plateau else (10, 0.0)
        assert all(call == expected for call in calls), calls
    plateau, crawl = results["default"].final, results[0.0].final
    assert plateau.iteration < crawl.iteration  # measured 238 against 323 (2.478669879 / 2.478669860)
    # local minima of these landscapes differ by ~1e-5 relative (measured between the two rules on 24
    # interacting, aggregating and drifting problems of 100-400 particles: -7.6e-6 .. +6.1e-5)
    assert abs(plateau.objective - crawl.objective) <= 1e-4 * crawl.objective


def test_the_bend_of_a_start_stops_with_the_solve():
    """The start's bend around the obstacles (``around_obstacles``: L-BFGS-B through the trajectories)
    checks the solve's cancel event before every evaluation. Under a linear system with M = 800 it takes
    ~10 s (its states are a loop over time steps); a solve with a 3 s limit ended after 9.4 s, waiting
    for it, and now ends within one evaluation and the 0.2 s heartbeat of its limit (measured 3.17 s; 1.5 s
    of slack for a loaded machine). A bend asked with the event already set raises ``Cancelled`` at once."""
    rng = np.random.default_rng(3)
    spec = {"source": {"points": rng.uniform(0, 1, (12, 2)).tolist()}, "eps": 0.05, "M": 800,
            "target": {"kind": "gaussian", "mean": [2, 1], "cov": 0.05}, "optimizer": {"time_limit": 3},
            "dynamics": {"kind": "linear", "A": [[0.0, 1.0], [-1.0, 0.0]], "B": [[1.0, 0.0], [0.0, 1.0]]},
            "obstacles": [{"center": [1.0, 0.5], "radius": 0.2}]}
    r = solve(problem_from_dict(spec))
    assert r.final.status == "time_limit" and r.final.elapsed < 3 + 1.5
    small = problem_from_dict(dict(spec, M=10))
    objective = Objective(small)
    cancel = threading.Event()
    cancel.set()
    clock = time.perf_counter()
    with pytest.raises(Cancelled):
        around_obstacles(objective, small.init.variables(objective), cancel)
    assert time.perf_counter() - clock < 1.0


@pytest.mark.parametrize("scene", ["default_scene_with_a_disc", "default_scene_with_a_disc_segments"])
def test_the_smoothed_penalty_ends_near_the_exact_penalty_minimum(scene):
    """``robust`` solves obstacle problems on a Huber-smoothed penalty (``OBSTACLE_SMOOTHING``) and reports
    the exact one: L-BFGS on the exact penalty from its end is what the smoothing left. With the final
    band 2.5e-3 rho_min^2 that was 2.6e-5 / 3.0e-5 (relative) on these scenes, 1.3e-5 on Fig. 4; on
    2.5e-4 it is 2.4e-6 / 3.0e-6 (measured), and points rest ten times nearer the edge. 5e-6 holds the
    narrower band with headroom and fails the wider one."""
    spec = json.loads((ROOT / "assets" / "obstacle_scenes" / f"{scene}.json").read_text())
    ours = solve(problem_from_dict(spec)).final
    exact = solve(problem_from_dict(dict(spec, init={"trajectories": ours.states.tolist()},
                                         optimizer={"method": "lbfgs", "time_limit": 60}))).final
    gain = (ours.objective - exact.objective) / ours.objective
    print(f"{scene}: robust {ours.objective:.9f}, L-BFGS on the exact penalty from there {exact.objective:.9f} ({gain:.1e})")
    assert ours.status == "converged"
    assert gain <= 5e-6
