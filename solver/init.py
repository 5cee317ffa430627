"""Initial trajectories (``INITS``): the problem's ``init``.

* ``paper`` (eqs. 56-57): every terminal point at the target's centre of mass, straight lines from
  the source to it.
* ``ot``: minimum-energy trajectories (``solver.steering``; straight lines under velocity control) to
  an exact optimal-transport assignment (POT's emd) of the source states to the target (its particles,
  or a blob quantization of a continuum target, ``target_points``): particle i heads to the barycentric
  projection N sum_k P_ik w_k of its row of the plan. For equal-size uniform particle targets this is
  the discrete OT map itself.
* ``source``: particles stay put.
* ``{"trajectories": [...]}``: an explicit (N, M, d) array of positions.

Each is a class with ``from_spec`` / ``to_spec`` and ``variables(objective, cancel)``, the free
variables of its trajectories; ``selectable`` ones are offered by the explorer.
"""
from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np

from . import kernels
from .errors import ProblemError
from .lazy import numba, ot, scipy_optimize, torch
from .objective import Objective
from .paths import straight_lines
from .reading import Context, floats
from .registry import INITS
from .assignment import match
from .steering import min_energy_variables, steering_coordinates

if TYPE_CHECKING:
    from .costs import Obstacles
    from .problem import Problem

#: Continuum targets with at most this many particles get blob quantizations (below); larger N
#: use the quasi-random quantization directly.
QUANTIZE_MAX_N = 1000
#: Number of blob quantizations tried (seeds seed, seed + 1, ...); the one with the lowest NE is kept.
#: Above ``QUANTIZE_FEW_N`` particles a single one is made (each costs seconds there).
QUANTIZE_TRIES = 4
QUANTIZE_FEW_N = 300
#: A blob quantization whose NE after QUANTIZE_PATIENCE evaluations is still above QUANTIZE_STALLED
#: times the NE of the target's quasi-random quantization has stalled (``blob_quantization``).
#: Measured at 250 evaluations, against the quasi-random points: Gaussians, boxes and an annulus of
#: N = 100-1,000 in 1-3 dimensions are below (0.0002-0.7 times; they pass below them within 20
#: evaluations); the mixture preset (three components 0.7-1.2 apart, sd 0.1) at 1.5-2.5 times, and its
#: tries went on to its best start (5.5533, where clusters at the components' means led to 5.6344); two
#: components 3-3.6 apart (sd 0.14 and 0.2; 1-D and 2-D) at 5-26 times.
QUANTIZE_PATIENCE, QUANTIZE_STALLED = 250, 4.0
#: At most this many evaluations per blob quantization. Measured to convergence (L-BFGS's tolerances):
#: Gaussians, boxes, annuli and the mixture preset of N = 100-1,000 took 190-863, a Gaussian under
#: acceleration control (N = 1,000, a 4-D state) 892; two components 0.8 apart (sd 0.15, N = 1,000)
#: ran to L-BFGS's 2,000 iterations (2,072 evaluations, 10.7 s) while splitting, its NE 0.73 at 250
#: evaluations and 0.40 at the end, for a blob start that ended 6 % above the OT start's.
QUANTIZE_EVALUATIONS = 1200


class Cancelled(Exception):
    """Raised inside a start's preparation when its ``cancel`` event is set (the solve was stopped)."""


def source_states(problem: "Problem") -> np.ndarray:
    """Initial states in the space of the terminal constraint (x, or (x, v) for acceleration)."""
    return problem.dynamics.source_states(problem.source)


def target_size(problem: "Problem") -> int:
    """Number of points standing for m_1: its particles or grid cells, or N for continuum targets."""
    return problem.target.support_size(problem.N)


class Quantization(NamedTuple):
    """A blob quantization: its points, their nonlocal energy NE, and whether its expansion stalled
    (``blob_quantization``)."""

    points: np.ndarray
    energy: float
    stalled: bool


class _Stalled(Exception):
    """Raised inside ``blob_quantization``'s L-BFGS when its expansion has stalled."""


def blob_quantization(objective: Objective, seed: int, cancel: threading.Event | None = None,
                      stalled_above: float = math.inf) -> Quantization:
    """N points minimizing the nonlocal energy alone, NE(Y) = (1/eps)||k_delta * mu_Y - k_delta * m_1||^2:
    the configuration of N particles that best represents m_1 at the resolution delta. Started from a
    small random cluster at the target's mean (spread delta/2), the repulsive self term makes the
    particles expand into an ordered arrangement, as in the paper's gradient descent from eqs. (56)-(57).

    At most ``QUANTIZE_EVALUATIONS`` evaluations. Where the mean lies far from the mass (between a
    mixture's far-apart components) the cluster splits slowly: its L-BFGS ran its 2,000 iterations
    (two components 3.6 apart, N = 150: 2,300 evaluations, 2.7 s a try, NE 26-34 at the end, against
    0.19 from clusters at the components' means). After
    ``QUANTIZE_PATIENCE`` evaluations a try whose NE is still above ``stalled_above`` (``target_points``:
    ``QUANTIZE_STALLED`` times the NE of the target's quasi-random quantization) stops there and is
    marked ``stalled``. Returns the points, their NE and that mark. Raises ``Cancelled`` as soon as
    ``cancel`` is set."""
    p = objective.problem
    rng = np.random.default_rng(seed)
    start = p.target.mean() + 0.5 * p.delta * rng.normal(size=(p.N, p.target.dim))
    y = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([y], lr=1.0, max_iter=QUANTIZE_EVALUATIONS, max_eval=QUANTIZE_EVALUATIONS,
                            history_size=50, line_search_fn="strong_wolfe", tolerance_grad=1e-10,
                            tolerance_change=1e-7)
    evaluations = 0

    def closure() -> "torch.Tensor":
        nonlocal evaluations
        if cancel is not None and cancel.is_set():
            raise Cancelled
        opt.zero_grad()
        value = objective.nonlocal_energy(y)
        evaluations += 1
        if evaluations == QUANTIZE_PATIENCE and float(value.detach()) > stalled_above:
            raise _Stalled
        value.backward()
        return value

    try:
        opt.step(closure)
        stalled = False
    except _Stalled:
        stalled = True
    y = y.detach()
    return Quantization(y.numpy(), float(objective.nonlocal_energy(y)), stalled)


def stalled_bar(objective: Objective) -> float:
    """The NE above which a blob quantization has stalled after ``QUANTIZE_PATIENCE`` evaluations:
    ``QUANTIZE_STALLED`` times the NE of the target's quasi-random quantization."""
    p = objective.problem
    plain, _ = p.target.quantization(p.N, p.seed)
    with torch.no_grad():
        return QUANTIZE_STALLED * float(objective.nonlocal_energy(torch.as_tensor(plain, dtype=torch.float64)))


#: Blob quantizations kept for reuse (the most recent ones), by everything they depend on
#: (``quantization_key``): a new solve onto the same target (the explorer's, after the sources, the
#: obstacles or M changed) skips their seconds of work (Fig. 2 continuum: 1.7 of its 3.0 s; a Gaussian
#: target of 1,000 particles: 2.3 of 7.7 s).
QUANTIZATIONS_KEPT = 8
_QUANTIZATIONS: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
_QUANTIZATIONS_LOCK = threading.Lock()


def quantization_key(problem: "Problem", tries: int) -> tuple:
    """What the best of ``tries`` blob quantizations of ``problem``'s target depends on: the target, N,
    delta, eps and the seeds, and the threads and kernel backend its sums run on (their order of
    summation), so that a kept one is bitwise the one a solve would make."""
    return (json.dumps(problem.target.to_spec(), sort_keys=True), problem.N, problem.delta, problem.eps,
            problem.seed, tries, torch.get_num_threads(), numba.get_num_threads(), kernels.backend_name())


def forget_quantizations() -> None:
    """Drop the kept blob quantizations (benchmarks time first solves)."""
    with _QUANTIZATIONS_LOCK:
        _QUANTIZATIONS.clear()


def blob_quantized(problem: "Problem") -> bool:
    """Whether the OT start onto this target uses blob quantizations: a continuum target and at most
    ``QUANTIZE_MAX_N`` particles (else the target's own points or a quasi-random quantization)."""
    return not problem.target.discrete and problem.N <= QUANTIZE_MAX_N


def target_points(objective: Objective, cancel: threading.Event | None = None,
                  blob: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Points and weights standing for m_1 in the OT start: the target's own particles (or grid
    cells); for continuum targets the best of ``QUANTIZE_TRIES`` blob quantizations (lowest NE, which
    in our measurements also gives the lowest final objective, among those that did not stall, or of
    all when every one stalled; kept for reuse, ``QUANTIZATIONS_KEPT``),
    or (``blob`` False, or large N) the target's quasi-random quantization."""
    p = objective.problem
    if not blob or not blob_quantized(p):
        return p.target.quantization(p.N, p.seed)
    tries = QUANTIZE_TRIES if p.N <= QUANTIZE_FEW_N else 1
    key = quantization_key(p, tries)
    with _QUANTIZATIONS_LOCK:
        points = _QUANTIZATIONS.get(key)
        if points is not None:
            _QUANTIZATIONS.move_to_end(key)
    if points is None:
        bar = stalled_bar(objective)
        made = [blob_quantization(objective, p.seed + k, cancel, stalled_above=bar) for k in range(tries)]
        points = min(made, key=lambda q: (q.stalled, q.energy)).points
        with _QUANTIZATIONS_LOCK:
            _QUANTIZATIONS[key] = points
            while len(_QUANTIZATIONS) > QUANTIZATIONS_KEPT:
                _QUANTIZATIONS.popitem(last=False)
    return points.copy(), np.full(p.N, 1.0 / p.N)


def ot_terminal_states(objective: Objective, cancel: threading.Event | None = None,
                       blob: bool = True) -> np.ndarray:
    """Barycentric projection of an OT plan from the source states (weights 1/N) onto the target's
    points, for the cost of steering a particle to a point (``steering_coordinates``: the squared
    distance under velocity control): particle i heads to N sum_k P_ik w_k. The plan is exact (emd)
    where affordable, multiscale beyond (``solver.assignment``)."""
    pts, w = target_points(objective, cancel, blob)
    a, L = steering_coordinates(objective)
    images, _, _ = match(a, pts @ L, w, workers=torch.get_num_threads())
    return np.linalg.solve(L.T, images.T).T


def rounded_terminal_states(objective: Objective) -> np.ndarray:
    """Each particle on one of the target's points, for a particle target whose OT plan is no permutation
    (K != N points of equal weight): an optimal assignment of the sources to the points under the cost of
    steering (``steering_coordinates``), each point taking at most ceil(N / K) particles (SciPy's
    ``linear_sum_assignment`` on the points repeated that often). The barycentric projection
    (``ot_terminal_states``) sends a particle whose plan splits it between points to their barycentre:
    with delta small against their distance, between the kernel's wells (``optimizers.ROUNDED_PAIRS``)."""
    p = objective.problem
    pts, _ = p.target.empirical
    copies = -(-p.N // len(pts))
    a, L = steering_coordinates(objective)
    slots = np.repeat(np.arange(len(pts)), copies)
    rows, cols = scipy_optimize.linear_sum_assignment(ot.dist(a, (pts @ L)[slots]))
    out = np.empty((p.N, pts.shape[1]))
    out[rows] = pts[slots[cols]]
    return out


#: ``detour`` tries this many sideways offsets each way, up to the obstacles' extent, on the paths a
#: first bend leaves deeper inside than ``DETOUR_MARGIN`` times the smallest obstacle's size.
DETOUR_STEPS, DETOUR_MARGIN = 20, 0.05
#: Iterations of L-BFGS that bend a start around the obstacles (SciPy's L-BFGS-B: torch.optim's first
#: use imports torch._dynamo, 3 s the app's first solve would wait before its first iteration).
BEND_ITERATIONS = 100


def detour(obstacles: "Obstacles", positions: np.ndarray, margin: float) -> np.ndarray:
    """The trajectories (N, M, d) with every path that lies deeper than ``margin`` inside an obstacle (and
    has both ends outside) moved sideways in its first two coordinates, by a tent (zero at both ends,
    largest at its deepest time point) along the normal of the chord from its start to its end: the
    smallest of ``DETOUR_STEPS`` offsets each way, up to the obstacles' extent, that takes the path out
    of every obstacle as the problem measures it (its time points, and its segments too with
    ``obstacle_segments``), else the one that leaves it least deep. Searching both sides finds the way
    around a wall of overlapping discs, where the penalty's gradient pushes a path crossing a seam both
    ways at once. Returns ``positions`` itself when no path needs moving."""

    def deepest(q: np.ndarray) -> np.ndarray:
        return (obstacles.segment_depths(q) if obstacles.segments else obstacles.depth(q)).max(1)

    inside = (deepest(positions) > margin) & (obstacles.depth(positions[:, [0, -1]]).max(1) <= 0)
    if not inside.any():
        return positions
    N, M = positions.shape[:2]
    chord = positions[:, -1, :2] - positions[:, 0, :2]
    normal = np.stack([-chord[:, 1], chord[:, 0]], 1) / np.maximum(np.linalg.norm(chord, axis=1), 1e-300)[:, None]
    t = np.linspace(0.0, 1.0, M)
    peak = np.clip(t[obstacles.depth(positions).argmax(1)], t[1] if M > 2 else 0.5, t[-2] if M > 2 else 0.5)
    tent = np.minimum(t / peak[:, None], (1.0 - t) / (1.0 - peak[:, None]))  # (N, M)
    low = np.min([s.bounding_box()[0][:2] for s in obstacles.shapes], axis=0)
    high = np.max([s.bounding_box()[1][:2] for s in obstacles.shapes], axis=0)
    steps = np.linalg.norm(high - low) * np.arange(1, DETOUR_STEPS + 1) / DETOUR_STEPS
    best, best_depth = positions.copy(), np.full(N, np.inf)
    todo = inside.copy()
    for offset in np.ravel(np.column_stack([steps, -steps])):
        moved = positions[todo].copy()
        moved[..., :2] += offset * tent[todo, :, None] * normal[todo, None, :]
        depth = deepest(moved)
        better = depth < best_depth[todo]
        rows = np.flatnonzero(todo)[better]
        best[rows], best_depth[rows] = moved[better], depth[better]
        todo[np.flatnonzero(todo)[depth <= 0]] = False
        if not todo.any():
            break
    return best


def around_obstacles(objective: Objective, variables: "torch.Tensor",
                     cancel: threading.Event | None = None) -> "torch.Tensor":
    """The trajectories of ``variables`` bent around the problem's obstacles, their terminal states kept,
    so that the solve that follows spends its time on transport, not on escaping obstacles. Each path is
    pushed away from the centre of every obstacle it enters (by its depth plus delta, most at mid-path: a
    straight path through a centre has no sideways gradient) and smoothed (``bent_paths``). Where a
    path stays inside (two overlapping discs push it both ways at once), it is moved sideways
    (``detour``) and the paths are smoothed again. Raises ``Cancelled`` once ``cancel`` is set."""
    p = objective.problem
    obstacles = p.obstacles
    if obstacles is None or p.dynamics.dim < 2:
        return variables
    pos = objective.positions(variables).detach().clone()
    start, end = pos[:, 0, :2], pos[:, -1, :2]
    direction = end - start
    normal = torch.stack([-direction[:, 1], direction[:, 0]], 1)
    normal = normal / normal.norm(dim=1, keepdim=True).clamp_min(1e-300)
    t = torch.linspace(0.0, 1.0, p.M, dtype=pos.dtype)
    for shape in obstacles.shapes:
        depth = torch.as_tensor(shape.depth(pos.numpy()))
        hit = depth.max(1).values > 0
        if not bool(hit.any()):
            continue
        centre = torch.as_tensor(shape.center[:2], dtype=pos.dtype)
        side = torch.sign(((centre - 0.5 * (start + end)) * normal).sum(1))
        side = torch.where(side == 0, torch.ones_like(side), side)
        amount = (depth.max(1).values + p.delta) * hit
        pos[:, :, :2] -= (side * amount)[:, None, None] * torch.sin(torch.pi * t)[None, :, None] * normal[:, None, :]
    x = bent_paths(objective, pos, cancel)
    positions = objective.positions(x).numpy()
    moved = detour(obstacles, positions, DETOUR_MARGIN * min(s.size for s in obstacles.shapes))
    return x if moved is positions else bent_paths(objective, torch.as_tensor(moved), cancel)


def bent_paths(objective: Objective, positions: "torch.Tensor", cancel: threading.Event | None = None
               ) -> "torch.Tensor":
    """Variables of the trajectories ``positions`` smoothed by ``BEND_ITERATIONS`` of L-BFGS on the
    control energy plus the obstacle penalty (with every segment between time points, whatever
    ``obstacle_segments`` says) plus a stiff pin of the terminal states. Checks ``cancel`` before every
    evaluation (raising ``Cancelled``): at M = 1,500 under a linear system the bend took 35 s (257
    evaluations through its step loop), and a stopped solve, or one past its time limit, waited for it."""
    p = objective.problem
    obstacles = p.obstacles
    x0 = objective.variables_from_positions(positions)
    terminal0 = p.dynamics.terminal(positions, objective.h)
    pin = 10.0 * obstacles.weight
    tau = objective.obstacle_smoothing

    def energy_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        if cancel is not None and cancel.is_set():
            raise Cancelled
        x = torch.tensor(flat.reshape(x0.shape), requires_grad=True)
        with torch.enable_grad():
            positions = objective.positions(x)
            penalty = (obstacles(positions, tau).sum()
                       + obstacles.segment_penalty(positions[:, :-1], positions[:, 1:], tau).sum())
            drift = p.dynamics.terminal(positions, objective.h) - terminal0
            value = objective.kinetic(positions, x) + (penalty * objective.h + pin * (drift * drift).sum()) / p.N
            value.backward()
        return float(value.detach()), x.grad.numpy().ravel()

    found = scipy_optimize.minimize(energy_and_gradient, x0.numpy().ravel(), jac=True, method="L-BFGS-B",
                                    options={"maxiter": BEND_ITERATIONS, "maxcor": 30, "gtol": 1e-12, "ftol": 1e-14})
    return torch.as_tensor(found.x.reshape(x0.shape))


def paths_to(objective: Objective, terminal: np.ndarray) -> "torch.Tensor":
    """Variables of trajectories ending at the given terminal states: minimum-energy steering, or
    straight lines in position when a drift couples the particles."""
    p = objective.problem
    if not p.dynamics.couples_particles:
        return min_energy_variables(objective, terminal)
    return objective.variables_from_positions(torch.as_tensor(
        straight_lines(p.source, terminal[:, : p.source.shape[1]], p.M), dtype=torch.float64))


@dataclass(frozen=True)
class NamedStart:
    """A start without parameters: written in a problem file as its kind alone, e.g. "paper"."""

    kind: ClassVar[str]
    selectable: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: Any, context: Context) -> "NamedStart":
        return cls()

    def to_spec(self) -> Any:
        return self.kind


@INITS.register
@dataclass(frozen=True)
class PaperStart(NamedStart):
    """Straight lines to the target's centre of mass (the paper's eqs. 56-57)."""

    kind: ClassVar[str] = "paper"

    def positions(self, problem: "Problem") -> np.ndarray:
        """Eqs. (56)-(57) (under acceleration control from the fixed second point x_0 + h v_0)."""
        d = problem.source.shape[1]
        return problem.dynamics.paper_positions(problem.source, problem.target.mean()[:d], problem.M, problem.h)

    def variables(self, objective: Objective, cancel: threading.Event | None = None) -> "torch.Tensor":
        return objective.variables_from_positions(torch.as_tensor(self.positions(objective.problem),
                                                                  dtype=torch.float64))


@INITS.register
@dataclass(frozen=True)
class OTStart(NamedStart):
    """Minimum-energy paths to an exact OT assignment onto the target (straight lines for velocity)."""

    kind: ClassVar[str] = "ot"
    blob: bool = True  # continuum targets: onto blob quantizations (seconds), else a quasi-random one

    def variables(self, objective: Objective, cancel: threading.Event | None = None) -> "torch.Tensor":
        return paths_to(objective, ot_terminal_states(objective, cancel, self.blob))


@INITS.register
@dataclass(frozen=True)
class SourceStart(NamedStart):
    """Particles stay at their source states (then move as the optimizer pushes them)."""

    kind: ClassVar[str] = "source"

    def variables(self, objective: Objective, cancel: threading.Event | None = None) -> "torch.Tensor":
        return paths_to(objective, source_states(objective.problem))


@INITS.register
@dataclass(frozen=True)
class GivenTrajectories:
    """Trajectories given in the file: {"trajectories": N x M x d positions}."""

    positions: np.ndarray
    kind: ClassVar[str] = "trajectories"
    selectable: ClassVar[bool] = False

    @classmethod
    def from_spec(cls, spec: Any, context: Context) -> "GivenTrajectories":
        shape = (context.N, context.M, context.dim)
        if not isinstance(spec, dict):
            raise ProblemError("init.trajectories", f"must be an array of shape (N, M, d) = {shape}")
        try:
            tr = np.asarray(spec["trajectories"], dtype=np.float64)
        except (TypeError, ValueError):
            raise ProblemError("init.trajectories", f"must be an array of numbers of shape (N, M, d) = {shape}") from None
        if tr.shape != shape:
            raise ProblemError("init.trajectories", f"must have shape (N, M, d) = {shape} (got {tr.shape})")
        if not np.all(np.isfinite(tr)):
            raise ProblemError("init.trajectories", "contains NaN or infinite values")
        return cls(tr)

    def to_spec(self) -> Any:
        return {"trajectories": floats(self.positions)}

    def variables(self, objective: Objective, cancel: threading.Event | None = None) -> "torch.Tensor":
        return objective.variables_from_positions(torch.as_tensor(self.positions, dtype=torch.float64))


def initial_variables(objective: Objective, init: Any = None,
                      cancel: threading.Event | None = None) -> "torch.Tensor":
    """Free variables of the initial trajectories of ``init`` (an initialization, default the
    problem's own); the "ot" start's target quantization stops with ``Cancelled`` once ``cancel`` is set."""
    return (objective.problem.init if init is None else init).variables(objective, cancel)


def initial_positions(problem: "Problem", init: Any = None) -> np.ndarray:
    """Initial positions (N, M, d), e.g. to draw before a solve."""
    objective = Objective(problem)
    return objective.positions(initial_variables(objective, init)).detach().numpy()
