"""Sweep files: a base problem and the axes a study varies, expanded into the problems to solve.

A sweep file is a JSON object::

    {"name": "fig9",                       # the sweep's name in the store (default: the file's stem)
     "base": "../fig9_N005.json",          # a problem, inline or a path relative to the sweep file
     "axes": {"N": [5, 10, 20], "eps": [0.01, 0.001]},
     "mode": "grid",                       # "grid" (every combination) or "zip" (the i-th of each)
     "reference": {"label": "paper", "x": [...], "y": [...], "quantity": "error_terminal"}}

An axis is a top-level problem key (``eps``, ``delta``, ``delta_exponent``, ``M``, ``p``, ``init``,
``seed``, ...), ``method`` (``optimizer.method``), a dotted path into the problem (``optimizer.time_limit``,
``target.cov``, ``source.N``), or ``N``: the size of every *generated* point set. A point set is
generated when the base (or an axis value) gives ``{"generate": KIND, "N": n, "seed": s, "center": [..],
"scale": r, "dim": d}`` instead of ``{"points": [...]}`` for the source or a particle target
(``{"kind": "particles", "generate": ...}``); KIND is one of the explorer's generators
(``solver.generators``). An axis may also be written as a generator spec with list-valued fields,
``{"source": {"generate": "uniform", "N": [100, 200, 400]}}``: each list becomes the axis
``source.N`` and the other fields join the base.

``expand(sweep)`` validates every run before anything is solved (one-line ``ProblemError`` naming the
axis and the value) and returns ``Run``s: each with its axis values, its problem and its key, the
content hash of the canonical problem (``run_key``).
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProblemError
from ..generators import GENERATORS, generate
from ..problem import Problem, problem_from_dict
from ..reading import check_keys, finite_number, json_file

SWEEP_KEYS = ("name", "description", "base", "axes", "mode", "reference")
GENERATOR_KEYS = ("generate", "N", "seed", "center", "scale", "dim", "kind", "weights")
#: At most this many generated points per set: 10^7 points in 2-D are 160 MB, already past what a solve
#: under the default memory budget holds with its trajectories (``solver.budget``); the sweep's client
#: builds every run's points before any is solved, and N = 10^9 would take 16 GB there.
MAX_GENERATED = 10_000_000
#: Axis names that stand for a path into the problem.
ALIASES = {"method": "optimizer.method"}


@dataclass(frozen=True)
class Run:
    """One problem of a sweep: its axis values (``params``), the problem, and its store key."""

    params: dict[str, Any]
    problem: Problem
    key: str


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its name, the file's spec, its axes (name -> values), mode, and runs."""

    name: str
    spec: dict[str, Any]
    axes: dict[str, list]
    mode: str
    runs: list[Run]

    @property
    def reference(self) -> dict[str, Any] | None:
        return self.spec.get("reference")


def run_key(problem: Problem) -> str:
    """The content hash of a problem: SHA-256 of its canonical form (``Problem.to_spec(metadata=False)``,
    keys sorted, floats in Python's shortest round-trip form). The same problem gives the same key in
    any process and whatever the key order or number formatting of the file it came from."""
    canonical = json.dumps(problem.to_spec(metadata=False), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def materialize(spec: dict[str, Any]) -> dict[str, Any]:
    """The problem dict with every generated point set (``{"generate": ...}``) replaced by its points."""
    out = copy.deepcopy(spec)
    for part in ("source", "target"):
        value = out.get(part)
        if isinstance(value, dict) and "generate" in value:
            out[part] = _generated(value, part)
    return out


def _generated(spec: dict[str, Any], where: str) -> dict[str, Any]:
    check_keys(spec, GENERATOR_KEYS, where)
    kind = spec["generate"]
    if not isinstance(kind, str) or kind not in GENERATORS:
        raise ProblemError(f"{where}.generate", f"unknown generator {kind!r}; use one of {', '.join(GENERATORS)}")
    n = spec.get("N")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_GENERATED:
        raise ProblemError(f"{where}.N", f"must be a whole number of points from 1 to {MAX_GENERATED:,} (got {n!r})")
    dim = spec.get("dim", 2)
    if dim not in (1, 2):
        raise ProblemError(f"{where}.dim", f"must be 1 or 2 for generated points (got {dim!r})")
    center = spec.get("center", [0.0] * dim)
    if not isinstance(center, list) or len(center) != dim or not all(finite_number(c) for c in center):
        raise ProblemError(f"{where}.center", f"must be a list of {dim} finite numbers (got {center!r})")
    scale = spec.get("scale", 1.0)
    if not finite_number(scale) or not scale > 0:
        raise ProblemError(f"{where}.scale", f"must be a finite positive number (got {scale!r})")
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ProblemError(f"{where}.seed", f"must be a whole number (got {seed!r})")
    full_center = (list(center) + [0.0])[:2]
    points = generate(kind, n, seed, tuple(full_center), float(scale), dim=dim)
    out = {k: v for k, v in spec.items() if k not in GENERATOR_KEYS or k in ("kind", "weights")}
    out["points"] = points.tolist()
    return out


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``spec`` at the dotted ``path`` (``N``: every generated point set's N)."""
    if path == "N":
        found = False
        for part in ("source", "target"):
            if isinstance(spec.get(part), dict) and "generate" in spec[part]:
                spec[part]["N"] = value
                found = True
        if not found:
            raise ProblemError("axes.N", 'needs a generated source or target ({"generate": "uniform", "N": 100}) '
                                         "in the base; or vary source.N / target.N")
        return
    keys = ALIASES.get(path, path).split(".")
    node = spec
    for k in keys[:-1]:
        child = node.get(k)
        if child is None or isinstance(child, str):  # e.g. "init": "paper" -> {"kind": ...} is not ours to guess
            child = {} if child is None else child
        if not isinstance(child, dict):
            raise ProblemError(f"axes.{path}", f"{'.'.join(keys[:-1])} is not an object in the base problem")
        node[k] = child
        node = child
    node[keys[-1]] = value


def sweep_axes(spec: dict[str, Any]) -> dict[str, list]:
    """The axes of a stored sweep (its spec with the base inline), read without building its runs."""
    return _axes(spec, copy.deepcopy(spec.get("base") or {}))


def _axes(spec: dict[str, Any], base: dict[str, Any]) -> dict[str, list]:
    """Axis name -> values; an axis written as a generator spec puts its fixed fields into ``base``."""
    raw = spec.get("axes")
    if not isinstance(raw, dict) or not raw:
        raise ProblemError("axes", 'must be an object of lists, e.g. {"eps": [0.1, 0.01], "N": [50, 100]}')
    axes: dict[str, list] = {}
    for name, values in raw.items():
        if isinstance(values, dict):  # a generator spec with list-valued fields
            lists = {k: v for k, v in values.items() if isinstance(v, list) and k != "center"}
            if not lists:
                raise ProblemError(f"axes.{name}", "an object axis needs at least one list-valued field, "
                                                   'e.g. {"generate": "uniform", "N": [100, 200]}')
            base[name] = {**(base.get(name) if isinstance(base.get(name), dict) else {}),
                          **{k: v for k, v in values.items() if k not in lists}}
            for k, v in lists.items():
                axes[f"{name}.{k}"] = v
            continue
        if not isinstance(values, list) or not values:
            raise ProblemError(f"axes.{name}", f"must be a non-empty list of values (got {values!r})")
        axes[name] = values
    return axes


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (``expand``); the base path is relative to the file."""
    path = Path(path)
    spec = json_file(path, "sweep", "a sweep JSON file")
    if isinstance(spec, dict):
        spec.setdefault("name", path.stem)
    return expand(spec, path.parent)


def expand(spec: Any, folder: Path | None = None) -> Sweep:
    """The sweep's runs, every one validated (``problem_from_dict``) before any is solved."""
    if not isinstance(spec, dict):
        raise ProblemError("sweep", "must be a JSON object with base and axes")
    check_keys(spec, SWEEP_KEYS, "sweep")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ProblemError("name", "must be a non-empty string naming the sweep")
    base = spec.get("base")
    if isinstance(base, str):
        base = json_file((folder or Path(".")) / base, "base", "a problem file, its path relative to the sweep file")
    if not isinstance(base, dict):
        raise ProblemError("base", "must be a problem object or the path of a problem file")
    spec = dict(spec, base=copy.deepcopy(base))  # kept with its base inline: a store needs no other file
    base = copy.deepcopy(base)
    axes = _axes(spec, base)
    mode = spec.get("mode", "grid")
    if mode not in ("grid", "zip"):
        raise ProblemError("mode", f'must be "grid" or "zip" (got {mode!r})')
    names = list(axes)
    if mode == "zip":
        lengths = {len(v) for v in axes.values()}
        if len(lengths) != 1:
            raise ProblemError("axes", f"in zip mode every axis needs the same length (got {', '.join(f'{k}: {len(v)}' for k, v in axes.items())})")
        combos = list(zip(*axes.values()))
    else:
        combos = list(itertools.product(*axes.values()))
    runs, seen = [], set()
    for combo in combos:
        params = dict(zip(names, combo))
        problem_spec = copy.deepcopy(base)
        for axis, value in params.items():
            _set(problem_spec, axis, copy.deepcopy(value))
        problem_spec["name"] = f"{name.strip()}: " + ", ".join(f"{k} = {_label(v)}" for k, v in params.items())
        try:
            problem = problem_from_dict(materialize(problem_spec))
        except ProblemError as err:
            at = ", ".join(f"{k} = {v!r}" for k, v in params.items())
            raise ProblemError(err.field, f"{err.message} (in the run with {at})") from None
        key = run_key(problem)
        if key in seen:
            continue  # two axis values that give the same problem: solve it once
        seen.add(key)
        runs.append(Run(params, problem, key))
    reference = spec.get("reference")
    if reference is not None:
        _check_reference(reference)
    return Sweep(name.strip(), spec, axes, mode, runs)


def _label(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _check_reference(ref: Any) -> None:
    if not isinstance(ref, dict) or not isinstance(ref.get("x"), list) or not isinstance(ref.get("y"), list):
        raise ProblemError("reference", 'must be {"label": ..., "quantity": ..., "x": [...], "y": [...]}')
    if len(ref["x"]) != len(ref["y"]):
        raise ProblemError("reference", f"x and y need the same length (got {len(ref['x'])} and {len(ref['y'])})")
