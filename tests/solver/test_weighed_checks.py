"""Newton's solve from a start near the final states (an OT start onto the target's particles) in a glassy
landscape is checked for a reassignment at growing intervals and interrupted only when the check gains
more than the solve did since the last one (``optimizers._until_reassigned``, ``weighed``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import solver.optimizers as optimizers
from solver import problem_from_dict
from solver.optimizers import CHECK_INTERVAL_GROWTH, REASSIGN_EVERY, _until_reassigned
from solver.reduced import ReducedObjective
from solver.steps import Step

REASSIGNMENT_GAIN = 1e-4


def crawl(values: list[float]):
    """Newton's steps with these objective values (the variables stand in: the checks only pass them on)."""
    for k, f in enumerate(values, start=1):
        yield Step(torch.zeros(1), {"objective": f}, 1.0, 0.1, k, k, "ot-start/newton")


@pytest.fixture
def checks(monkeypatch):
    """A reduced objective of 600 particles whose every check finds a reassignment gaining
    ``REASSIGNMENT_GAIN``; returns it and the iterations at which it was checked."""
    rng = np.random.default_rng(0)
    p = problem_from_dict({"source": {"points": rng.uniform(0, 1, (600, 2)).tolist()},
                           "target": {"kind": "particles", "points": rng.normal(0.5, 0.3, (600, 2)).tolist()}})
    objective = ReducedObjective(p)
    seen: list[int] = []
    latest = {}

    def moved_on(objective, variables, **kwargs):
        seen.append(latest["step"].iterations)
        return torch.ones(1), False

    def value(self, variables):  # the check prices the reassigned states by the objective's value alone
        return torch.tensor(latest["step"].energies["objective"] - REASSIGNMENT_GAIN)

    monkeypatch.setattr(optimizers, "moved_on", moved_on)
    monkeypatch.setattr(ReducedObjective, "__call__", value)
    return objective, seen, latest


def run(objective, values, latest, **flags):
    def steps():
        for step in crawl(values):
            latest["step"] = step
            yield step
    generator = _until_reassigned(objective, steps(), periodic=False, **flags)
    try:
        while True:
            next(generator)
    except StopIteration as done:
        return done.value


def test_a_crawl_is_interrupted_once_a_check_gains_more_than_the_solve_did(checks):
    """Falling 1e-3 an iteration for 30 iterations, then 1e-6: the checks come after 10, 30 and 70 Newton
    iterations (intervals 10, 20, 40); the first two find less than the solve gained since the last
    check (1e-2, 2e-2 against 1e-4) and the solve goes on; the third finds more (4e-5 gained since the
    30th) and ends the solve there with the reassigned states."""
    objective, seen, latest = checks
    values = [1.0 - 1e-3 * min(k, 30) - 1e-6 * max(k - 30, 0) for k in range(1, 200)]
    last, moved = run(objective, values, latest, weighed=True)
    second = REASSIGN_EVERY * (1 + CHECK_INTERVAL_GROWTH)
    third = second + REASSIGN_EVERY * CHECK_INTERVAL_GROWTH**2
    assert seen == [REASSIGN_EVERY, second, third] == [10, 30, 70]
    assert last.iterations == third and torch.equal(moved[0], torch.ones(1))


def test_without_weighing_a_start_near_the_end_is_not_checked(checks):
    """Not weighed (small problems, where the plateau does not apply): no check before the solve's end,
    which then returns no reassignment (the rounds reassign after it)."""
    objective, seen, latest = checks
    last, moved = run(objective, [1.0 - 1e-6 * k for k in range(1, 120)], latest)
    assert seen == [] and moved is None and last.iterations == 119
