"""How much memory a solve needs, checked before anything is allocated.

A solve holds its trajectories (N M D numbers) several times over: the iterate, the optimizer's
history (L-BFGS keeps ``HISTORY`` pairs of vectors of the free variables), the best and the last good
iterates, the snapshots on their way to the caller, plus bounded working sets (32 MB kernel blocks, an
exact OT plan of at most ``assignment.EXACT_PAIRS`` entries (the start's and the diagnostics' emd;
reassignments take O(N), ``solver.augmenting``), twice 128 MB of listed pairs for Hessian-vector
products, a dense Hessian for small problems), and matrices in a particle's V variables, which grow
with M squared: the control energy's V x V Hessian and its factor (``steering``), and for obstacle
problems solved in full trajectories N such blocks several times over (``trust_region.TrajectorySystem``,
used only up to ``STRUCTURED_MEMORY``).
``needed_bytes`` adds these up from N, M and the dimensions; ``check`` raises one line when a problem
would exceed the budget (the command line's ``--memory``, default ``DEFAULT_BUDGET``), before torch
allocates the first array.
"""
from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from .assignment import EXACT_PAIRS
from .errors import ProblemError
from .kernels import PAIR_MEMORY
from .kernels.dense import MEMORY_BUDGET
from .trust_region import DENSE_VARS, structured_system_bytes

if TYPE_CHECKING:
    from .problem import Problem

#: Default memory budget of a solve: 8 GiB (well under the 24 GiB of the machines this runs on), or
#: the environment's MFC_MEMORY_GB.
DEFAULT_BUDGET = int(float(os.environ.get("MFC_MEMORY_GB", "8")) * 2**30)
#: Copies of the trajectories a solve holds at once (iterate, trial, best, last good, snapshots, CSV).
COPIES = 12
#: Pairs of vectors of the free variables kept by L-BFGS.
HISTORY = 30
#: Numbers held per pair by an exact plan (its cost matrix, their temporaries, the plan): 4.0 (3-D) to
#: 4.5 (2-D) measured at N = 3,000 (275-311 MB).
PLAN_NUMBERS = 5
#: V x V matrices of the control energy held at once: H (while probed: H, H^T + H and its half), its
#: Cholesky factor, temporaries. Measured from peak resident memory (default scene, velocity control):
#: 4.3, 4.8, 3.6 at M = 2,000, 3,000, 4,000.
STEERING_COPIES = 6
#: Fixed working sets: kernel blocks (three temporaries), an exact plan and its cost matrix, the listed
#: pairs of Newton's Hessian-vector products (a step's, and the last step's until it is replaced), the rest.
FIXED = 3 * 8 * MEMORY_BUDGET + PLAN_NUMBERS * 8 * EXACT_PAIRS + 2 * PAIR_MEMORY + 200 * 2**20


def needed_bytes(problem: "Problem") -> int:
    """Estimated peak memory of solving ``problem``, in bytes."""
    N, M = problem.N, problem.M
    D = problem.dynamics.state_dim
    trajectories = 8 * N * M * D
    dense_hessian = 8 * 4 * (N * D) ** 2 if N * D <= DENSE_VARS else 0  # H, the factor, build temporaries
    V = math.prod(problem.dynamics.variable_shape(N, M)[1:])  # a particle's variables
    steering = STEERING_COPIES * 8 * V * V
    structured = structured_system_bytes(problem)  # where the structured Newton solve may run
    return COPIES * trajectories + 2 * HISTORY * trajectories + dense_hessian + steering + structured + FIXED


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.3g} GB"


def check(problem: "Problem", budget: int = DEFAULT_BUDGET) -> None:
    """Raise ``ProblemError`` (one line naming N, M and the budget) when ``problem`` needs more than
    ``budget`` bytes."""
    need = needed_bytes(problem)
    if need > budget:
        raise ProblemError("problem", f"N = {problem.N} particles with M = {problem.M} time points need about "
                                      f"{gigabytes(need)}, over the memory budget of {gigabytes(budget)}; "
                                      "lower N or M, or raise the budget with --memory GB")
