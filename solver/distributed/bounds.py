"""The right-hand sides of Lacker-Mukherjee-Yeung '22 for the guiding example.

For i != j, d_ij G(x) = -(1/n) W_ij K''(x_i - x_j), so ||d_ij G||_inf = |W_ij| ||K''||_inf / n, and

    bound       = n T^2 sum_{i<j} ||d_ij G||_inf^2          = (T^2/n) ||K''||^2 sum_{i<j} W_ij^2
    bound_trace = (T^2/(2n)) ||K''||_inf^2 tr(W^2)           (equal to bound: W symmetric, zero diagonal)
    bound_det   = (1/2) n T^2 sum_{i,j} ||d_ij G||_inf^2
                = (T^2/(2n)) [ sum_i (||U''|| + ||K''|| d_i)^2 + ||K''||^2 sum_{i != j} W_ij^2 ],

using ||d_ii G||_inf = (sup U'' + ||K''|| d_i)/n, exact when W >= 0, U'' >= 0 attains its sup and
K'' >= 0 is largest at 0 (true for every potential in ``potentials``). They bound V_dstr - V and
V_det - V when G is convex (U, K convex and W >= 0). For an asymmetric J the trace form must use
the symmetrized W: tr(J^2) = sum J_ij J_ji <= sum W_ij^2 would understate the bound.
"""
from __future__ import annotations

import numpy as np

from .model import Model


def bound(model: Model) -> float:
    """General RHS n T^2 sum_{i<j} ||d_ij G||_inf^2."""
    w = model.edges[:, 2]
    return float(model.T**2 / model.n * model.K.hess_sup**2 * np.sum(w * w))


def bound_trace(model: Model) -> float:
    """(T^2/(2n)) ||K''||^2 tr(W^2) of the slides."""
    W = model.graph.W
    tr = float(W.multiply(W.T).sum())
    return model.T**2 / (2 * model.n) * model.K.hess_sup**2 * tr


def bound_det(model: Model) -> float:
    """(1/2) n T^2 sum_{i,j} ||d_ij G||_inf^2, diagonal terms included."""
    k2 = model.K.hess_sup
    diag = (model.U.hess_sup + k2 * model.degrees) ** 2
    off = 2.0 * np.sum(model.edges[:, 2] ** 2) * k2**2
    return float(model.T**2 / (2 * model.n) * (np.sum(diag) + off))


def is_convex(model: Model) -> bool:
    """G convex: U'' >= 0, K'' >= 0 everywhere and W >= 0 (sufficient, as in the slides)."""
    return bool(model.U.hess_inf >= 0 and model.K.kappa >= 0 and np.all(model.edges[:, 2] >= 0))
