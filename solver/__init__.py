"""MFC Explorer solver: the blob method for mean-field control with terminal constraints.

Craig, Elamvazhuthi, Lee, "A Blob Method for Mean Field Control with Terminal Constraints".
Public API::

    problem = load_problem("assets/fig1_pot_comparison.json")   # or problem_from_dict({...})
    for snap in solve_iter(problem): ...                          # streaming snapshots
    result = solve(problem)                                       # run to the end
"""
from .objective import Objective
from .optimizers import METHODS
from .problem import Problem, ProblemError, load_problem, problem_from_dict
from .run import Result, Snapshot, SolveControl, solve, solve_iter

__all__ = ["METHODS", "Objective", "Problem", "ProblemError", "Result", "Snapshot", "SolveControl",
           "load_problem", "problem_from_dict", "solve", "solve_iter"]
