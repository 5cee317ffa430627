"""The session model: one browser tab's scene and parameters, and the problem dict built from them.

``SessionModel`` holds the scene (source points, target, obstacles) and the solver parameters as
``param`` parameters with soft bounds and docs (the sidebar widgets are generated from them). It
loads presets (problem files in ``assets/``), builds the JSON problem dict, and keeps ``message``
set to the solver's one-line validation error (empty when the problem is valid). Parameters with no
widget (e.g. a linear system's A and B, pairwise interactions) are carried through unchanged, so a
preset or an imported session round-trips exactly.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import param

import solver
from solver.io import read_points_csv

from .generators import generate

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

#: Keys of the problem dict that have widgets; everything else is carried in ``SessionModel.extra``.
MANAGED_KEYS = {"name", "dynamics", "source", "target", "obstacles", "obstacle_weight", "eps", "delta",
                "M", "p", "optimizer", "init", "seed"}
#: Parameters restored from (and written to) the URL query, besides preset, delta and lr.
URL_PARAMS = ("dynamics", "eps", "M", "p", "method", "max_iter", "time_limit", "init", "seed")
#: Default parameters (JSON) of each continuum target kind, in the scene's coordinates.
TARGET_DEFAULTS: dict[str, dict[str, Any]] = {
    "gaussian": {"mean": [1.0, 1.0], "cov": 0.02},
    "mixture": {"components": [{"weight": 0.5, "mean": [1.0, 0.6], "cov": 0.01},
                               {"weight": 0.5, "mean": [1.0, 1.4], "cov": 0.01}]},
    "uniform": {"low": [0.75, 0.75], "high": [1.25, 1.25]},
    "grid": {"low": [0.5, 0.5], "high": [1.5, 1.5], "values": [[0, 1, 0], [1, 1, 1], [0, 1, 0]]},
}


def list_presets(assets: Path = ASSETS) -> dict[str, Path]:
    """Preset name -> problem file: ``assets/*.json`` (the paper's figures) then ``assets/playful/``."""
    files = sorted(assets.glob("*.json")) + sorted((assets / "playful").glob("*.json"))
    return {(f"playful/{f.stem}" if f.parent.name == "playful" else f.stem): f for f in files}


def _points(value: Any, dim: int) -> np.ndarray:
    arr = np.asarray(value if value is not None else [], dtype=float)
    return arr.reshape(-1, dim) if arr.size else np.zeros((0, dim))


class SessionModel(param.Parameterized):
    """Scene and parameters of one session; ``to_spec()`` is the problem dict given to the solver."""

    title = param.String("my problem", doc="Name of the problem (written into exported files).")
    preset = param.Selector(default="", objects=[""], doc="A problem file from assets/: fills the "
                            "scene and all parameters.")
    dynamics = param.Selector(default="velocity", objects=["velocity", "acceleration", "linear"],
                              doc="velocity: dy/dt = u (the W2 problem); acceleration: d2y/dt2 = u "
                                  "with source velocities (Fig. 5); linear: dy/dt = Ay + Bu (from presets).")
    source = param.Array(default=np.zeros((0, 2)), doc="Source particles z_i, (N, d).")
    target_kind = param.Selector(default="particles",
                                 objects=["particles", "gaussian", "mixture", "uniform", "grid"],
                                 doc="The target m_1: particles w_k, or a continuum density.")
    target_points = param.Array(default=np.zeros((0, 2)), doc="Target particles w_k, (K, d).")
    target_params = param.String(default="", doc="JSON parameters of a continuum target, e.g. "
                                 '{"mean": [1, 1], "cov": 0.02} for a Gaussian.')
    obstacles = param.List(default=[], item_type=dict, doc="Obstacles {center: [x, y], radius: r}.")
    obstacle_weight_auto = param.Boolean(default=True, doc="Obstacle weight c = 1/(h eps) (section 4.5).")
    obstacle_weight = param.Number(default=100.0, softbounds=(1.0, 1e4),
                                   doc="Obstacle penalty weight c in L(y) = c sum max(r^2 - |y - c_k|^2, 0).")
    eps = param.Number(default=0.01, softbounds=(1e-4, 1.0),
                       doc="Weight 1/eps of the terminal (nonlocal) penalty; smaller = closer to the "
                           "target. Must be > 0.")
    delta_auto = param.Boolean(default=True, doc="delta = N^(-0.99/d) (eq. 58).")
    delta = param.Number(default=0.05, softbounds=(1e-3, 1.0),
                         doc="Blob width delta of the mollifier K_delta. Must be > 0.")
    M = param.Integer(default=10, softbounds=(2, 60),
                      doc="Time points per trajectory (h = 1/(M-1)); at least 2 (3 for acceleration).")
    p = param.Number(default=2.0, softbounds=(1.1, 4.0), doc="Control cost exponent, psi(u) = |u|^p, p > 1.")
    method = param.Selector(default="robust", objects=sorted(solver.METHODS),
                            doc="Optimizer: robust (fast default), gd (the paper's gradient descent), "
                                "lbfgs, adam.")
    lr_auto = param.Boolean(default=True, doc="Learning rate from the paper's scaling.")
    lr = param.Number(default=0.1, softbounds=(1e-4, 10.0), doc="Learning rate of gd / adam (> 0).")
    max_iter = param.Integer(default=20000, softbounds=(1, 100000), doc="Iteration limit (>= 1).")
    time_limit = param.Number(default=60.0, softbounds=(1.0, 600.0), doc="Wall-clock limit in seconds.")
    init = param.Selector(default="paper", objects=["paper", "ot", "source"],
                          doc="Initial trajectories: paper (all to the target's mean), ot (straight "
                              "lines to an OT assignment), source (stay put).")
    seed = param.Integer(default=0, bounds=(0, None), doc="Random seed (generators, quantization).")
    extra = param.Dict(default={}, doc="Problem keys without a widget, passed through unchanged.")
    message = param.String(default="", doc="The current validation error (one line) or ''.")
    scene_version = param.Integer(default=0, doc="Bumped when the points change outside the draw tools.")

    def __init__(self, **params: Any) -> None:
        params.setdefault("source", generate("grid", 49, 0, (0.0, 0.0), 0.5))
        params.setdefault("target_points", generate("ring", 49, 0, (1.5, 1.5), 0.6))
        super().__init__(**params)
        self._presets = list_presets()
        self.param.preset.objects = [""] + list(self._presets)
        self.param.watch(self._revalidate, [p for p in self.param if p not in
                                            ("message", "scene_version", "name", "preset")])
        self._revalidate()

    # ------------------------------------------------------------------------------- derived
    @property
    def dim(self) -> int:
        """Dimension of the positions (the scene shows the first two coordinates)."""
        return int(self.source.shape[1]) if self.source.ndim == 2 else 2

    @property
    def N(self) -> int:
        return int(self.source.shape[0])

    def resolved_delta(self) -> float:
        """delta as the solver resolves it ('auto' = N^(-0.99/d), d the constrained state's dim)."""
        if not self.delta_auto:
            return self.delta
        state_dim = self.dim * (2 if self.dynamics == "acceleration" else 1)
        return max(self.N, 1) ** (-solver.problem.DELTA_EXPONENT / state_dim)

    def summary(self) -> str:
        """One line describing the scene (shown in the sidebar; the tests compare it)."""
        target = (f"{len(self.target_points)} target points" if self.target_kind == "particles"
                  else f"{self.target_kind} target")
        return (f"{self.N} source points, {target}, {len(self.obstacles)} obstacles, d = {self.dim}, "
                f"{self.dynamics}, eps = {self.eps:g}, M = {self.M}, delta = {self.resolved_delta():.4g}")

    # ------------------------------------------------------------------------------- spec
    def to_spec(self) -> dict:
        """The JSON problem dict of the current scene and parameters."""
        spec: dict[str, Any] = copy.deepcopy(self.extra)
        dyn_extra = spec.pop("_dynamics", {})
        spec["name"] = self.title
        spec["dynamics"] = dict(dyn_extra, kind=self.dynamics) if self.dynamics == "linear" else \
            {k: v for k, v in dict(dyn_extra, kind=self.dynamics).items() if k in ("kind", "drift")}
        source: dict[str, Any] = {"points": self.source.tolist()}
        src_vel = spec.pop("_source_velocities", None)
        if self.dynamics == "acceleration" and src_vel is not None and len(src_vel) == self.N:
            source["velocities"] = src_vel
        spec["source"] = source
        spec["target"] = self._target_spec(spec.pop("_target_extra", {}))
        if self.obstacles:
            spec["obstacles"] = copy.deepcopy(self.obstacles)
            spec["obstacle_weight"] = "auto" if self.obstacle_weight_auto else self.obstacle_weight
        spec["eps"] = self.eps
        spec["delta"] = "auto" if self.delta_auto else self.delta
        spec["M"] = self.M
        spec["p"] = self.p
        spec["optimizer"] = dict(spec.pop("_optimizer_extra", {}), method=self.method,
                                 lr=None if self.lr_auto else self.lr, max_iter=self.max_iter,
                                 time_limit=self.time_limit)
        spec["init"] = self.init
        spec["seed"] = self.seed
        return spec

    def _target_spec(self, target_extra: dict) -> dict:
        if self.target_kind == "particles":
            out: dict[str, Any] = {"kind": "particles", "points": self.target_points.tolist()}
            for key in ("weights", "velocities"):  # kept while the number of points is unchanged
                if key in target_extra and len(target_extra[key]) == len(self.target_points):
                    if key == "weights" or self.dynamics == "acceleration":
                        out[key] = target_extra[key]
            return out
        try:
            params = json.loads(self.target_params or "{}")
        except json.JSONDecodeError as err:
            raise solver.ProblemError("target parameters", f"not valid JSON ({err.msg}); write e.g. "
                                      '{"mean": [1, 1], "cov": 0.02}') from None
        if not isinstance(params, dict):
            raise solver.ProblemError("target parameters", "must be a JSON object")
        return dict(params, kind=self.target_kind)

    def build_problem(self) -> solver.Problem:
        """Validate and build the solver's Problem; raises ProblemError with a one-line message."""
        return solver.problem_from_dict(self.to_spec())

    def _revalidate(self, *_: Any) -> None:
        try:
            self.build_problem()
        except solver.ProblemError as err:
            self.message = str(err)
        else:
            self.message = ""

    def load_spec(self, spec: dict) -> None:
        """Fill the scene and all parameters from a problem dict (a preset or an imported session)."""
        spec = copy.deepcopy(spec)
        dyn = dict(spec.get("dynamics") or {"kind": "velocity"})
        src = spec.get("source") or {}
        points = np.asarray(src.get("points", []), dtype=float)
        dim = points.shape[1] if points.ndim == 2 else 2
        target = dict(spec.get("target") or {"kind": "particles", "points": []})
        kind = target.pop("kind", "particles")
        opt = dict(spec.get("optimizer") or {})
        extra = {k: v for k, v in spec.items() if k not in MANAGED_KEYS}
        extra["_dynamics"] = {k: v for k, v in dyn.items() if k != "kind"}
        extra["_source_velocities"] = src.get("velocities")
        target_points = np.zeros((0, dim))
        target_params = ""
        if kind == "particles":
            target_points = _points(target.pop("points", []), dim)
            extra["_target_extra"] = target
        else:
            target_params = json.dumps(target)
        extra["_optimizer_extra"] = {k: v for k, v in opt.items()
                                     if k not in ("method", "lr", "max_iter", "time_limit")}
        weight = spec.get("obstacle_weight", "auto")
        delta = spec.get("delta", "auto")
        with param.parameterized.batch_call_watchers(self):
            self.param.update(
                title=str(spec.get("name", "problem")), dynamics=dyn.get("kind", "velocity"),
                source=_points(points, dim), target_kind=kind, target_points=target_points,
                target_params=target_params,
                obstacles=[{"center": list(map(float, o["center"])), "radius": float(o["radius"])}
                           for o in spec.get("obstacles") or []],
                obstacle_weight_auto=weight == "auto",
                obstacle_weight=self.obstacle_weight if weight == "auto" else float(weight),
                eps=float(spec.get("eps", 0.01)), delta_auto=delta == "auto",
                delta=self.delta if delta == "auto" else float(delta), M=int(spec.get("M", 5)),
                p=float(spec.get("p", 2.0)), method=opt.get("method", "robust"),
                lr_auto=opt.get("lr") is None, lr=self.lr if opt.get("lr") is None else float(opt["lr"]),
                max_iter=int(opt.get("max_iter", 20000)), time_limit=float(opt.get("time_limit", 60.0)),
                init=spec.get("init", "paper") if isinstance(spec.get("init", "paper"), str) else "paper",
                seed=int(spec.get("seed", 0)), extra=extra)
            self.scene_version += 1

    def load_preset(self, name: str) -> None:
        """Load the named preset (a key of ``list_presets()``); sets ``message`` if it is invalid."""
        spec = json.loads(self._presets[name].read_text())
        self.load_spec(spec)
        self.preset = name

    # ------------------------------------------------------------------------------- URL
    def query(self) -> dict[str, str]:
        """URL query parameters that restore this session's preset and parameters (a shareable link;
        hand-edited scenes are shared by exporting the session)."""
        out = {"preset": self.preset} if self.preset else {}
        for key in URL_PARAMS:
            out[key] = str(getattr(self, key))
        out["delta"] = "auto" if self.delta_auto else str(self.delta)
        out["lr"] = "auto" if self.lr_auto else str(self.lr)
        return out

    def apply_query(self, query: dict[str, str]) -> list[str]:
        """Restore a preset and parameters from URL query values; returns one-line messages for the
        values that were refused (unknown preset, not a number, ...)."""
        problems = []
        if query.get("preset"):
            if query["preset"] in self._presets:
                self.load_preset(query["preset"])
            else:
                problems.append(f"preset: unknown preset {query['preset']!r}; choose one from the list")
        for key, text in query.items():
            try:
                if key in ("delta", "lr"):
                    auto = text == "auto"
                    self.param.update({f"{key}_auto": auto, **({} if auto else {key: float(text)})})
                elif key in URL_PARAMS:
                    kind = self.param[key]
                    value = int(text) if isinstance(kind, param.Integer) else float(text) if isinstance(
                        kind, param.Number) else text
                    setattr(self, key, value)
            except (ValueError, TypeError) as err:
                problems.append(f"{key}: cannot use {text!r} from the link ({err})")
        return problems

    # ------------------------------------------------------------------------------- edits
    def set_points(self, which: str, points: np.ndarray, *, external: bool = True) -> None:
        """Replace the source or target points (``external``: redraw the scene's draw tools)."""
        pts = _points(points, self.dim)
        if which == "source":
            self.source = pts
        else:
            self.target_points = pts
        if external:
            self.scene_version += 1

    def generate_points(self, which: str, kind: str, n: int, seed: int, center: tuple[float, float],
                        scale: float) -> None:
        """Replace the source or target points with a generated cloud (a target becomes particles)."""
        pts = generate(kind, n, seed, center, scale, dim=self.dim)
        if which == "target":
            self.target_kind = "particles"
        self.set_points(which, pts)

    def load_points_csv(self, which: str, text: str) -> None:
        """Replace the source or target points with the rows of a CSV (one point per row, first d
        columns used). Raises ProblemError with a one-line message on a malformed file."""
        pts = read_points_csv(text, f"{which} CSV")
        if pts.shape[1] < self.dim:
            raise solver.ProblemError(f"{which} CSV", f"has {pts.shape[1]} columns but the scene needs "
                                      f"{self.dim} coordinates per point")
        if which == "target":
            self.target_kind = "particles"
        self.set_points(which, pts[:, : self.dim])

    def add_obstacle(self, x: float, y: float, radius: float) -> None:
        self.obstacles = self.obstacles + [{"center": [float(x), float(y)], "radius": float(radius)}]

    def obstacle_at(self, x: float, y: float) -> int | None:
        """Index of the (last drawn) obstacle containing (x, y), or None."""
        for k in reversed(range(len(self.obstacles))):
            cx, cy = self.obstacles[k]["center"][:2]
            if (x - cx) ** 2 + (y - cy) ** 2 <= self.obstacles[k]["radius"] ** 2:
                return k
        return None

    def update_obstacle(self, index: int, **changes: Any) -> None:
        obs = copy.deepcopy(self.obstacles)
        obs[index].update(changes)
        self.obstacles = obs

    def remove_obstacle(self, index: int) -> None:
        self.obstacles = [o for k, o in enumerate(self.obstacles) if k != index]

    def set_target_kind(self, kind: str) -> None:
        """Switch the target kind, filling default parameters for a continuum kind (no-op if unchanged)."""
        if kind == self.target_kind:
            return
        if kind != "particles":
            defaults = copy.deepcopy(TARGET_DEFAULTS[kind])
            if self.dim != 2:
                defaults = _resize_target_defaults(defaults, self.dim)
            self.target_params = json.dumps(defaults)
        self.target_kind = kind
        self.scene_version += 1


def _resize_target_defaults(params: dict, dim: int) -> dict:
    """Default target parameters for a dimension other than 2 (first coordinates, repeated)."""
    def fix(v: Any) -> Any:
        if isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v):
            return (v * dim)[:dim]
        return v
    out = {k: fix(v) for k, v in params.items()}
    if "components" in out:
        out["components"] = [{k: fix(v) for k, v in c.items()} for c in out["components"]]
    if "values" in out and dim == 1:
        out["values"] = out["values"][1]
    return out
