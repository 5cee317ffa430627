"""Registries and the canonical problem form: unknown kinds and misspelt keys get one line with a
suggestion; every registered kind reads its own ``to_spec`` back exactly; problem files are validated
without torch; the solver's modules form layers (no cycles, no hidden imports, no kind dispatch)."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import solver
from solver.reading import Context

ROOT = Path(__file__).resolve().parents[2]
BASE = {"source": {"points": [[0.0, 0.0], [1.0, 0.5]]}, "target": {"kind": "particles", "points": [[2, 0], [3, 1]]}}


@pytest.mark.parametrize("change, field, hint", [
    ({"target": {"kind": "gausian", "mean": [0, 0], "cov": 1}}, "target.kind", "did you mean 'gaussian'"),
    ({"dynamics": {"kind": "velocty"}}, "dynamics.kind", "did you mean 'velocity'"),
    ({"optimizer": {"method": "robst"}}, "optimizer.method", "did you mean 'robust'"),
    ({"init": "opt"}, "init", "did you mean 'ot'"),
    ({"control_cost": "pwer"}, "control_cost", "did you mean 'power'"),
    ({"obstacles": [{"kind": "circel", "center": [1, 1], "radius": 0.2}]}, "obstacles[0].kind", "did you mean 'circle'"),
    ({"epsilon": 0.1}, "epsilon", "did you mean 'eps'"),
    ({"optimizer": {"max_iters": 10}}, "optimizer.max_iters", "did you mean 'max_iter'"),
    ({"target": {"kind": "gaussian", "means": [0, 0], "cov": 1}}, "target.means", "did you mean 'mean'"),
])
def test_unknown_kinds_and_misspelt_keys_name_the_field_and_the_fix(change, field, hint):
    with pytest.raises(solver.ProblemError) as err:
        solver.problem_from_dict(dict(BASE, **change))
    assert err.value.field == field and hint in str(err.value)
    assert "\n" not in str(err.value)


def test_notes_in_a_file_are_allowed():
    """Keys unlike any known one (a file's own notes) are ignored, as the README promises."""
    p = solver.problem_from_dict(dict(BASE, comment="from the lab notebook"))
    assert "comment" not in p.to_spec()


@pytest.mark.parametrize("kind", solver.TARGETS.kinds())
def test_every_target_kind_offers_a_valid_example_that_round_trips(kind):
    spec = dict(BASE, target=solver.TARGETS[kind].example_spec(2))
    p = solver.problem_from_dict(spec)
    assert p.target.kind == kind
    again = solver.problem_from_dict(json.loads(json.dumps(p.to_spec())))
    assert again.to_spec() == p.to_spec()
    low, high = p.target.bounding_box()
    assert np.all(low <= p.target.mean()) and np.all(p.target.mean() <= high)


@pytest.mark.parametrize("kind", solver.OBSTACLES.kinds())
def test_every_obstacle_shape_is_placed_moved_and_resized(kind):
    context = Context.positions(2)
    shape = solver.OBSTACLES[kind].placed_at(np.array([1.0, 2.0]), 0.5)
    again = solver.OBSTACLES[kind].from_spec(shape.to_spec(), context, "obstacles[0]")
    assert again.to_spec() == shape.to_spec()
    assert shape.contains(np.array([1.0, 2.0])) and not shape.contains(np.array([1.6, 2.0]))
    assert shape.size == pytest.approx(0.5)  # the distance from the centre to the farthest boundary point
    moved = shape.moved_to(np.array([3.0, -1.0])).resized(0.25)
    assert moved.contains(np.array([3.0, -1.0])) and not moved.contains(np.array([1.0, 2.0]))
    assert moved.size == pytest.approx(0.25) and np.allclose(moved.center, [3.0, -1.0])
    ring = moved.outline()
    assert ring.shape[1] == 2 and np.abs(moved.depth(ring)).max() < 1e-9  # the outline is the boundary


# -------------------------------------------------------------------------------------- canonical form
coords = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
positive = st.floats(0.05, 2.0, allow_nan=False, allow_infinity=False)


@st.composite
def problem_specs(draw) -> dict:
    """Valid problem files mixing every registered kind with random parameters."""
    dynamics = draw(st.sampled_from(solver.DYNAMICS.kinds()))
    dim = 2 if dynamics == "linear" else draw(st.sampled_from([1, 2]))
    n = draw(st.integers(1, 5))
    points = draw(st.lists(st.lists(coords, min_size=dim, max_size=dim), min_size=n, max_size=n))
    dyn = solver.DYNAMICS[dynamics].example_spec(dim)
    if dynamics == "velocity" and draw(st.booleans()):
        dyn["drift"] = {"kind": "mean_attraction", "strength": draw(positive)}
    source: dict = {"points": points}
    if dynamics == "acceleration" and draw(st.booleans()):
        source["velocities"] = draw(st.lists(st.lists(coords, min_size=dim, max_size=dim), min_size=n, max_size=n))
    state_dim = 2 * dim if dynamics == "acceleration" else dim
    kinds = [k for k in solver.TARGETS if k != "annulus" or state_dim == 2]
    target = solver.TARGETS[draw(st.sampled_from(kinds))].example_spec(state_dim)
    if target["kind"] == "particles":
        k = draw(st.integers(1, 4))
        target["points"] = draw(st.lists(st.lists(coords, min_size=dim, max_size=dim), min_size=k, max_size=k))
        if draw(st.booleans()):
            target["weights"] = draw(st.lists(positive, min_size=k, max_size=k))
        if dynamics == "acceleration":
            target["velocities"] = draw(st.lists(st.lists(coords, min_size=dim, max_size=dim), min_size=k, max_size=k))
    spec = {"name": draw(st.text(max_size=8)), "dynamics": dyn, "source": source, "target": target,
            "eps": draw(positive), "M": draw(st.integers(4, 6)), "seed": draw(st.integers(0, 10)),
            "delta": draw(st.one_of(st.just("auto"), positive)),
            "control_cost": draw(st.sampled_from(solver.CONTROL_COSTS.kinds())), "p": draw(st.floats(1.1, 4)),
            "init": draw(st.sampled_from([k for k, c in solver.INITS.items() if c.selectable])),
            "optimizer": {"method": draw(st.sampled_from(solver.OPTIMIZERS.kinds())),
                          "lr": draw(st.one_of(st.none(), positive)), "max_iter": draw(st.integers(1, 100))}}
    if dim == 2 and draw(st.booleans()):
        spec["obstacles"] = [solver.OBSTACLES[kind].placed_at(np.array(c, dtype=float), r).to_spec()
                             for kind, c, r in draw(st.lists(st.tuples(st.sampled_from(solver.OBSTACLES.kinds()),
                                                                       st.lists(coords, min_size=2, max_size=2),
                                                                       positive), min_size=1, max_size=3))]
        spec["obstacle_weight"] = draw(st.one_of(st.just("auto"), positive))
    if draw(st.booleans()):
        spec["potential"] = [{"kind": "quadratic", "center": [0.0] * dim, "weight": draw(positive)}]
    if draw(st.booleans()):
        spec["interaction"] = [{"kind": "gaussian", "strength": draw(positive), "width": draw(positive)}]
    return spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem_specs())
def test_the_canonical_form_round_trips_exactly(spec):
    """to_spec() -> JSON -> problem -> to_spec() gives the same dict, float for float."""
    p = solver.problem_from_dict(spec)
    canonical = p.to_spec()
    again = solver.problem_from_dict(json.loads(json.dumps(canonical)))
    assert again.to_spec() == canonical
    assert again.delta == p.delta and again.N == p.N and again.target.kind == p.target.kind
    assert again.to_spec(metadata=False) == {k: v for k, v in canonical.items() if k != "name"}


# -------------------------------------------------------------------------------------- layers
def test_problem_files_are_validated_without_torch():
    code = ("import sys, solver\n"
            "p = solver.load_problem('assets/fig4_obstacles.json')\n"
            "try:\n    solver.problem_from_dict({'source': {'points': [[0, 0]]}, 'eps': 0})\n"
            "except solver.ProblemError as err:\n    print(err)\n"
            "print('torch' in sys.modules, 'ot' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["eps: must be > 0 (got 0); use a small positive value", "False False"]


def solver_modules() -> dict[str, ast.Module]:
    files = [f for f in (ROOT / "solver").rglob("*.py") if "distributed" not in f.parts]
    return {".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): ast.parse(f.read_text())
            for f in files}


def runtime_imports(name: str, tree: ast.Module) -> set[str]:
    """The solver modules a module imports when it is imported (its top-level imports, without the
    ``if TYPE_CHECKING:`` block of type hints)."""
    package = name if name in PACKAGES else name.rsplit(".", 1)[0]
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            module = ".".join(p for p in ((base if node.level else ""), node.module or "") if p)
            out.update(f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m in MODULES and m != name}


MODULES = solver_modules()
PACKAGES = {name for name in MODULES if (ROOT / name.replace(".", "/") / "__init__.py").exists()}


def test_the_import_graph_is_read():
    """The reader above sees what the modules import (else the cycle test below proves nothing)."""
    assert runtime_imports("solver.problem", MODULES["solver.problem"]) >= {"solver.costs", "solver.targets", "solver.registry"}
    assert "solver.problem" not in runtime_imports("solver.objective", MODULES["solver.objective"])  # type hints only
    assert "solver.targets.gaussian" in runtime_imports("solver.targets", MODULES["solver.targets"])


def test_solver_modules_have_no_import_cycles():
    graph = {name: runtime_imports(name, tree) for name, tree in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


#: Imports inside functions that are deliberate: the command line imports the figure pipeline
#: (matplotlib) and the distributed lab (scipy) only for the commands that need them; sweeps load dask,
#: reports scipy.stats and matplotlib only when they run.
DELIBERATE = {("solver.cli", "reproduce"), ("solver.cli", "distributed.cli"), ("solver.bench", "solver.bench"),
              ("solver.study.execute", "dask.distributed"), ("solver.study.report", "scipy"),
              ("solver.study.report", "matplotlib"), ("solver.study.report", "matplotlib.pyplot")}


def test_imports_sit_at_the_top_of_modules():
    for name, tree in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        module = getattr(sub, "module", None) or sub.names[0].name
                        assert (name, module) in DELIBERATE, f"{name}: import of {module} inside {node.name}()"


def test_no_dispatch_on_kinds_outside_the_registered_classes():
    """No comparison with a registered kind's name and no isinstance test on a registered class in
    the solver or the explorer: such questions are asked of the registered classes themselves."""
    registries = (solver.TARGETS, solver.DYNAMICS, solver.CONTROL_COSTS, solver.OBSTACLES, solver.POTENTIALS,
                  solver.INTERACTIONS, solver.DRIFTS)
    kinds = sorted({k for r in registries for k in r})
    classes = sorted({c.__name__ for r in registries for _, c in r.items()})
    names = "|".join(kinds)
    literal = re.compile(r"""\w*(kind|dynamics|target|obstacle|cost|drift)\w*(\.\w+)*\s*(==|!=|in)\s*[(\[{]?\s*["'](%s)["']"""
                         r"""|["'](%s)["']\s*(==|!=)""" % (names, names))
    isinstance_ = re.compile(r"isinstance\([^)]*\b(%s)\b" % "|".join(classes))
    files = [f for f in [*(ROOT / "solver").rglob("*.py"), *(ROOT / "explorer").glob("*.py")]
             if "distributed" not in f.name and "distributed" not in f.parts]
    for f in files:
        for number, line in enumerate(f.read_text().splitlines(), 1):
            assert not literal.search(line) and not isinstance_.search(line), f"{f.name}:{number}: {line.strip()}"
