"""The session model: one browser tab's scene and parameters, and the problem dict built from them.

``SessionModel`` holds the scene (source points, target, obstacles) and the solver parameters as
``param`` parameters with soft bounds and docs (the sidebar widgets are generated from them). The
choices offered (dynamics, target kinds, obstacle shapes, initializations, methods) and their
defaults and help come from the solver's registries. The problem format itself is the solver's:
``to_spec()`` puts the widget values at their places in the problem file over ``base`` (the loaded
problem's canonical form, which carries the parts without widgets, e.g. a linear system's A and B or
pairwise interactions) and returns the solver's canonical ``Problem.to_spec()`` when the result is
valid. ``message`` holds the solver's one-line validation error (empty when the problem is valid).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import param

import solver
from solver.budget import check as check_memory
from solver.io import read_points_csv
from solver.problem import auto_delta
from solver.reading import Context
from solver.targets import ParticleTarget

from solver.generators import generate

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
#: The scene a new session opens with (also a preset, and the benchmark's "default scene").
DEFAULT_SCENE = ASSETS / "default_scene.json"

#: Parameters restored from (and written to) the URL query, besides preset, delta and lr.
URL_PARAMS = ("dynamics", "eps", "M", "p", "method", "max_iter", "time_limit", "init", "seed")
#: Where each plain widget's value goes in the problem file.
FIELDS = {"title": "name", "eps": "eps", "M": "M", "p": "p", "seed": "seed", "init": "init",
          "method": "optimizer.method", "max_iter": "optimizer.max_iter", "time_limit": "optimizer.time_limit"}
#: The target kind a drawn, generated or loaded cloud of target points becomes.
POINTS = ParticleTarget.kind


def list_presets(assets: Path = ASSETS) -> dict[str, Path]:
    """Preset name -> problem file: ``assets/*.json`` (the paper's figures) then ``assets/playful/``."""
    files = sorted(assets.glob("*.json")) + sorted((assets / "playful").glob("*.json"))
    return {(f"playful/{f.stem}" if f.parent.name == "playful" else f.stem): f for f in files}


def _points(value: Any, dim: int) -> np.ndarray:
    arr = np.asarray(value if value is not None else [], dtype=float)
    return arr.reshape(-1, dim) if arr.size else np.zeros((0, dim))


def get_path(spec: dict, path: str, default: Any = None) -> Any:
    """``spec["a"]["b"]`` for the path "a.b" (``default`` where a level is missing)."""
    node: Any = spec
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def set_path(spec: dict, path: str, value: Any) -> None:
    """Set ``spec["a"]["b"] = value`` for the path "a.b", creating the levels that are missing."""
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def example_params(kind: str, dim: int) -> str:
    """The registered example parameters of a continuum target kind, as the JSON the sidebar edits."""
    example = dict(solver.TARGETS[kind].example_spec(dim))
    example.pop("kind", None)
    return json.dumps(example)


class SessionModel(param.Parameterized):
    """Scene and parameters of one session; ``to_spec()`` is the problem dict given to the solver."""

    title = param.String("my problem", doc="Name of the problem (written into exported files).")
    preset = param.Selector(default="", objects=[""], doc="A problem file from assets/: fills the "
                            "scene and all parameters.")
    dynamics = param.Selector(default="velocity", objects=solver.DYNAMICS.kinds(),
                              doc=" ".join(f"{k}: {solver.DYNAMICS.describe(k)}" for k in solver.DYNAMICS))
    source = param.Array(default=np.zeros((0, 2)), doc="Source particles z_i, (N, d).")
    target_kind = param.Selector(default=POINTS, objects=solver.TARGETS.kinds(),
                                 doc=" ".join(f"{k}: {solver.TARGETS.describe(k)}" for k in solver.TARGETS))
    target_points = param.Array(default=np.zeros((0, 2)), doc="Target particles w_k, (K, d).")
    target_params = param.String(default="", doc="JSON parameters of a continuum target, e.g. "
                                 '{"mean": [1, 1], "cov": 0.02} for a Gaussian.')
    obstacles = param.List(default=[], item_type=dict, doc="Obstacles, as in the problem file "
                           '({"kind": "circle", "center": [x, y], "radius": r}, ...).')
    obstacle_weight_auto = param.Boolean(default=True, doc="Obstacle weight c = 1/(h eps) (section 4.5).")
    obstacle_segments = param.Boolean(default=True, doc="Keep whole paths out of the obstacles: the penalty "
                                      "also acts on the straight segments between time points (the paper's "
                                      "presets leave it off to reproduce its numbers).")
    obstacle_weight = param.Number(default=100.0, softbounds=(1.0, 1e4),
                                   doc="Obstacle penalty weight c in L(y) = c sum max(r^2 - |y - c_k|^2, 0).")
    eps = param.Number(default=0.01, softbounds=(1e-4, 1.0),
                       doc="Weight 1/eps of the terminal (nonlocal) penalty; smaller = closer to the "
                           "target. Must be > 0.")
    delta_auto = param.Boolean(default=True, doc="delta = N^(-0.99/d) (eq. 58).")
    delta = param.Number(default=0.05, softbounds=(1e-3, 1.0),
                         doc="Blob width delta of the mollifier K_delta. Must be > 0.")
    M = param.Integer(default=10, softbounds=(2, 60),
                      doc="Time points per trajectory (h = 1/(M-1)); at least 2 (4 for acceleration; a linear "
                          "system needs enough steps to reach every state).")
    p = param.Number(default=2.0, softbounds=(1.1, 4.0), doc="Control cost exponent, psi(u) = |u|^p, p > 1.")
    method = param.Selector(default=solver.OPTIMIZERS.default,
                            objects=[solver.OPTIMIZERS.default] + [k for k in solver.OPTIMIZERS
                                                                   if k != solver.OPTIMIZERS.default],
                            doc=" ".join(f"{k}: {solver.OPTIMIZERS.describe(k)}" for k in solver.OPTIMIZERS))
    lr_auto = param.Boolean(default=True, doc="Learning rate from the paper's scaling.")
    lr = param.Number(default=0.1, softbounds=(1e-4, 10.0), doc="Learning rate of gd / adam (> 0).")
    max_iter = param.Integer(default=20000, softbounds=(1, 100000), doc="Iteration limit (>= 1).")
    time_limit = param.Number(default=60.0, softbounds=(1.0, 600.0), doc="Wall-clock limit in seconds.")
    init = param.Selector(default=solver.INITS.default,
                          objects=[k for k, cls in solver.INITS.items() if cls.selectable],
                          doc=" ".join(f"{k}: {solver.INITS.describe(k)}" for k, cls in solver.INITS.items()
                                       if cls.selectable))
    seed = param.Integer(default=0, bounds=(0, None), doc="Random seed (generators, quantization).")
    base = param.Dict(default={}, doc="The loaded problem (canonical): the parts without widgets.")
    message = param.String(default="", doc="The current validation error (one line) or ''.")
    scene_version = param.Integer(default=0, doc="Bumped when the points change outside the draw tools.")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._presets = list_presets()
        self.param.preset.objects = [""] + list(self._presets)
        if "source" not in params:
            self.load_spec(json.loads(DEFAULT_SCENE.read_text()))
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

    @property
    def edits_points(self) -> bool:
        """Whether the target is drawn and edited as points (else it is a continuum density)."""
        return solver.TARGETS[self.target_kind].given_by_points

    def resolved_delta(self) -> float:
        """delta as the solver resolves it ('auto': eq. 58 with the dimension of the constrained state)."""
        if not self.delta_auto:
            return self.delta
        try:
            return self.build_problem().delta
        except solver.ProblemError:
            pass
        kind = solver.DYNAMICS[self.dynamics]
        try:  # the state's dimension, from the dynamics alone
            state_dim = kind.from_spec(kind.example_spec(self.dim), {"points": self.source.tolist()})[0].state_dim
        except solver.ProblemError:
            state_dim = self.dim
        return auto_delta(self.N, state_dim, self.base.get("delta_exponent", solver.problem.DELTA_EXPONENT))

    def summary(self) -> str:
        """One line describing the scene (shown in the sidebar; the tests compare it)."""
        target = (f"{len(self.target_points)} target points" if self.edits_points
                  else f"{self.target_kind} target")
        return (f"{self.N} source points, {target}, {len(self.obstacles)} obstacles, d = {self.dim}, "
                f"{self.dynamics}, eps = {self.eps:g}, M = {self.M}, delta = {self.resolved_delta():.4g}")

    # ------------------------------------------------------------------------------- spec
    def raw_spec(self) -> dict:
        """The widget values at their places in the problem file, over ``base`` (not validated)."""
        spec: dict[str, Any] = copy.deepcopy(self.base)
        for name, path in FIELDS.items():
            set_path(spec, path, getattr(self, name))
        if get_path(spec, "dynamics.kind") != self.dynamics:
            spec["dynamics"] = solver.DYNAMICS[self.dynamics].example_spec(self.dim)
        source = spec.setdefault("source", {})
        source["points"] = self.source.tolist()
        if "velocities" in source and len(source["velocities"]) != self.N:  # kept while the points keep their number
            source.pop("velocities", None)
        spec["target"] = self._target_spec(spec.get("target") or {})
        spec.pop("obstacles", None)
        spec.pop("obstacle_weight", None)
        spec.pop("obstacle_segments", None)
        if self.obstacles:
            spec["obstacles"] = copy.deepcopy(self.obstacles)
            spec["obstacle_weight"] = "auto" if self.obstacle_weight_auto else self.obstacle_weight
            spec["obstacle_segments"] = self.obstacle_segments
        spec["delta"] = "auto" if self.delta_auto else self.delta
        set_path(spec, "optimizer.lr", None if self.lr_auto else self.lr)
        return spec

    def to_spec(self) -> dict:
        """The problem dict of the current scene and parameters: the solver's canonical form when it
        is valid, else ``raw_spec()`` (whose validation error is ``message``)."""
        try:
            return self.build_problem().to_spec()
        except solver.ProblemError:
            return self.raw_spec()

    def _target_spec(self, base: dict) -> dict:
        if self.edits_points:
            out: dict[str, Any] = {"kind": self.target_kind, "points": self.target_points.tolist()}
            for key in ("weights", "velocities"):  # kept while the number of points is unchanged
                if base.get("kind") == self.target_kind and key in base and len(base[key]) == len(self.target_points):
                    out[key] = base[key]
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
        """Validate and build the solver's Problem, within the memory budget a solve checks (so that
        M = 20,000 is refused as the field is typed, not when Run starts the solve); raises ProblemError
        with a one-line message."""
        problem = solver.problem_from_dict(self.raw_spec())
        check_memory(problem)
        return problem

    def _revalidate(self, *_: Any) -> None:
        try:
            self.build_problem()
        except solver.ProblemError as err:
            self.message = str(err)
        else:
            self.message = ""

    def load_spec(self, spec: dict) -> None:
        """Fill the scene and all parameters from a problem dict (a preset or an imported session)."""
        try:
            spec = solver.problem_from_dict(spec).to_spec()
        except solver.ProblemError:
            spec = copy.deepcopy(spec)
        points = np.asarray(get_path(spec, "source.points", []), dtype=float)
        dim = points.shape[1] if points.ndim == 2 else 2
        target = dict(spec.get("target") or {"kind": POINTS, "points": []})
        kind = target.pop("kind", POINTS)
        points_given = kind in solver.TARGETS and solver.TARGETS[kind].given_by_points
        target_points = _points(target.pop("points", []), dim) if points_given else np.zeros((0, dim))
        weight = spec.get("obstacle_weight", "auto")
        delta = spec.get("delta", "auto")
        lr = get_path(spec, "optimizer.lr")
        init = spec.get("init", "paper")
        with param.parameterized.batch_call_watchers(self):
            self.param.update(
                title=str(spec.get("name", "problem")), dynamics=get_path(spec, "dynamics.kind", "velocity"),
                source=_points(points, dim), target_kind=kind, target_points=target_points,
                target_params="" if points_given else json.dumps(target),
                obstacles=[dict(o) for o in spec.get("obstacles") or []],
                obstacle_weight_auto=weight == "auto",
                obstacle_segments=spec.get("obstacle_segments", not spec.get("obstacles")) is True,
                obstacle_weight=self.obstacle_weight if weight == "auto" else float(weight),
                eps=float(spec.get("eps", 0.01)), delta_auto=delta == "auto",
                delta=self.delta if delta == "auto" else float(delta), M=int(spec.get("M", 5)),
                p=float(spec.get("p", 2.0)), method=get_path(spec, "optimizer.method", solver.OPTIMIZERS.default),
                lr_auto=lr is None, lr=self.lr if lr is None else float(lr),
                max_iter=int(get_path(spec, "optimizer.max_iter", 20000)),
                time_limit=float(get_path(spec, "optimizer.time_limit", 60.0)),
                init=init if init in self.param.init.objects else solver.INITS.default,
                seed=int(spec.get("seed", 0)), base=spec)
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
            self.target_kind = POINTS
        self.set_points(which, pts)

    def load_points_csv(self, which: str, text: str) -> None:
        """Replace the source or target points with the rows of a CSV (one point per row: the columns
        its header names x0, x1 or x, y, else the first d; an export of trajectories gives its last
        step: ``read_points_csv``). Raises ProblemError with a one-line message on a malformed file."""
        pts = read_points_csv(text, f"{which} CSV", dim=self.dim)
        if which == "target":
            self.target_kind = POINTS
        self.set_points(which, pts)

    def obstacle_shapes(self) -> list[Any]:
        """The obstacles as the solver's shapes (outlines, depth, containment); invalid ones are left out."""
        shapes = []
        for k, spec in enumerate(self.obstacles):
            try:
                kind = solver.OBSTACLES.kind_of(spec, f"obstacles[{k}]")
                shapes.append(solver.OBSTACLES[kind].from_spec(spec, Context.positions(self.dim), f"obstacles[{k}]"))
            except solver.ProblemError:
                shapes.append(None)
        return shapes

    def add_obstacle(self, x: float, y: float, radius: float, kind: str = "circle") -> None:
        """Place a new obstacle of the registered ``kind`` centred at (x, y), of size ``radius``."""
        shape = solver.OBSTACLES[kind].placed_at(np.array([float(x), float(y)]), float(radius))
        self.obstacles = self.obstacles + [shape.to_spec()]

    def obstacle_at(self, x: float, y: float) -> int | None:
        """Index of the (last drawn) obstacle containing (x, y), or None."""
        for k, shape in reversed(list(enumerate(self.obstacle_shapes()))):
            if shape is not None and shape.contains(np.array([x, y])):
                return k
        return None

    def update_obstacle(self, index: int, **changes: Any) -> None:
        """Change fields of one obstacle's spec (e.g. ``radius=0.3``)."""
        obs = copy.deepcopy(self.obstacles)
        obs[index].update(changes)
        self.obstacles = obs

    def move_obstacle(self, index: int, x: float, y: float) -> None:
        shape = self.obstacle_shapes()[index]
        if shape is not None:
            self._replace_obstacle(index, shape.moved_to(np.array([float(x), float(y)])).to_spec())

    def resize_obstacle(self, index: int, size: float) -> None:
        shape = self.obstacle_shapes()[index]
        if shape is not None and size > 0:
            self._replace_obstacle(index, shape.resized(float(size)).to_spec())

    def _replace_obstacle(self, index: int, spec: dict) -> None:
        self.obstacles = [spec if k == index else o for k, o in enumerate(self.obstacles)]

    def remove_obstacle(self, index: int) -> None:
        self.obstacles = [o for k, o in enumerate(self.obstacles) if k != index]

    def set_target_kind(self, kind: str) -> None:
        """Switch the target kind, filling its registered example parameters (no-op if unchanged)."""
        if kind == self.target_kind:
            return
        if not solver.TARGETS[kind].given_by_points:
            self.target_params = example_params(kind, self.dim)
        self.target_kind = kind
        self.scene_version += 1
