"""MFC Explorer solver: the blob method for mean-field control with terminal constraints.

Craig, Elamvazhuthi, Lee, "A Blob Method for Mean Field Control with Terminal Constraints".
Public API::

    problem = load_problem("assets/fig1_pot_comparison.json")   # or problem_from_dict({...})
    for snap in solve_iter(problem): ...                          # streaming snapshots
    result = solve(problem)                                       # run to the end

Layers (each imports only the ones above it): ``lazy``, ``threads``, ``errors``, ``registry``,
``reading``, ``paths`` -> ``kernels`` -> the registered parts ``dynamics``, ``targets``, ``costs`` -> ``problem``
-> ``objective`` -> ``steering`` -> ``init`` -> ``optimizers`` -> ``run`` -> ``history``,
``diagnostics``, ``landscape``, ``io`` -> entry points ``cli``, ``reproduce``, ``bench``. This package
imports every module that registers kinds, so the registries are complete once ``solver`` is imported;
torch is loaded at the first computation, not here (``solver.lazy``).
"""
from . import init, optimizers  # noqa: F401  (they register the initializations and the methods)
from .objective import Objective
from .problem import Problem, ProblemError, load_problem, problem_from_dict, problem_warnings
from .registry import (CONTROL_COSTS, DRIFTS, DYNAMICS, INITS, INTERACTIONS, OBSTACLES, OPTIMIZERS,
                       POTENTIALS, TARGETS)
from .run import Result, Snapshot, SolveControl, solve, solve_iter

__all__ = ["CONTROL_COSTS", "DRIFTS", "DYNAMICS", "INITS", "INTERACTIONS", "OBSTACLES", "OPTIMIZERS",
           "Objective", "POTENTIALS", "Problem", "ProblemError", "Result", "Snapshot", "SolveControl",
           "TARGETS", "load_problem", "problem_from_dict", "problem_warnings", "solve", "solve_iter"]
