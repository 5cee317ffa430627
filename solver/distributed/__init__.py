"""Distributed vs full-information control (Lacker-Mukherjee-Yeung '22; Jackson-Lacker).

Modules: potentials (U, K), graphs (J), model (G and its gradient), quadratic (closed forms),
bounds (the RHS of the theorems), cavi (V_dstr on grids), quadrature and ais (V), deterministic
(V_det), controls (optimal feedback controls, Euler-Maruyama costs), projection (independent
projection, W2), case and cli (`python -m solver distributed CASE.json`), figure (docs figure).
"""
