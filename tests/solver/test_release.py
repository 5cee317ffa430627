"""Releases (``solver.release``): particles giving up their place in the target for a cheaper path.
The greedy's prediction of each release is checked against the objective itself, and its end against
every single release it could still make (none lowers the objective)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from solver import problem_from_dict, solve
from solver.assignment import match
from solver.release import FRACTIONS, released
from solver.reduced import ReducedObjective
from tests.problems import gaussian_samples


def single_releases(objective: ReducedObjective, Y: torch.Tensor) -> torch.Tensor:
    """The objective's exact change for every single release candidate (F, N), by evaluating it."""
    E = objective.value_and_grad(Y)[0]["objective"]
    rest = objective.rest_states()
    out = torch.empty(len(FRACTIONS), Y.shape[0], dtype=Y.dtype)
    for k, f in enumerate(FRACTIONS):
        for i in range(Y.shape[0]):
            Z = Y.clone()
            Z[i] = Y[i] + f * (rest[i] - Y[i])
            out[k, i] = objective.value_and_grad(Z)[0]["objective"] - E
    return out


@pytest.mark.parametrize("eps", [0.3, 1.0])
def test_the_greedy_releases_lower_the_objective_until_no_single_release_does(eps):
    problem = problem_from_dict(gaussian_samples(60, 1, eps=eps))
    objective = ReducedObjective(problem)
    # the OT start: every particle on its target point, held there by the point's well
    images, _, _ = match(problem.source, np.asarray(problem.target.points))
    Y = torch.as_tensor(images, dtype=torch.float64)
    before = objective.value_and_grad(Y)[0]["objective"]
    moved = released(objective, Y)
    assert moved is not None and int((moved != Y).any(1).sum()) >= 1
    after = objective.value_and_grad(moved)[0]["objective"]
    assert after < before
    # the greedy releases each particle at most once and stops only when no single release of the
    # others lowers the objective (1e-12: its rounding level)
    kept = ~(moved != Y).any(1)
    assert float(single_releases(objective, moved)[:, kept].min()) >= -1e-12 * abs(after)


def test_no_release_pays_with_a_strong_penalty():
    # eps = 0.01: giving up a place costs more than the whole way saves, for every particle
    problem = problem_from_dict(gaussian_samples(60, 1))
    result = solve(problem)
    objective = ReducedObjective(problem)
    Y = torch.as_tensor(result.final.states[:, -1], dtype=torch.float64)
    assert released(objective, Y) is None
    assert float(single_releases(objective, Y).min()) > 0


@pytest.mark.parametrize("eps", [0.01, 0.3])
def test_the_ot_start_onto_particles_begins_from_its_releases(monkeypatch, eps):
    """The robust method's first local solve begins from the OT start's releases, as from a rough
    start, when any pays (a weak penalty), and from the OT start itself otherwise (eps = 0.01: none
    pays, the run is as without releases)."""
    from solver import optimizers
    from solver.run import _start_variables
    from solver.objective import Objective

    problem = problem_from_dict(gaussian_samples(60, 1, eps=eps))
    seen = []

    def recorded(work, x, spec, label, counters, rough):
        seen.append((label, x.clone(), rough))
        return
        yield
    monkeypatch.setattr(optimizers, "_polished", recorded)
    objective = Objective(problem)
    list(optimizers.robust(objective, _start_variables(objective, problem, None, None), problem.optimizer))
    label, x, rough = seen[0]
    assert label == "ot-start"
    images, _, _ = match(problem.source, np.asarray(problem.target.points))
    Y = torch.as_tensor(images, dtype=torch.float64)
    freed = released(ReducedObjective(problem), Y)
    if eps == 0.01:
        assert freed is None and torch.allclose(x, Y, rtol=0, atol=1e-12) and not rough
    else:
        # the releases of the OT start exactly (1e-12: the map to trajectories and back rounds)
        assert freed is not None and torch.allclose(x, freed, rtol=0, atol=1e-12) and rough
        assert int((freed != Y).any(1).sum()) >= 1


def test_releases_priced_by_wrong_sums_are_not_taken(monkeypatch):
    """The greedy prices releases by kernel sums; if those were wrong (the cells' keys overflowed in 4-D
    once, and releases that raised the objective were taken round after round), the objective itself
    refuses the result: with the particles' mollified density r overstated tenfold every candidate looks
    like a gain, and ``released`` returns None instead of states whose objective is higher."""
    import solver.release as release_module
    problem = problem_from_dict(gaussian_samples(60, 1))  # eps = 0.01: no release truly pays
    objective = ReducedObjective(problem)
    images, _, _ = match(problem.source, np.asarray(problem.target.points))
    Y = torch.as_tensor(images, dtype=torch.float64)
    assert released(objective, Y) is None
    true_row_sums = release_module.gaussian_row_sums

    def overstated(x, z, b, scale, normalized=False):
        return 10.0 * true_row_sums(x, z, b, scale, normalized)
    monkeypatch.setattr(release_module, "gaussian_row_sums", overstated)
    calls = []
    original_objective_call = ReducedObjective.__call__

    def counted(self, y):
        calls.append(1)
        return original_objective_call(self, y)
    monkeypatch.setattr(ReducedObjective, "__call__", counted)
    assert released(objective, Y) is None
    assert len(calls) == 2  # the greedy did move (it checked its end against the objective)
