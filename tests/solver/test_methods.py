"""Every optimizer, by name, on every problem of tests/problems.py (exact answers known)."""
from __future__ import annotations

import numpy as np
import pytest

import solver
from tests.problems import PROBLEMS

#: First-order methods get the problem's stable learning rate and more iterations (Adam's noisy steps
#: settle slowly; 1,500 are enough for 1e-8 here, measured).
SETTINGS = {"gd": {"max_iter": 5000}, "adam": {"max_iter": 1500}}


@pytest.fixture(scope="module", params=sorted(PROBLEMS))
def exact(request):
    return PROBLEMS[request.param]()


@pytest.mark.parametrize("method", solver.OPTIMIZERS.kinds())
def test_every_method_finds_the_exact_minimizer(exact, method):
    settings = {"method": method, "lr": exact.lr, "time_limit": 60, **SETTINGS.get(method, {})}
    problem = solver.problem_from_dict(dict(exact.spec, optimizer=settings, init="paper"))
    result = solver.solve(problem)
    terminal = result.states[:, -1]
    print(f"{exact.name} [{method}]: {result.final.iteration} iterations, {result.final.status}, "
          f"objective error {result.final.objective - exact.objective:.2e}, "
          f"terminal error {np.abs(terminal - exact.terminal).max():.2e}")
    # the objective is an O(1) sum of a few terms: 1e-12 is far above its rounding (measured: < 3e-16
    # for every method); at a strict minimum E - E* ~ |Y - Y*|^2, so 1e-12 on E allows ~1e-6 on Y
    assert result.final.objective == pytest.approx(exact.objective, abs=1e-12)
    assert np.abs(terminal - exact.terminal).max() < 1e-6
    assert result.final.status in ("converged", "max_iter")


def _disc_crossing(seed: int, method: str, init) -> dict:
    """Six sources left of a disc, six targets right of it, from ``init`` (the paper's start sends every
    path through the disc)."""
    rng = np.random.default_rng(seed)
    return {"source": {"points": rng.uniform(-1, 0, (6, 2)).tolist()},
            "target": {"kind": "particles", "points": (rng.uniform(1.5, 2.5, (6, 2)) - [0, 0.5]).tolist()},
            "obstacles": [{"center": [0.75, 0.0], "radius": 0.4}], "M": 6, "eps": 0.01, "delta": 0.1,
            "init": init, "optimizer": {"method": method, "time_limit": 30}}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_newton_says_converged_only_where_nothing_is_left_to_gain(seed):
    """On an obstacle penalty (59) saddle-free Newton's model does not see the kink: one particle on the
    disc's edge backtracks the common step to ~1e-7 and the solve crawls. It stopped there as
    "converged" at gradient norms 56-134 (objectives 824-1,116), where L-BFGS from its end went on to
    66-161. Now L-BFGS goes on from such a stall inside ``newton`` and Newton resumes from its end, so
    the solve says converged where L-BFGS to its own rule from its end gains at most 1e-4 relative, the
    spread of the glassy landscape's minima (the probe stops by the plateau rule, 3e-6 |E| over 10
    iterations; measured: 0, 9e-6, 0)."""
    newton = solver.solve(solver.problem_from_dict(_disc_crossing(seed, "newton", "paper"))).final
    after = solver.solve(solver.problem_from_dict(
        _disc_crossing(seed, "lbfgs", {"trajectories": newton.states.tolist()}))).final
    print(f"seed {seed}: newton {newton.status} at {newton.objective:.6g} (gradient {newton.grad_norm:.3g}); "
          f"L-BFGS from there {after.objective:.6g}")
    assert newton.status == "converged"
    assert (newton.objective - after.objective) / newton.objective <= 1e-4


def test_newton_is_not_stopped_by_an_unbounded_curvature():
    """One particle whose source lies in a disc, under the piecewise cost (p = 3) from its source, with
    whole-path avoidance (a fuzz's random problem file, its numbers kept): the Hessian's eigenvalues
    reach 1e301 there (|u| near u = 0), so Newton's step rounds to zero; Armijo accepted that null step
    and the decrement 0 read "converged" at the start, 539.57 at a gradient of 270, where L-BFGS goes to
    77.158. A null step is no step now: the stall goes to L-BFGS, and the solve ends at L-BFGS's
    minimum (to 1e-9 relative: both stop by their own rules at gradients ~1e-10 or below)."""
    spec = {"M": 4, "eps": 0.001, "p": 3.0, "control_cost": "piecewise", "init": "source",
            "source": {"points": [[0.17123168695693636, 0.49957604203457096]]},
            "target": {"kind": "particles", "points": [[1.4532781065448763, 2.1169491291090434]]},
            "obstacles": [{"center": [0.1492745139057725, 0.5444823666536971], "radius": 0.1987771320832819}],
            "obstacle_segments": True, "interaction": [{"kind": "quadratic", "strength": 0.3}],
            "optimizer": {"method": "newton"}}
    newton = solver.solve(solver.problem_from_dict(spec)).final
    lbfgs = solver.solve(solver.problem_from_dict(dict(spec, optimizer={"method": "lbfgs"}))).final
    assert newton.status == "converged"
    assert newton.objective == pytest.approx(lbfgs.objective, rel=1e-9)


def test_a_line_search_step_that_rounds_to_nothing_is_no_step():
    """Armijo's test E(x + t d) <= E(x) + 1e-4 t g.d passes at E(x + t d) = E(x) whenever t g.d is below
    E's rounding, so a direction below every coordinate's rounding read as an accepted step that moved
    nothing (Newton's whole step where Hessian eigenvalues reach 1e301). Such a search finds no step;
    a direction that moves one coordinate is still searched."""
    from solver.init import initial_variables
    from solver.objective import Objective
    from solver.optimizers import _armijo

    problem = solver.problem_from_dict({"source": {"points": [[0.0, 0.0], [0.5, 0.2]]},
                                        "target": {"kind": "particles", "points": [[1.0, 1.0], [1.5, 0.5]]},
                                        "M": 4, "eps": 0.1})
    objective = Objective(problem)
    x = initial_variables(objective)
    energies, g = objective.value_and_grad(x)
    tiny = -1e-30 * g / g.abs().max()  # a descent direction far below the coordinates' rounding
    assert _armijo(objective, x, tiny, energies["objective"], float((g * tiny).sum())) is None
    d = -g / g.abs().max() * 1e-3
    found = _armijo(objective, x, d, energies["objective"], float((g * d).sum()))
    assert found is not None and found[1]["objective"] < energies["objective"]


def _point_source(method: str) -> dict:
    """Five particles at one point and five targets on the unit circle: every start drawn from it
    (``source``, ``paper``) is symmetric, and the gradient keeps it so."""
    angles = np.linspace(0, 2 * np.pi, 6)[:-1]
    return {"source": {"points": [[0.0, 0.0]] * 5},
            "target": {"kind": "particles", "points": np.c_[np.cos(angles), np.sin(angles)].tolist()},
            "eps": 0.01, "M": 5, "delta": 0.1, "init": "source", "optimizer": {"method": method}}


@pytest.mark.parametrize("method", ["lbfgs", "newton"])
def test_particles_started_at_one_point_do_not_stop_at_the_symmetric_saddle(method):
    """From five particles at one point the gradient is exactly symmetric: every particle takes the same
    step and the solve stopped after one iteration, "converged" at 1909.86 with all five at the origin,
    a saddle (the Hessian's lowest eigenvalue -6.4e4). A stop is now a minimum only where no step along
    negative curvature gains: the solve leaves along it and ends where the Hessian's lowest eigenvalue
    is at least -1e-8 of its largest, far below the -1 it had relative to the largest at the saddle and
    above its rounding, ~1e-13 (measured at the ends: +0.016 of 20 for L-BFGS, at 636.78; +2.7e-7 of
    1.3e4 for Newton, at 509.59). Those ends are local minima short of the targets (the penalty's
    reach, delta = 0.1, is far below the unit radius; ``robust``'s OT start finds 0.99997)."""
    import torch

    from solver.objective import Objective
    from solver.optimizers import hessian

    problem = solver.problem_from_dict(_point_source(method))
    result = solver.solve(problem)
    objective = Objective(problem)
    x = objective.variables_from_positions(torch.as_tensor(result.positions))
    eigenvalues = np.linalg.eigvalsh(hessian(objective, x).numpy())
    print(f"{method}: {result.final.status} at {result.final.objective:.8g} after {result.final.iteration} "
          f"iterations; Hessian's eigenvalues {eigenvalues[0]:.3g} .. {eigenvalues[-1]:.3g}")
    assert result.final.status == "converged"
    assert eigenvalues[0] >= -1e-8 * np.abs(eigenvalues).max()
    assert result.final.objective < 1000  # the saddle is at 1909.86; the minima found 509.59 and 636.78


@pytest.mark.parametrize("method", ["gd", "adam"])
def test_first_order_methods_stopped_at_a_saddle_say_stalled(method):
    """The paper's gradient descent and Adam cannot leave the point source's symmetric saddle (their
    steps are the gradient's, exactly zero there); they said "converged" after one iteration, and now
    stalled (the Hessian's lowest eigenvalue is -6.4e4)."""
    result = solver.solve(solver.problem_from_dict(_point_source(method)))
    assert result.final.objective == pytest.approx(1909.8593171, rel=1e-9)  # still at the saddle
    assert result.final.status == "stalled"
