"""Whether float64 resolves a problem's kernel and terminal penalty (``check_scales``).

The positions carry rounding of 2^-52 of their magnitude X (the largest coordinate of the source states
and the target, in the constrained state), and the terminal penalty of eq. (55),
NE = (S - 2 X_cross + C) / eps, is a difference of sums each as large as the peak of the kernel K_delta
they sum, (2 pi delta^2)^(-d/2) (``kernels.gaussian_normalizer``), over eps: it cancels down to a
rounding of 2^-52 times that. Two conditions keep
both far below what the answer resolves, each refused with one line naming the field and the fix:

* delta >= ``DELTA_RESOLUTION`` X: the kernel is wider than a hundred million roundings of a position, so
  its values carry relative errors of ~1e-7 at most;
* 2^-52 (2 pi delta^2)^(-d/2) / eps <= ``PENALTY_ROUNDING`` L^2, L the scene's extent (at least delta):
  the penalty's rounding stays a millionth of the squared distances the control energy is made of.

Measured on the default scene (X = 1.82, L = 2.03, delta = 0.146 auto, eps = 0.01: 4.5140667), before these
checks: delta = 1e-30 "converged" at 3.0e59, eps = 1e-30 at -4.4e14 (negative: the penalty's sums had
cancelled to noise), eps = 1e-12 at 4.5173, below the W2^2 = 4.5177 that eps = 1e-8 reaches (the noise
above, 1.7e-3); delta = 1e-100, 1e-300 or delta_exponent >= 100 crashed; the scene scaled by 1e12 (delta
still 0.146) "converged" at -6.0e7. A kernel whose peak overflows or underflows float64 is refused too
(a scene at the origin has no coordinate to measure delta by; delta = 1e300 overflowed); wide ones
below that are solved as asked (delta = 1e8: the penalty cannot tell the scene's points apart, and the
objective is 0 with every particle at rest).
"""
from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import numpy as np

from .errors import ProblemError
from .kernels import gaussian_normalizer

if TYPE_CHECKING:
    from .problem import Problem

#: delta at least this multiple of the largest coordinate (see the module docstring).
DELTA_RESOLUTION = 1e-8
#: The penalty's rounding at most this multiple of the scene's extent squared.
PENALTY_ROUNDING = 1e-6
#: float64's relative rounding, 2^-52.
ROUNDING = 2.0 ** -52
#: The obstacle weight c_Omega at most this: structured Newton's Schur complements multiply Hessian
#: entries of size c_Omega (the default scene with a disc: c_Omega = 1e50 and 1e100 solved alike,
#: 4.8628388; 1e200 "converged" at 1.1e195; 1e308 failed in an eigendecomposition). The auto weight
#: 1/(h eps) is far below it (2.5e12 with M = 1,000 at the least eps the default scene allows, 4e-10).
OBSTACLE_WEIGHT_MAX = 1e100


def scene_points(problem: "Problem") -> np.ndarray:
    """The points that place the scene in the constrained state: the source states, the target's mean and
    its own points (particles, grid cells), (n, D)."""
    parts = [problem.dynamics.source_states(problem.source), problem.target.mean()[None, :]]
    if problem.target.empirical is not None:
        parts.append(problem.target.empirical[0])
    return np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1, parts[0].shape[1]) for a in parts])


def kernel_peak(delta: float, dim: int) -> float:
    """The peak of K_delta, ``kernels.gaussian_normalizer``: inf where it overflows float64, 0 where it
    underflows."""
    try:
        return gaussian_normalizer(delta, dim)
    except (OverflowError, ZeroDivisionError):  # delta^2 beyond float64's range, or underflowed to 0
        return math.inf


def penalty_rounding(delta: float, eps: float, dim: int) -> float:
    """2^-52 times the peak of K_delta over eps: the rounding NE's sums cancel down to."""
    return ROUNDING * kernel_peak(delta, dim) / eps


def check_scales(problem: "Problem", exponent_changed: bool = False) -> None:
    """Raise ``ProblemError`` (naming delta, eps, or delta_exponent where delta is auto and the exponent
    is not eq. (58)'s, ``exponent_changed``) where float64 cannot resolve the problem's kernel or terminal
    penalty (module docstring), or (naming obstacle_weight) the obstacle weight is over
    ``OBSTACLE_WEIGHT_MAX``, or the target's own ``check_delta`` refuses delta (an annulus too many delta
    wide)."""
    points = scene_points(problem)
    magnitude = float(np.abs(points).max())
    delta, eps, dim = problem.delta, problem.eps, problem.dynamics.state_dim
    spread = float(np.ptp(points, axis=0).max())
    exponent = exponent_changed and problem.delta_spec == "auto"  # the field at fault: a changed exponent
    field = "delta_exponent" if exponent else "delta"
    given = (f"{problem.delta_exponent:g} gives delta = N^(-k/d) = {delta:.3g} for N = {problem.N}," if exponent
             else f"{delta:.3g}" + (" (auto, eq. 58)" if problem.delta_spec == "auto" else "") + " is")
    peak = kernel_peak(delta, dim)
    if peak == math.inf:
        raise ProblemError(field, f"{given} so narrow that the kernel's peak (2 pi delta^2)^(-d/2) overflows "
                                  "float64; use a larger delta")
    if delta < DELTA_RESOLUTION * magnitude:
        fix = ("use an exponent near 0.99 (eq. 58)" if exponent
               else f"give delta >= {DELTA_RESOLUTION * magnitude:.2g} or move the scene toward the origin")
        raise ProblemError(field, f"{given} below {DELTA_RESOLUTION:g} times the largest coordinate "
                                  f"({magnitude:.3g}): float64 cannot resolve so narrow a kernel there; {fix}")
    if peak < sys.float_info.min:
        raise ProblemError(field, f"{given} so wide that the kernel's peak (2 pi delta^2)^(-d/2) underflows "
                                  "float64; use a delta comparable to the distances between the points")
    check_delta = getattr(problem.target, "check_delta", None)  # a target whose tables scale with 1 / delta
    if check_delta is not None:
        check_delta(delta)
    if problem.obstacles is not None and problem.obstacles.weight > OBSTACLE_WEIGHT_MAX:
        raise ProblemError("obstacle_weight", f"{problem.obstacles.weight:g} is over {OBSTACLE_WEIGHT_MAX:g}: "
                                              "Newton's factorizations overflow float64; use \"auto\" (1/(h eps)) "
                                              "or a smaller weight")
    extent = max(spread, delta)
    noise = penalty_rounding(delta, eps, dim)
    if noise > PENALTY_ROUNDING * extent * extent:
        with np.errstate(all="ignore"):
            least = float(np.float64(eps) * noise / (PENALTY_ROUNDING * extent * extent))
        fix = f"use eps >= {least:.2g} or a larger delta" if math.isfinite(least) else "use a larger delta"
        raise ProblemError("eps", f"{eps:g} is too small for float64 at delta = {delta:.3g}: the terminal "
                                  f"penalty's sums cancel to a rounding of {noise:.2g}, against a scene extent "
                                  f"of {extent:.3g} squared; {fix}")
