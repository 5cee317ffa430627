"""CASE.json -> validated dataclasses. Every problem raises CaseError with one line naming the
field and the fix.

    {"n": 50, "T": 1.0,
     "U": {"kind": "quadratic", "a": 1.0, "b": 0.5}            | {"kind": "logcosh", "a", "c", "s", "b"},
     "K": {"kind": "quadratic" | "logcosh", "kappa": 1.0},
     "J": [[...], ...]                                         (full n x n matrix)
        | {"edges": [[i, j, w], ...]}                          (0-based i < j, J_ij = J_ji = w)
        | {"file": "J.csv" | "J.json"}                         (matrix file, relative to CASE.json)
        | {"graph": "complete" | "ring" | "path" | "tree" | "regular" | "erdos_renyi" | "star" | "lattice",
           "normalize": "none" | "row" | "1/n" | "1/(n-1)", "weight": 1.0,
           "d": 3, "p": 0.1, "rows": 5, "periodic": true, "seed": 0},
     "options": {"seed": 0, "ais_particles": 2000, "ais_target_se": 2e-5, "ais_seconds": 60}}

V is exact where the graph allows (closed form for quadratic U and K; variable elimination on a grid
for paths, trees, stars, rings and other graphs eliminable with two neighbours at a time); elsewhere AIS
adds particles until its standard error is ``ais_target_se`` (null: one batch of ``ais_particles``)
or ``ais_seconds`` are spent.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import graphs
from .graphs import Graph
from .model import Model
from .potentials import LogCoshK, LogCoshU, QuadraticK, QuadraticU


class CaseError(ValueError):
    """A bad CASE.json; the message is one line naming the field and the fix."""


@dataclass(frozen=True)
class Options:
    seed: int = 0
    ais_particles: int = 2000
    ais_target_se: float | None = 2e-5
    ais_seconds: float = 60.0


@dataclass(frozen=True)
class Case:
    model: Model
    options: Options


def _num(d: dict, key: str, where: str, default: float | None = None, *, positive: bool = False,
         nonneg: bool = False) -> float:
    name = f"{where}.{key}" if where else key
    if key not in d:
        if default is None:
            raise CaseError(f"{name}: is missing; add a number")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CaseError(f"{name}: must be a finite number (got {v!r}); give a number such as 1.0")
    if positive and v <= 0:
        raise CaseError(f"{name}: must be > 0 (got {v}); use a positive value")
    if nonneg and v < 0:
        raise CaseError(f"{name}: must be >= 0 for a convex G, which the bounds need (got {v}); use 0 or a positive value")
    return float(v)


def _int(d: dict, key: str, where: str, default: int | None = None, minimum: int = 0) -> int:
    if key not in d:
        if default is None:
            raise CaseError(f"{where}.{key}: is missing; add an integer >= {minimum}")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise CaseError(f"{where}.{key}: must be an integer >= {minimum} (got {v!r}); give a whole number")
    return v


def _dict(d: dict, key: str) -> dict:
    v = d.get(key)
    if not isinstance(v, dict):
        raise CaseError(f"{key}: must be an object such as {{\"kind\": \"quadratic\", ...}} (got {v!r}); give one")
    return v


def parse_U(d: dict) -> QuadraticU | LogCoshU:
    kind = d.get("kind")
    if kind == "quadratic":
        return QuadraticU(_num(d, "a", "U", nonneg=True), _num(d, "b", "U", 0.0))
    if kind == "logcosh":
        return LogCoshU(_num(d, "a", "U", nonneg=True), _num(d, "c", "U", nonneg=True),
                        _num(d, "s", "U", 0.0), _num(d, "b", "U", 0.0))
    raise CaseError(f"U.kind: unknown kind {kind!r}; use \"quadratic\" or \"logcosh\"")


def parse_K(d: dict) -> QuadraticK | LogCoshK:
    kind = d.get("kind")
    kappa = _num(d, "kappa", "K", nonneg=True)
    if kind == "quadratic":
        return QuadraticK(kappa)
    if kind == "logcosh":
        return LogCoshK(kappa)
    raise CaseError(f"K.kind: unknown kind {kind!r}; use \"quadratic\" or \"logcosh\"")


def parse_J(spec: Any, n: int, base: Path) -> Graph:
    try:
        if isinstance(spec, list):
            g = graphs.from_matrix(spec)
        elif isinstance(spec, dict) and "edges" in spec:
            g = graphs.from_edges(n, spec["edges"])
        elif isinstance(spec, dict) and "file" in spec:
            g = graphs.load_matrix(base / str(spec["file"]))
        elif isinstance(spec, dict) and "graph" in spec:
            where = "J"
            g = graphs.named_graph(
                str(spec["graph"]), n, normalize_mode=str(spec.get("normalize", "none")),
                weight=_num(spec, "weight", where, 1.0, nonneg=True), d=_int(spec, "d", where, 3, 1),
                p=_num(spec, "p", where, 0.1), rows=_int(spec, "rows", where, 0, 1) or None,
                periodic=bool(spec.get("periodic", True)), seed=_int(spec, "seed", where, 0))
        else:
            raise CaseError("J: must be a list of lists, {\"edges\": [[i, j, w], ...]}, {\"file\": PATH} "
                            "or {\"graph\": NAME, ...}")
    except CaseError:
        raise
    except (ValueError, TypeError, OSError) as exc:
        raise CaseError(f"J: {exc}") from None
    if g.n != n:
        raise CaseError(f"J: is {g.n} x {g.n} but n = {n}; make J square of size n")
    data = g.J.data
    if not np.all(np.isfinite(data)):
        raise CaseError("J: has non-finite entries; use finite weights")
    if np.any(data < 0):
        raise CaseError("J: has negative weights, but the bounds need J >= 0 (convex G); use nonnegative weights")
    return g


def parse_case(obj: Any, base: Path = Path(".")) -> Case:
    """Validate a decoded CASE.json object."""
    if not isinstance(obj, dict):
        raise CaseError("CASE.json: must hold a JSON object; give n, T, U, K and J")
    n = obj.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise CaseError(f"n: must be an integer >= 2 (got {n!r}); give the number of players")
    T = _num(obj, "T", "", positive=True)
    U, K = parse_U(_dict(obj, "U")), parse_K(_dict(obj, "K"))
    if "J" not in obj:
        raise CaseError("J: is missing; give a matrix, an edge list or {\"graph\": NAME}")
    graph = parse_J(obj["J"], n, base)
    o = obj.get("options", {})
    if not isinstance(o, dict):
        raise CaseError("options: must be an object; give {\"seed\": 0, ...} or leave it out")
    target = None if o.get("ais_target_se", 2e-5) is None else _num(o, "ais_target_se", "options", 2e-5, positive=True)
    opts = Options(_int(o, "seed", "options", 0), _int(o, "ais_particles", "options", 2000, 10), target,
                   _num(o, "ais_seconds", "options", 60.0, positive=True))
    return Case(Model(T, U, K, graph), opts)


def load_case(path: str | Path) -> Case:
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except OSError as exc:
        raise CaseError(f"CASE.json: cannot read {path} ({exc.strerror}); check the path") from None
    except json.JSONDecodeError as exc:
        raise CaseError(f"CASE.json: {path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix the syntax") from None
    return parse_case(obj, path.parent)
