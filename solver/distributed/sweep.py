"""Gap V_dstr - V and the bound against n for one graph family.

Closed forms for quadratic U and K. Otherwise exact where the family allows (V by variable
elimination, V_dstr by grid CAVI, the error bar the sum of their grid-refinement differences); for a
family elimination cannot handle, the quadratic twin (U = a x^2/2 - b x, K = kappa z^2/2) stands in,
and ``method`` says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from . import bounds
from .cavi import cavi
from .elimination import eliminable, elimination_value
from .graphs import named_graph
from .model import Model
from .potentials import Confinement, Interaction, QuadraticK, QuadraticU
from .quadratic import gaussian_values


@dataclass(frozen=True)
class GapCurve:
    ns: NDArray[np.int64]
    gap: NDArray[np.float64]
    gap_err: NDArray[np.float64]
    bound: NDArray[np.float64]
    method: str  # "closed_form", "elimination" or "quadratic_twin"


def gap_curve(kind: str, ns: list[int], U: Confinement, K: Interaction, T: float = 1.0,
              normalize_mode: str = "row", **graph_params) -> GapCurve:
    """V_dstr - V (with its error bar) and n T^2 sum_{i<j} ||d_ij G||^2 for named_graph(kind, n) at each n."""
    models = [Model(T, U, K, named_graph(kind, n, normalize_mode=normalize_mode, **graph_params)) for n in ns]
    method = "closed_form" if models[0].quadratic else "elimination"
    if method == "elimination" and not all(eliminable(m.graph) for m in models):
        method = "quadratic_twin"
        models = [Model(T, QuadraticU(U.a, U.b), QuadraticK(K.kappa), m.graph) for m in models]
    gaps, errs, rhs = [], [], []
    for m in models:
        if method == "elimination":
            fine, coarse, exact = cavi(m), cavi(m, points_per_sd=4.0), elimination_value(m)
            gaps.append(fine.V_dstr - exact.V)
            errs.append(abs(fine.V_dstr - coarse.V_dstr) + exact.V_err)
        else:
            v = gaussian_values(m)
            gaps.append(v.V_dstr - v.V)
            errs.append(0.0)
        rhs.append(bounds.bound(m))
    return GapCurve(np.asarray(ns), np.asarray(gaps), np.asarray(errs), np.asarray(rhs), method)
