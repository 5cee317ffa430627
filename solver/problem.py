"""Problem files: the JSON description of one MFC_{eps,delta,N} instance (eq. 7, section 4.1).

``problem_from_dict(spec)`` / ``load_problem(path)`` validate a problem and return a frozen
``Problem``, composed of the registered parts (``solver.registry``): dynamics and source, target,
control cost, obstacles, potentials, interactions, initialization, and the optimizer settings.
``Problem.to_spec()`` is its canonical form: every default written out, arrays as lists of floats;
reading it back gives the same problem and the same ``to_spec()`` (the form sessions, the command
line and run hashes use). Invalid input raises ``ProblemError`` whose message is one line naming the
field and the fix. The format is documented in README.md ("Problem files"). numpy only: validation
never waits for torch (``solver.lazy``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .costs import CONTROL_COSTS, INTERACTIONS, POTENTIALS, Obstacles
from .dynamics import DYNAMICS
from .errors import ProblemError
from .reading import Context, check_keys, json_file, mapping, number
from .registry import INITS, OPTIMIZERS
from .scales import check_scales
from .targets import TARGETS

__all__ = ["DELTA_EXPONENT", "OptimizerSpec", "Problem", "ProblemError", "auto_delta", "load_problem",
           "problem_from_dict", "problem_warnings"]

DELTA_EXPONENT = 0.99  # k in delta = N^(-k/d), eq. (58)
#: Keys that describe a problem without changing it (kept by ``to_spec``, left out of run hashes).
METADATA_KEYS = ("name", "description", "paper")
#: Every top-level key of a problem file.
KEYS = METADATA_KEYS + ("dynamics", "source", "target", "obstacles", "obstacle_weight", "obstacle_segments", "potential",
                        "interaction", "eps", "delta", "delta_exponent", "M", "p", "control_cost",
                        "optimizer", "init", "seed")


def auto_delta(N: int, state_dim: int, exponent: float = DELTA_EXPONENT) -> float:
    """Eq. (58): delta = N^(-k/d), d the dimension of the constrained state (2 per space dimension
    under acceleration control), k = ``exponent``."""
    return max(N, 1) ** (-exponent / state_dim)


@dataclass(frozen=True)
class OptimizerSpec:
    """How to minimize: ``method`` (a name in ``OPTIMIZERS``), ``lr`` (learning rate of gd/adam; None
    picks the paper's scaling), iteration and wall-clock limits, and the stopping tolerances
    (``gtol`` on the largest per-particle gradient N |dE/dy|, ``rtol`` on the relative decrease;
    ``plateau`` on the relative decrease over the last ``trust_region.PLATEAU_WINDOW`` Newton iterations
    (``optimizers.GLASSY_WINDOW`` L-BFGS iterations from large rough starts) of the robust and local
    methods, 0 to solve to ``gtol``)."""

    method: str = "robust"
    lr: float | None = None
    max_iter: int = 20000
    time_limit: float = 60.0
    gtol: float = 1e-9
    rtol: float = 1e-10
    plateau: float = 3e-6

    @classmethod
    def from_spec(cls, spec: Any) -> "OptimizerSpec":
        o = mapping(spec if spec is not None else {}, "optimizer", '{"method": "robust"}')
        check_keys(o, ("method", "lr", "max_iter", "time_limit", "gtol", "rtol", "plateau"), "optimizer")
        d = cls()
        method = o.get("method", d.method)
        OPTIMIZERS[method]  # an unknown name raises, listing the registered ones
        lr = None if o.get("lr") is None else number(o, "lr", "optimizer.lr", positive=True)
        return cls(method, lr, number(o, "max_iter", "optimizer.max_iter", d.max_iter, minimum=1, integer=True),
                   number(o, "time_limit", "optimizer.time_limit", d.time_limit, positive=True),
                   number(o, "gtol", "optimizer.gtol", d.gtol, minimum=0.0),
                   number(o, "rtol", "optimizer.rtol", d.rtol, minimum=0.0),
                   number(o, "plateau", "optimizer.plateau", d.plateau, minimum=0.0))

    def to_spec(self) -> dict[str, Any]:
        return {"method": self.method, "lr": self.lr, "max_iter": self.max_iter,
                "time_limit": self.time_limit, "gtol": self.gtol, "rtol": self.rtol,
                "plateau": self.plateau}


@dataclass(frozen=True)
class Problem:
    """A validated blob-method problem. All arrays are float64 numpy; nothing here holds torch state.
    ``spec`` is the dict it was read from; ``to_spec()`` its canonical form."""

    spec: dict
    dynamics: Any
    source: np.ndarray  # (N, d) positions (full states for linear dynamics)
    target: Any
    eps: float
    delta: float
    M: int
    control_cost: Any
    obstacles: Obstacles | None
    potentials: tuple = ()
    interactions: tuple = ()
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    init: Any = None  # a registered initialization (``solver.init``)
    seed: int = 0
    delta_spec: Any = "auto"  # "auto" (eq. 58) or the number given
    delta_exponent: float = DELTA_EXPONENT
    metadata: dict = field(default_factory=dict)

    @property
    def N(self) -> int:
        return self.source.shape[0]

    @property
    def h(self) -> float:
        return 1.0 / (self.M - 1)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "problem"))

    @property
    def has_state_cost(self) -> bool:
        """Whether anything but the control energy acts before t = 1 (obstacles, potentials, interactions)."""
        return self.obstacles is not None or bool(self.potentials) or bool(self.interactions)

    @property
    def separable(self) -> bool:
        """Whether every term but the nonlocal one is a sum over particles (no interaction, no drift
        coupling the particles): the Hessian is then block-diagonal plus the nonlocal part."""
        return not self.interactions and not self.dynamics.couples_particles

    @property
    def smooth(self) -> bool:
        """Whether the state costs are twice differentiable (Newton's method applies)."""
        return self.obstacles is None or self.obstacles.smooth

    def with_changes(self, **changes: Any) -> "Problem":
        """A new problem whose spec has the given top-level keys replaced (validated again)."""
        spec = copy.deepcopy(self.spec)
        spec.update(changes)
        return problem_from_dict(spec)

    def to_spec(self, metadata: bool = True) -> dict[str, Any]:
        """The canonical problem dict (JSON-ready): every part's ``to_spec``, defaults written out;
        ``metadata=False`` leaves out name, description and paper (what a run's hash covers)."""
        out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in self.metadata.items()} if metadata else {}
        out["dynamics"] = self.dynamics.to_spec()
        out["source"] = self.dynamics.source_spec(self.source)
        out["target"] = self.target.to_spec()
        out["eps"] = self.eps
        if self.delta_spec == "auto":
            out["delta"], out["delta_exponent"] = "auto", self.delta_exponent
        else:
            out["delta"] = self.delta
        out["M"] = self.M
        out.update(self.control_cost.to_spec())
        if self.obstacles is not None:
            out.update(self.obstacles.to_spec())
        if self.potentials:
            out["potential"] = [v.to_spec() for v in self.potentials]
        if self.interactions:
            out["interaction"] = [w.to_spec() for w in self.interactions]
        out["optimizer"] = self.optimizer.to_spec()
        out["init"] = self.init.to_spec()
        out["seed"] = self.seed
        return out


def _listed(spec: dict, key: str, registry: Any, context: Context) -> tuple:
    """The parts listed under ``key`` (potentials, interactions), each read by its registered kind."""
    items = spec.get(key) or []
    if not isinstance(items, list):
        raise ProblemError(key, f"must be a list of {{\"kind\": ...}} objects (got {type(items).__name__})")
    parts = []
    for k, item in enumerate(items):
        where = f"{key}[{k}]"
        item = mapping(item, where, '{"kind": "' + registry.kinds()[0] + '", ...}')
        parts.append(registry[registry.kind_of(item, where)].from_spec(item, context, where))
    return tuple(parts)


def problem_from_dict(spec: Any) -> Problem:
    """Validate a problem dict (the parsed JSON file) and build the ``Problem``."""
    spec = copy.deepcopy(mapping(spec, "problem", '{"source": {...}, "target": {...}}'))
    check_keys(spec, KEYS, "")
    source = mapping(spec.get("source"), "source", '{"points": [[x0, x1], ...]}')
    dyn_spec = mapping(spec.get("dynamics", {"kind": "velocity"}), "dynamics", '{"kind": "velocity"}')
    dynamics, points = DYNAMICS[DYNAMICS.kind_of(dyn_spec, "dynamics")].from_spec(dyn_spec, source)
    M = number(spec, "M", "M", 5, integer=True, minimum=2)
    dynamics.check_M(M)
    eps = number(spec, "eps", "eps", 0.01, positive=True)
    context = Context.of(dynamics, points.shape[0], M, eps)
    target_spec = spec.get("target")
    if not isinstance(target_spec, dict):
        raise ProblemError("target", "is required; give {\"kind\": \"particles\", \"points\": [...]} or one of "
                                     f"the kinds {', '.join(TARGETS.kinds())}")
    target = TARGETS[TARGETS.kind_of(target_spec, "target")].from_spec(target_spec, context)
    delta_spec = spec.get("delta", "auto")
    exponent = number(spec, "delta_exponent", "delta_exponent", DELTA_EXPONENT, positive=True)
    if delta_spec == "auto":
        delta = auto_delta(context.N, dynamics.state_dim, exponent)
    else:
        delta = number(spec, "delta", "delta", positive=True)
        delta_spec = delta
    cost_kind = spec.get("control_cost", CONTROL_COSTS.default)
    control_cost = CONTROL_COSTS[CONTROL_COSTS.kind_of(cost_kind, "control_cost")].from_spec(spec)
    obstacles = Obstacles.from_spec(spec.get("obstacles"), spec.get("obstacle_weight", "auto"), context,
                                    spec.get("obstacle_segments", False))
    potentials = _listed(spec, "potential", POTENTIALS, context)
    interactions = _listed(spec, "interaction", INTERACTIONS, context)
    optimizer = OptimizerSpec.from_spec(spec.get("optimizer"))
    init_spec = spec.get("init", INITS.default)
    init_kind = "trajectories" if isinstance(init_spec, dict) and "trajectories" in init_spec else init_spec
    if not isinstance(init_kind, str):
        raise ProblemError("init", f"must be one of {', '.join(INITS.kinds())} or {{\"trajectories\": [...]}}")
    init = INITS[INITS.kind_of(init_kind, "init")].from_spec(init_spec, context)
    seed = number(spec, "seed", "seed", 0, integer=True, minimum=0)
    metadata = {k: spec[k] for k in METADATA_KEYS if k in spec}
    problem = Problem(spec=spec, dynamics=dynamics, source=points, target=target, eps=eps, delta=delta, M=M,
                      control_cost=control_cost, obstacles=obstacles, potentials=potentials,
                      interactions=interactions, optimizer=optimizer, init=init, seed=seed,
                      delta_spec=delta_spec, delta_exponent=exponent, metadata=metadata)
    check_scales(problem, exponent_changed=exponent != DELTA_EXPONENT)  # float64 resolves its kernel and penalty
    return problem


def problem_warnings(problem: Problem) -> list[str]:
    """One line per combination that is valid but probably not what was meant (solved anyway): source
    or target points inside an obstacle (the penalty (59) pushes a source point out before it moves on;
    no terminal state may rest inside one)."""
    out = []
    obstacles = problem.obstacles
    if obstacles is None:
        return out
    points = [("source", problem.source[:, : problem.dynamics.dim])]
    if problem.target.empirical is not None:
        points.append(("target", problem.target.empirical[0][:, : problem.dynamics.dim]))
    for where, pts in points:
        inside = int((obstacles.depth(pts) > 0).sum())
        if inside:
            fix = "the penalty pushes them out first" if where == "source" else "the terminal states cannot reach them"
            out.append(f"{where}: {inside} of {len(pts)} points lie inside an obstacle; {fix} "
                       "(move them out to solve the problem as drawn)")
    return out


def load_problem(path: str | Path) -> Problem:
    """Read and validate a problem JSON file."""
    return problem_from_dict(json_file(path, "problem"))
