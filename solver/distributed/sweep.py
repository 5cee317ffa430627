"""Gap V_dstr - V and the bound against n for one graph family (quadratic case: closed forms)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from . import bounds
from .graphs import named_graph
from .model import Model
from .potentials import QuadraticK, QuadraticU
from .quadratic import gaussian_values


@dataclass(frozen=True)
class GapCurve:
    ns: NDArray[np.int64]
    gap: NDArray[np.float64]
    bound: NDArray[np.float64]


def gap_curve(kind: str, ns: list[int], T: float = 1.0, a: float = 1.0, b: float = 0.5, kappa: float = 1.0,
              normalize_mode: str = "row", **graph_params) -> GapCurve:
    """Closed-form V_dstr - V and n T^2 sum_{i<j} ||d_ij G||^2 for named_graph(kind, n) at each n."""
    gaps, rhs = [], []
    for n in ns:
        m = Model(T, QuadraticU(a, b), QuadraticK(kappa), named_graph(kind, n, normalize_mode=normalize_mode, **graph_params))
        v = gaussian_values(m)
        gaps.append(v.V_dstr - v.V)
        rhs.append(bounds.bound(m))
    return GapCurve(np.asarray(ns), np.asarray(gaps), np.asarray(rhs))
