"""The robust method's polish: where the run's lowest iterate is a provisional one (on the obstacle
continuation the exact objective can dip below where every solve ends), a last local solve from it."""
import dataclasses
import json
from pathlib import Path

import torch

from solver import problem_from_dict, solve
from solver.objective import Objective
from solver.optimizers import _working, exact_energies, polish, unfinished_lead
from solver.steps import Step

SCENE = Path(__file__).resolve().parents[2] / "assets" / "obstacle_scenes" / "default_scene_with_a_disc.json"


def test_a_provisional_lowest_iterate_is_polished_to_a_finished_solve():
    """The default scene with a disc: its solution, shaken (0.02 on every variable), stands for a
    provisional iterate. It is polished when it lies below the best finished solve by more than the
    plateau tolerance (3e-6 of the objective), not within it, not when it ended a solve itself, not
    without the continuation (no obstacles); polished, it ends converged below where it began."""
    problem = problem_from_dict(json.loads(SCENE.read_text()))
    objective = Objective(problem)
    work, _ = _working(objective)
    solved = solve(problem)
    x = objective.variables_from_positions(torch.as_tensor(solved.positions, dtype=torch.float64))
    x = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    energies = work.value_and_grad(x)[0]
    shaken = Step(x, exact_energies(objective, Step(x, energies, 0.0, 0.0, 0, 0)), 0.0, 0.0, 0, 0, "t",
                  provisional=True)
    f, spec = shaken.energies["objective"], problem.optimizer
    assert unfinished_lead(work, shaken, f * (1 + 1e-3), spec)
    assert not unfinished_lead(work, shaken, f * (1 + 1e-7), spec)
    assert not unfinished_lead(work, dataclasses.replace(shaken, provisional=False), f * (1 + 1e-3), spec)
    free = problem.with_changes(obstacles=None)
    assert not unfinished_lead(_working(Objective(free))[0], shaken, f * (1 + 1e-3), free.optimizer)
    steps = list(polish(work, shaken, spec, [0, 0]))
    assert steps[-1].status == "converged"
    assert exact_energies(objective, steps[-1])["objective"] < f
