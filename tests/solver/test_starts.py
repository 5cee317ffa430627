"""The robust method's order of starts and its reassignments during a local solve (solver.optimizers)."""
from __future__ import annotations

import numpy as np
import torch

from solver import problem_from_dict, solve_iter
from solver.init import ot_terminal_states
from solver.objective import Objective
from solver.optimizers import REASSIGN_EVERY, _rounds
from solver.reduced import ReducedObjective


def gaussian_target(N: int, **extra) -> dict:
    rng = np.random.default_rng(3)
    return {"source": {"points": rng.uniform(0, 1, (N, 2)).tolist()},
            "target": {"kind": "gaussian", "mean": [2.0, 1.0], "cov": 0.09}, "eps": 0.01, "M": 5,
            "optimizer": {"time_limit": 60}, **extra}


def first_start(spec: dict) -> str:
    """The label of the first start the robust method works from (after the problem's own)."""
    run = solve_iter(problem_from_dict(spec), every=1)
    try:
        for snap in run:
            label = snap.phase.split(":")[0].split("/")[0]
            if label != "start":
                return label
    finally:
        run.close()
    raise AssertionError("the run ended on the problem's own start")


def test_blob_quantizations_come_first_in_the_terminal_states_and_second_in_full_trajectories():
    assert first_start(gaussian_target(40)) == "blob-start"
    # an obstacle makes the problem one of full trajectories: the OT start's answer comes sooner
    with_obstacle = gaussian_target(40, obstacles=[{"center": [1.0, 3.0], "radius": 0.2}])
    assert first_start(with_obstacle) == "ot-start"


def crossed_start(N: int) -> tuple[ReducedObjective, torch.Tensor]:
    """A continuum target's reduced objective and terminal states onto its quasi-random quantization,
    assigned in reverse order of an OT assignment (trajectories that cross)."""
    problem = problem_from_dict(gaussian_target(N))
    states = ot_terminal_states(Objective(problem), blob=False)
    return ReducedObjective(problem), torch.as_tensor(states[::-1].copy())


def test_from_a_rough_start_a_reassignment_interrupts_the_local_solve():
    """From a rough start, Newton's first iteration already tries a reassignment (and again every
    ``REASSIGN_EVERY``): the crossings go at once, before the first local solve ends, each lowering the
    objective; from other starts the local solve runs to its end first."""
    work, start = crossed_start(60)
    steps = list(_rounds(work, start, work.problem.optimizer, "rough", [0, 0], rough=True))
    first = next(k for k, s in enumerate(steps) if s.phase.startswith("rough/reassign 1"))
    assert all(s.status is None for s in steps[:first]), "the first local solve ended before a reassignment"
    newton = [k for k, s in enumerate(steps[:first]) if s.phase.endswith("/newton")]
    assert newton and first - newton[0] <= REASSIGN_EVERY + 1
    # the reassignment permutes the states: the control energy falls, the nonlocal energy stays
    assert steps[first].energies["objective"] < steps[first - 1].energies["objective"]

    smooth = list(_rounds(work, start, work.problem.optimizer, "smooth", [0, 0], rough=False))
    first = next(k for k, s in enumerate(smooth) if "reassign" in s.phase)
    assert smooth[first - 1].status is not None, "a reassignment interrupted a local solve from a smooth start"
