"""Warm starts (solver.warm) and the ``local`` continuation: trajectories carried over to a changed
problem, and solves that continue from them to the exact answer."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import solver
from solver.paths import straight_lines
from solver.warm import carry_over, continuation_method
from tests.problems import one_particle

ROOT = Path(__file__).resolve().parents[2]


def scene(**changes) -> solver.Problem:
    """Five particles on a line to five target points, with ``changes`` to the problem file."""
    spec = {"source": {"points": [[0.0, k / 4] for k in range(5)]},
            "target": {"kind": "particles", "points": [[1.0, 0.1 + k / 5] for k in range(5)]},
            "eps": 0.05, "M": 5}
    spec.update(changes)
    return solver.problem_from_dict(spec)


def straight(problem: solver.Problem, end: np.ndarray) -> np.ndarray:
    return straight_lines(np.asarray(problem.source, float), end, problem.M)


def test_same_problem_carries_the_trajectories_unchanged():
    p = scene()
    states = straight(p, np.asarray(p.source) + [1.0, 0.2])
    states[:, 2] += 0.05  # a bend: not a straight line
    assert np.array_equal(carry_over(p, states, scene(eps=0.01)), states)


def test_a_new_time_grid_resamples_each_path():
    old, new = scene(M=5), scene(M=9)
    end = np.asarray(old.source) + [1.0, 0.3]
    carried = carry_over(old, straight(old, end), new)
    # linear interpolation of a constant-speed path is the same path on the finer grid (round-off only)
    assert carried.shape == (5, 9, 2)
    assert np.abs(carried - straight(new, end)).max() < 1e-15
    coarse = carry_over(new, straight(new, end), old)
    assert np.abs(coarse - straight(old, end)).max() < 1e-15


def test_moved_and_added_points_borrow_their_neighbours_paths():
    old = scene()
    src = np.asarray(old.source, float)
    end = src + [1.0, 0.0]
    states = straight(old, end)
    moved = src.copy()
    moved[2] += [0.1, 0.02]  # particle 2 moved a little
    new_src = np.vstack([moved, [[0.02, 1.05]]])  # and one added next to particle 4
    new = scene(source={"points": new_src.tolist()})
    carried = carry_over(old, states, new)
    assert carried.shape == (6, 5, 2)
    unchanged = [0, 1, 3, 4]
    assert np.array_equal(carried[unchanged], states[unchanged])  # bit for bit
    assert np.array_equal(carried[:, 0], new_src)  # every path starts at its own source
    assert np.allclose(carried[2, -1], end[2]) and np.allclose(carried[5, -1], end[4])  # neighbours' ends
    t = np.linspace(0, 1, 5)[:, None]
    assert np.allclose(carried[5], states[4] + (1 - t) * (new_src[5] - src[4]), atol=1e-15)


def test_too_different_problems_get_no_warm_start():
    old = scene()
    states = straight(old, np.asarray(old.source) + 1.0)
    elsewhere = scene(source={"points": [[5.0 + k, 5.0] for k in range(5)]})
    assert carry_over(old, states, elsewhere) is None  # no source kept
    gaussian = scene(target={"kind": "gaussian", "mean": [1.0, 0.5], "cov": 0.05})
    assert carry_over(old, states, gaussian) is None  # another kind of target
    line = solver.problem_from_dict({"source": {"points": [[0.0], [0.5]]},
                                     "target": {"kind": "particles", "points": [[1.0], [2.0]]}, "M": 5})
    assert carry_over(old, states, line) is None  # another dimension


def continued_steps(old: solver.Problem, snap: solver.Snapshot, new: solver.Problem) -> list[solver.Snapshot]:
    """The snapshots of a finished solve of ``old`` continued on ``new`` from its trajectories, as the
    explorer does."""
    resume = dataclasses.replace(snap, states=carry_over(old, snap.states, new), elapsed=0.0, status=None)
    return list(solver.solve_iter(new, resume=resume, method=continuation_method(new)))


def continue_solve(old: solver.Problem, snap: solver.Snapshot, new: solver.Problem) -> solver.Snapshot:
    return continued_steps(old, snap, new)[-1]


@pytest.mark.parametrize("M", [2, 6])
def test_continuation_reaches_the_exact_minimum_of_the_changed_problem(M):
    first = one_particle(eps=1.0)
    p1 = solver.problem_from_dict(first.spec)
    snap = solver.solve(p1).final
    assert snap.objective == pytest.approx(first.objective, abs=1e-12)
    changed = one_particle(eps=0.5, M=M)  # eps halved, the time grid refined
    final = continue_solve(p1, snap, solver.problem_from_dict(changed.spec))
    # the closed form's objective to 1e-12 as for every method (tests/solver/test_methods.py)
    assert final.objective == pytest.approx(changed.objective, abs=1e-12)
    assert np.abs(final.states[:, -1] - changed.terminal).max() < 1e-6
    assert final.status == "converged" and final.iteration > snap.iteration  # the count goes on


def test_continuation_matches_a_fresh_solve_with_less_work():
    spec = json.loads((ROOT / "assets" / "default_scene.json").read_text())
    old = solver.problem_from_dict(dict(spec, eps=0.05))
    snap = solver.solve(old).final
    new = solver.problem_from_dict(dict(spec, eps=0.01, M=spec.get("M", 10) + 3))
    steps = continued_steps(old, snap, new)
    check = next(i for i, s in enumerate(steps) if s.phase.startswith("ot-start"))
    carried = steps[:check]  # the carried start's solve, before the OT check
    warm, fresh = steps[-1], solver.solve(new).final
    print(f"warm: {warm.objective:.12f}, {carried[-1].objective:.12f} after {carried[-1].iteration - snap.iteration} "
          f"iterations of the carried start; fresh: {fresh.objective:.12f} in {fresh.iteration}")
    # both end at the same minimum (reassignment repairs any crossing the change could leave): the
    # difference is the stopping rule's tolerance, far below 1e-9 of an O(1) objective
    assert carried[-1].objective == pytest.approx(fresh.objective, rel=1e-9)
    assert warm.objective == pytest.approx(fresh.objective, rel=1e-9)
    assert warm.status == "converged"
    assert carried[-1].evaluations - snap.evaluations < fresh.evaluations


def test_continuation_checks_the_ot_start_where_a_change_left_the_carried_paths_behind(monkeypatch):
    """p 2 -> 3 under a weak penalty (30 particles, 16 target points): the carried paths end 2 % above a
    fresh solve, whose OT start gains by releases the carried start cannot reach (found by fuzzing live
    changes); ``local``'s OT check, judged round by round, ends where the fresh solve does."""
    rng_source, rng_target = np.random.default_rng(2), np.random.default_rng(102)
    spec = {"source": {"points": rng_source.uniform(0, 1, (30, 2)).tolist()},
            "target": {"kind": "particles", "points": rng_target.normal([2, 1], 0.3, (16, 2)).tolist()},
            "eps": 0.05, "M": 3, "p": 2.0}
    old, new = solver.problem_from_dict(spec), solver.problem_from_dict(dict(spec, p=3.0))
    snap = solver.solve(old).final
    warm, fresh = continue_solve(old, snap, new), solver.solve(new).final
    monkeypatch.setattr(solver.optimizers, "WARM_CHECK_PAIRS", 0)  # the carried start alone
    alone = continue_solve(old, snap, new)
    print(f"carried start alone {alone.objective:.7f}, with the OT check {warm.objective:.7f}, fresh {fresh.objective:.7f}")
    assert alone.objective > 1.01 * fresh.objective  # the case is one the carried start alone loses
    # the same minimum as the fresh solve: equal to the stopping rule's tolerance (1e-9 of an O(1) objective)
    assert warm.objective == pytest.approx(fresh.objective, rel=1e-9) and warm.status == "converged"


def test_continuation_checks_the_rounded_start_where_the_target_has_other_than_n_points(monkeypatch):
    """2 particles to 5 points in 3-D (a quadratic interaction, eps 0.01), delta auto (0.79) -> 0.1: the
    carried paths and the OT start (whose barycentric projection puts each particle between points,
    where the narrow kernel senses none) both end at 3178.54, and ``robust`` cold at 1912.05 from the
    rounded start, each particle on one point (found by fuzzing live changes). ``local`` checks that start
    too and ends where the fresh solve does."""
    spec = {"M": 8, "eps": 0.01, "init": "source", "interaction": [{"kind": "quadratic", "strength": 0.3}],
            "source": {"points": [[-0.602553048419014, 0.11248609653388053, 0.872706589640605],
                                  [0.2979548764765332, -0.36769999425308986, -0.8897124243311221]]},
            "target": {"kind": "particles", "points": [
                [1.0487768375407287, 1.371590918256814, 1.0933017082607963],
                [1.343496745317695, 1.7233467189563654, 1.417080765913771],
                [2.4667853942886238, 1.2619851683655257, 1.5923628816173512],
                [2.2368603845186064, 2.2522977692691715, 1.3063393711453817],
                [1.183991717504808, 2.3719009288402892, 1.722382017865147]]}}
    old, new = solver.problem_from_dict(spec), solver.problem_from_dict(dict(spec, delta=0.1))
    snap = solver.solve(old).final
    warm, fresh = continue_solve(old, snap, new), solver.solve(new).final
    monkeypatch.setattr(solver.optimizers, "ROUNDED_PAIRS", 0)  # the carried and OT starts alone
    without = continue_solve(old, snap, new)
    print(f"without the rounded check {without.objective:.7f}, with it {warm.objective:.7f}, fresh {fresh.objective:.7f}")
    assert without.objective > 1.5 * fresh.objective  # the case is one the other starts lose
    # the same minimum as the fresh solve: equal to the stopping rule's tolerance (1e-9 of the objective)
    assert warm.objective == pytest.approx(fresh.objective, rel=1e-9) and warm.status == "converged"
