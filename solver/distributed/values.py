"""All values of one case: exact in the quadratic case, numerical (with error estimates) otherwise."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import bounds
from .ais import ais_value
from .case import Case
from .cavi import cavi, mean_field_value
from .deterministic import value_det
from .quadratic import gaussian_values
from .quadrature import MAX_N, value_quadrature


def compute(case: Case) -> dict[str, Any]:
    """V, V_dstr, V_det, V_mf, the three bounds, methods and error estimates (0.0 = closed form)."""
    m, o = case.model, case.options
    out: dict[str, Any] = {"n": m.n, "T": m.T, "graph": m.graph.name, "n_edges": int(len(m.edges)),
                           "degree_min": float(m.degrees.min()), "degree_max": float(m.degrees.max()),
                           "row_sums_one": bool(np.allclose(m.degrees, 1.0)), "convex": bounds.is_convex(m)}
    if m.quadratic:
        g = gaussian_values(m)
        out.update(V=g.V, V_err=0.0, V_method="closed_form", V_dstr=g.V_dstr, V_dstr_err=0.0,
                   V_dstr_method="closed_form", V_det=g.V_det, V_det_err=0.0, V_det_method="closed_form",
                   V_mf=g.V_mf)
    else:
        fine, coarse = cavi(m, points_per_sd=6.0), cavi(m, points_per_sd=4.0)
        out.update(V_dstr=fine.V_dstr, V_dstr_err=abs(fine.V_dstr - coarse.V_dstr), V_dstr_method="cavi_grid",
                   cavi_sweeps=fine.sweeps)
        if m.n <= MAX_N:
            v = value_quadrature(m)
            out.update(V=v, V_err=abs(v - value_quadrature(m, points_per_sd=3.0)), V_method="quadrature")
        else:
            a = ais_value(m, fine.means, fine.variances, o.ais_particles, o.ais_temperatures, seed=o.seed)
            out.update(V=a.V, V_err=a.V_se, V_method="ais", ais_ess=a.ess, ais_acceptance=a.acceptance)
        vd, _ = value_det(m)
        out.update(V_det=vd, V_det_err=0.0, V_det_method="convex_optimization",
                   V_mf=mean_field_value(m.T, m.U, m.K))
    out.update(gap=out["V_dstr"] - out["V"], gap_det=out["V_det"] - out["V"], bound=bounds.bound(m),
               bound_trace=bounds.bound_trace(m), bound_det=bounds.bound_det(m))
    return out
