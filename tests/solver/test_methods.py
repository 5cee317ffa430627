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
