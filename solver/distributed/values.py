"""All values of one case, each with its method and error estimate.

| value | quadratic U and K | otherwise |
|---|---|---|
| V | closed form (error 0) | variable elimination on a grid when the graph allows (``elimination``: paths, trees, stars, rings, ...; error: the grid-refinement difference, ~1e-15); else AIS (``ais``: standard error, at most ``ais_target_se`` within ``ais_seconds``) |
| V_dstr | closed form | CAVI on a grid (``cavi_grid``; error: the grid-refinement difference) |
| V_det | closed form | convex optimization (error 0 to solver tolerance) |
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import bounds
from .ais import ais_value
from .case import Case
from .cavi import cavi, mean_field_value
from .deterministic import value_det
from .quadratic import gaussian_values
from .elimination import eliminable, elimination_value


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
        if eliminable(m.graph):
            e = elimination_value(m)
            out.update(V=e.V, V_err=e.V_err, V_method="elimination", elimination_width=e.width)
        else:
            a = ais_value(m, o.ais_particles, o.seed, o.ais_target_se, o.ais_seconds)
            out.update(V=a.V, V_err=a.V_se, V_method="ais", ais_particles=a.particles,
                       ais_temperatures=a.temperatures, ais_ess=a.ess, ais_acceptance=a.acceptance,
                       ais_seconds=a.seconds)
        vd, _ = value_det(m)
        out.update(V_det=vd, V_det_err=0.0, V_det_method="convex_optimization",
                   V_mf=mean_field_value(m.T, m.U, m.K))
    out.update(gap=out["V_dstr"] - out["V"], gap_det=out["V_det"] - out["V"], bound=bounds.bound(m),
               bound_trace=bounds.bound_trace(m), bound_det=bounds.bound_det(m))
    return out
