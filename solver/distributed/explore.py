"""Everything the lab shows for one case, as one iterator of partial results.

``explore(case)`` yields ``Stage``s in the order a reader wants them, each as soon as it is computed:

1. ``values``: V, V_dstr, V_det, the bounds and the methods and errors of each value (``values.compute``);
2. ``gap``: V_dstr - V and the bound against n for the case's graph family (``sweep.gap_curve``:
   closed forms for quadratic cases, exact by elimination for log cosh cases on paths, trees, stars and
   rings, else on the quadratic twin); None for a graph given as a matrix or an edge list, which has
   no family;
3. ``paths``: sample paths of player 1 under the full-information and the distributed optimal controls
   (the full-information control in closed form for quadratic cases, by elimination where the graph
   allows, else left out);
4. ``projection``: the marginals of the uncontrolled particle system dX^i = (-U'(X^i) - sum_j J_ij
   K'(X^i - X^j)) dt + dW^i against its independent projection (``projection.independent_projection``;
   for U = a x^2/2 + c log cosh(x - s) - b x the confinement drift is its quadratic part -a x + b).

The explorer's tab and ``python -m solver distributed CASE.json --stages ...`` both read it. A
``cancel`` event stops it between stages.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from .case import Case
from .cavi import cavi
from .elimination import eliminable
from .controls import (GaussianDistributedDrift, GaussianFullInfoDrift, GridDistributedDrift,
                       EliminationFullInfoDrift, simulate_paths)
from .graphs import GRAPH_KINDS
from .projection import PairDrift, independent_projection
from .quadratic import gaussian_values
from .sweep import gap_curve
from .values import compute

STAGES = ("values", "gap", "paths", "projection")
#: Sizes n of the gap-vs-n curve (the case's own n is added).
GAP_NS = (8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Stage:
    """One partial result: ``name`` (one of ``STAGES``), the share of the work done, and its data."""

    name: str
    progress: float
    data: Any


def family_gap(case: Case, ns: tuple[int, ...] = GAP_NS) -> Any:
    """The gap curve of the case's named graph family on its quadratic twin (None without a family)."""
    m = case.model
    params = dict(m.graph.params)
    kind = params.pop("graph", None)
    if kind not in GRAPH_KINDS:
        return None
    params.pop("n", None)
    normalize = params.pop("normalize", "none")
    if kind == "lattice":
        params = {}  # each n gets its own near-square lattice
    sizes = sorted({max(4, x) for x in ns} | {max(4, m.n)})
    try:
        return gap_curve(kind, sizes, m.U, m.K, T=m.T, normalize_mode=normalize, **params)
    except ValueError:  # e.g. a d-regular graph that does not exist for some n
        return None


def sample_paths(case: Case, paths: int = 8, steps: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, full-information paths, distributed paths) of player 1; the full-information ones are
    empty when that control has no closed form and the graph is too dense for variable elimination."""
    m, seed = case.model, case.options.seed
    if m.quadratic:
        g = gaussian_values(m)
        full = GaussianFullInfoDrift.from_model(m)
        dstr = GaussianDistributedDrift(m.T, np.full(m.n, g.mean), g.var_dstr)
    else:
        full = EliminationFullInfoDrift(m) if eliminable(m.graph) else None
        dstr = GridDistributedDrift.from_cavi(m, cavi(m))
    t, xd = simulate_paths(m, dstr, steps=steps, paths=paths, seed=seed)
    xf = simulate_paths(m, full, steps=steps, paths=paths, seed=seed)[1] if full is not None else xd[:, :0]
    return t, xf[:, :, 0], xd[:, :, 0]


def projection(case: Case, samples: int = 2000, records: int = 11) -> Any:
    m = case.model
    drift = PairDrift(m.U.a, m.U.b, m.K.kappa, m.K.drift_kind)
    return independent_projection(m.graph.J, drift, m.T, 50, samples=samples, records=records,
                                  seed=case.options.seed)


def explore(case: Case, stages: tuple[str, ...] = STAGES,
            cancel: threading.Event | None = None) -> Iterator[Stage]:
    """The stages of ``stages`` for ``case``, in the order of ``STAGES``; stops early once ``cancel``
    is set."""
    work = {"values": lambda: compute(case), "gap": lambda: family_gap(case),
            "paths": lambda: sample_paths(case), "projection": lambda: projection(case)}
    chosen = [s for s in STAGES if s in stages]
    for k, name in enumerate(chosen):
        if cancel is not None and cancel.is_set():
            return
        yield Stage(name, (k + 1) / len(chosen), work[name]())
