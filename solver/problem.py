"""Problem files: the JSON description of one MFC_{eps,delta,N} instance (eq. 7, section 4.1).

``load_problem(path)`` / ``problem_from_dict(d)`` validate a problem and return a frozen ``Problem``;
``Problem.spec`` is the normalized JSON dict, so a run is a pure function of ``spec`` (plus seed).
Invalid input raises ``ProblemError`` whose message is one line naming the field and the fix.
The format is documented in README.md ("Problem files").
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import costs, dynamics as dyn, targets

OPTIMIZER_DEFAULTS = {"method": "robust", "lr": None, "max_iter": 20000, "time_limit": 60.0,
                      "gtol": 1e-9, "rtol": 1e-10}
DELTA_EXPONENT = 0.99  # k in delta = N^(-k/d), eq. (58)


class ProblemError(ValueError):
    """Invalid problem input; ``str(err)`` is one line: '<field>: <what is wrong>; <how to fix>'."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass(frozen=True)
class OptimizerSpec:
    """How to minimize: ``method`` from solver.optimizers.METHODS, ``lr`` (learning rate of gd/adam;
    None picks the paper's scaling), iteration and wall-clock limits, and the stopping tolerances
    (``gtol`` on the largest per-particle gradient N |dE/dy|, ``rtol`` on the relative decrease)."""

    method: str = "robust"
    lr: float | None = None
    max_iter: int = 20000
    time_limit: float = 60.0
    gtol: float = 1e-9
    rtol: float = 1e-10


@dataclass(frozen=True)
class Problem:
    """A validated blob-method problem. All arrays are float64 numpy; nothing here holds torch state."""

    spec: dict
    dynamics: dyn.Dynamics
    source: np.ndarray  # (N, d) positions (full states for linear dynamics)
    target: targets.Target
    eps: float
    delta: float
    M: int
    control_cost: costs.ControlCost
    obstacles: costs.Obstacles | None
    potentials: tuple = ()
    interactions: tuple = ()
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    init: Any = "paper"
    seed: int = 0

    @property
    def N(self) -> int:
        return self.source.shape[0]

    @property
    def h(self) -> float:
        return 1.0 / (self.M - 1)

    @property
    def name(self) -> str:
        return str(self.spec.get("name", "problem"))

    def with_changes(self, **changes: Any) -> "Problem":
        """A new problem whose spec has the given top-level keys replaced (validated again)."""
        spec = copy.deepcopy(self.spec)
        spec.update(changes)
        return problem_from_dict(spec)


# ----------------------------------------------------------------------------------------- parsing
def _array(value: Any, name: str, ndim: int, fix: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProblemError(name, f"must be numbers; {fix}") from None
    if arr.ndim != ndim or arr.size == 0:
        shape = {1: "a list of numbers", 2: "a list of points (lists of numbers of equal length)"}[ndim]
        raise ProblemError(name, f"must be {shape} (got shape {arr.shape}); {fix}")
    if not np.all(np.isfinite(arr)):
        raise ProblemError(name, f"contains NaN or infinite values; {fix}")
    return arr


def _number(d: dict, key: str, name: str, default: Any = None, *, positive: bool = False,
            minimum: float | None = None, integer: bool = False) -> Any:
    value = d.get(key, default)
    if value is None:
        raise ProblemError(name, f"is required; add \"{key}\" to the problem")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProblemError(name, f"must be a number (got {value!r})")
    if integer and int(value) != value:
        raise ProblemError(name, f"must be a whole number (got {value!r})")
    if positive and value <= 0:
        raise ProblemError(name, f"must be > 0 (got {value!r}); use a small positive value")
    if minimum is not None and value < minimum:
        raise ProblemError(name, f"must be >= {minimum} (got {value!r})")
    return int(value) if integer else float(value)


def _cov(value: Any, name: str, dim: int) -> np.ndarray:
    if isinstance(value, (int, float)):  # a scalar variance sigma^2 means sigma^2 I
        value = float(value) * np.eye(dim)
    cov = _array(value, name, 2, f"give a {dim}x{dim} symmetric positive definite matrix")
    if cov.shape != (dim, dim) or not np.allclose(cov, cov.T):
        raise ProblemError(name, f"must be a symmetric {dim}x{dim} matrix (got shape {cov.shape})")
    if np.linalg.eigvalsh(cov).min() <= 0:
        raise ProblemError(name, "must be positive definite; use a positive variance")
    return cov


def _parse_dynamics(d: dict, source: dict) -> tuple[dyn.Dynamics, np.ndarray]:
    kind = d.get("kind", "velocity")
    pts = _array(source.get("points"), "source.points", 2, "give N points as [[x0, x1], ...]")
    N, dim = pts.shape
    if kind == "velocity":
        drift = d.get("drift")
        if drift is None:
            return dyn.VelocityDynamics(dim), pts
        if drift.get("kind") != "mean_attraction":
            raise ProblemError("dynamics.drift.kind", "must be \"mean_attraction\"")
        return dyn.VelocityDynamics(dim, dyn.MeanAttraction(
            _number(drift, "strength", "dynamics.drift.strength"))), pts
    if kind == "acceleration":
        vel = source.get("velocities")
        v0 = np.zeros_like(pts) if vel is None else _array(
            vel, "source.velocities", 2, "give one velocity per source point")
        if v0.shape != pts.shape:
            raise ProblemError("source.velocities", f"must have the shape of source.points {pts.shape} "
                                                    f"(got {v0.shape})")
        return dyn.AccelerationDynamics(dim, v0), pts
    if kind == "linear":
        A = _array(d.get("A"), "dynamics.A", 2, "give the n x n state matrix")
        B = _array(d.get("B"), "dynamics.B", 2, "give the n x m control matrix")
        n = A.shape[0]
        if A.shape != (n, n):
            raise ProblemError("dynamics.A", f"must be square (got {A.shape})")
        if B.shape[0] != n:
            raise ProblemError("dynamics.B", f"must have {n} rows like A (got {B.shape})")
        ctrb = np.hstack([np.linalg.matrix_power(A, k) @ B for k in range(n)])
        if np.linalg.matrix_rank(ctrb) < n:
            raise ProblemError("dynamics", "(A, B) is not controllable (Kalman rank < n); "
                                           "change B so that [B, AB, ..] has full rank")
        if dim != n:
            raise ProblemError("source.points", f"must be full states of dimension {n} for linear "
                                                f"dynamics (got {dim})")
        return dyn.LinearDynamics(A, B), pts
    raise ProblemError("dynamics.kind", f"unknown kind {kind!r}; use velocity, acceleration or linear")


def _parse_target(t: Any, dim: int, kind_of_dynamics: str) -> targets.Target:
    if not isinstance(t, dict):
        raise ProblemError("target", "is required; give {\"kind\": \"particles\", \"points\": [...]} or "
                                     "a gaussian / mixture / uniform / grid target")
    kind = t.get("kind", "particles")
    if kind == "particles":
        pts = _array(t.get("points"), "target.points", 2, "give at least one target point")
        if kind_of_dynamics == "acceleration":
            vel = t.get("velocities")
            v = np.zeros_like(pts) if vel is None else _array(vel, "target.velocities", 2,
                                                              "give one velocity per target point")
            if v.shape != pts.shape:
                raise ProblemError("target.velocities", f"must have the shape of target.points {pts.shape}")
            pts = np.hstack([pts, v])
        if pts.shape[1] != dim:
            raise ProblemError("target.points", f"must have dimension {dim} like the source states "
                                                f"(got {pts.shape[1]})")
        w = t.get("weights")
        weights = np.full(len(pts), 1.0 / len(pts)) if w is None else _array(
            w, "target.weights", 1, "give one nonnegative weight per target point")
        if weights.shape[0] != len(pts) or weights.min() < 0 or weights.sum() <= 0:
            raise ProblemError("target.weights", "must be one nonnegative weight per point, not all zero")
        return targets.ParticleTarget(pts, weights / weights.sum())
    if kind in ("gaussian", "mixture"):
        comps = [dict(t, weight=1.0)] if kind == "gaussian" else t.get("components")
        if not comps:
            raise ProblemError("target.components", "must list at least one {weight, mean, cov}")
        means, covs, ws = [], [], []
        for c, comp in enumerate(comps):
            where = "target" if kind == "gaussian" else f"target.components[{c}]"
            m = _array(comp.get("mean"), f"{where}.mean", 1, f"give a mean of dimension {dim}")
            if m.shape[0] != dim:
                raise ProblemError(f"{where}.mean", f"must have dimension {dim} (got {m.shape[0]})")
            means.append(m)
            covs.append(_cov(comp.get("cov"), f"{where}.cov", dim))
            ws.append(_number(comp, "weight", f"{where}.weight", positive=True))
        ws = np.asarray(ws)
        return targets.GaussianMixtureTarget(ws / ws.sum(), np.stack(means), np.stack(covs), kind=kind)
    if kind in ("uniform", "grid"):
        low = _array(t.get("low"), "target.low", 1, f"give {dim} lower corner coordinates")
        high = _array(t.get("high"), "target.high", 1, f"give {dim} upper corner coordinates")
        if low.shape[0] != dim or high.shape[0] != dim or np.any(high <= low):
            raise ProblemError("target.high", f"low and high must have dimension {dim} with high > low")
        if kind == "uniform":
            return targets.UniformBoxTarget(low, high)
        values = np.asarray(t.get("values"), dtype=np.float64)
        if values.ndim != dim or values.size == 0 or values.min() < 0 or values.sum() <= 0:
            raise ProblemError("target.values", f"must be a {dim}-D array of nonnegative numbers, not all 0")
        return targets.GridDensityTarget(low, high, values)
    raise ProblemError("target.kind", f"unknown kind {kind!r}; use particles, gaussian, mixture, "
                                      "uniform or grid")


def _parse_costs(spec: dict, dim: int, eps: float, h: float):
    obstacles = None
    if spec.get("obstacles"):
        centers, radii = [], []
        for k, ob in enumerate(spec["obstacles"]):
            c = _array(ob.get("center"), f"obstacles[{k}].center", 1, "give the centre as [x, y]")
            if c.shape[0] > dim:
                raise ProblemError(f"obstacles[{k}].center", f"has more than {dim} coordinates")
            centers.append(c)
            radii.append(_number(ob, "radius", f"obstacles[{k}].radius", positive=True))
        if len({c.shape[0] for c in centers}) != 1:
            raise ProblemError("obstacles", "all centres must have the same dimension")
        weight = spec.get("obstacle_weight", "auto")
        weight = 1.0 / (h * eps) if weight == "auto" else _number(
            spec, "obstacle_weight", "obstacle_weight", positive=True)
        obstacles = costs.Obstacles(np.stack(centers), np.asarray(radii), weight)
    potentials = []
    for k, pot in enumerate(spec.get("potential", []) or []):
        where = f"potential[{k}]"
        c = _array(pot.get("center"), f"{where}.center", 1, "give the centre as [x, y]")
        if pot.get("kind") == "quadratic":
            potentials.append(costs.QuadraticPotential(c, _number(pot, "weight", f"{where}.weight")))
        elif pot.get("kind") == "gaussian":
            potentials.append(costs.GaussianBump(c, _number(pot, "height", f"{where}.height"),
                                                 _number(pot, "width", f"{where}.width", positive=True)))
        else:
            raise ProblemError(f"{where}.kind", "must be \"quadratic\" or \"gaussian\"")
    interactions = []
    for k, it in enumerate(spec.get("interaction", []) or []):
        where = f"interaction[{k}]"
        if it.get("kind") == "gaussian":
            interactions.append(costs.GaussianInteraction(
                _number(it, "strength", f"{where}.strength"),
                _number(it, "width", f"{where}.width", positive=True), dim))
        elif it.get("kind") == "quadratic":
            interactions.append(costs.QuadraticInteraction(_number(it, "strength", f"{where}.strength"), dim))
        else:
            raise ProblemError(f"{where}.kind", "must be \"gaussian\" or \"quadratic\"")
    return obstacles, tuple(potentials), tuple(interactions)


def _parse_optimizer(o: Any) -> OptimizerSpec:
    from .optimizers import METHODS  # the registry validates method names

    o = dict(OPTIMIZER_DEFAULTS, **(o or {}))
    if o["method"] not in METHODS:
        raise ProblemError("optimizer.method", f"unknown method {o['method']!r}; use one of "
                                               f"{', '.join(sorted(METHODS))}")
    lr = None if o.get("lr") is None else _number(o, "lr", "optimizer.lr", positive=True)
    return OptimizerSpec(o["method"], lr, _number(o, "max_iter", "optimizer.max_iter", minimum=1, integer=True),
                         _number(o, "time_limit", "optimizer.time_limit", positive=True),
                         _number(o, "gtol", "optimizer.gtol", minimum=0.0),
                         _number(o, "rtol", "optimizer.rtol", minimum=0.0))


def _parse_init(init: Any, N: int, M: int, dim: int) -> Any:
    if isinstance(init, str):
        if init not in ("paper", "ot", "source"):
            raise ProblemError("init", f"unknown init {init!r}; use paper, ot, source or "
                                       "{\"trajectories\": [...]}")
        return init
    if isinstance(init, dict) and "trajectories" in init:
        tr = np.asarray(init["trajectories"], dtype=np.float64)
        if tr.shape != (N, M, dim):
            raise ProblemError("init.trajectories", f"must have shape (N, M, d) = {(N, M, dim)} (got {tr.shape})")
        return tr
    raise ProblemError("init", "must be \"paper\", \"ot\", \"source\" or {\"trajectories\": [...]}")


def problem_from_dict(spec: dict) -> Problem:
    """Validate a problem dict (the parsed JSON file) and build the ``Problem``."""
    if not isinstance(spec, dict):
        raise ProblemError("problem", "must be a JSON object")
    spec = copy.deepcopy(spec)
    if not isinstance(spec.get("source"), dict):
        raise ProblemError("source", "is required; give {\"points\": [[x0, x1], ...]}")
    dyn_spec = spec.get("dynamics", {"kind": "velocity"})
    if not isinstance(dyn_spec, dict):
        raise ProblemError("dynamics", "must be an object such as {\"kind\": \"velocity\"}")
    dynamics, source = _parse_dynamics(dyn_spec, spec["source"])
    M = _number(spec, "M", "M", 5, integer=True, minimum=3 if dynamics.kind == "acceleration" else 2)
    eps = _number(spec, "eps", "eps", 0.01, positive=True)
    target = _parse_target(spec.get("target"), dynamics.state_dim, dynamics.kind)
    delta_spec = spec.get("delta", "auto")
    if delta_spec == "auto":  # eq. (58): delta = N^(-k/d), d the dimension of the constrained state
        k = _number(spec, "delta_exponent", "delta_exponent", DELTA_EXPONENT, positive=True)
        delta = source.shape[0] ** (-k / dynamics.state_dim)
    else:
        delta = _number(spec, "delta", "delta", positive=True)
    p = _number(spec, "p", "p", 2.0)
    if p <= 1:
        raise ProblemError("p", f"must be > 1 (got {p}); use p = 2 for the W2 problem")
    cost_kind = spec.get("control_cost", "power")
    if cost_kind not in ("power", "piecewise"):
        raise ProblemError("control_cost", "must be \"power\" or \"piecewise\"")
    control_cost = costs.PowerCost(p) if cost_kind == "power" else costs.PiecewiseCost(p)
    h = 1.0 / (M - 1)
    pos_dim = dynamics.dim if dynamics.kind != "linear" else dynamics.state_dim
    obstacles, potentials, interactions = _parse_costs(spec, pos_dim, eps, h)
    optimizer = _parse_optimizer(spec.get("optimizer"))
    N = source.shape[0]
    init = _parse_init(spec.get("init", "paper"), N, M, pos_dim)
    seed = _number(spec, "seed", "seed", 0, integer=True)
    return Problem(spec=spec, dynamics=dynamics, source=source, target=target, eps=eps, delta=delta,
                   M=M, control_cost=control_cost, obstacles=obstacles, potentials=potentials,
                   interactions=interactions, optimizer=optimizer, init=init, seed=seed)


def load_problem(path: str | Path) -> Problem:
    """Read and validate a problem JSON file."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise ProblemError("problem", f"file {path} not found; check the path") from None
    except json.JSONDecodeError as err:
        raise ProblemError("problem", f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from None
    return problem_from_dict(spec)
