"""The lazy stand-ins of solver.lazy: ``import solver`` loads neither torch nor POT; a background
preload (what the app starts for its first Run) imports them once, in one thread however often asked;
and ``compile_kernels`` (``make install``) loads every compiled kernel a first solve would."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys, threading
import solver.run
from solver.lazy import load_in_background, ot, torch
print("before", "ot" in sys.modules, "torch" in sys.modules)
first = load_in_background(torch, ot)
again = load_in_background(torch, ot)
first.join(120)
print("after", "ot" in sys.modules, "torch" in sys.modules, first is again, first.daemon)
print("filled", "emd" in vars(ot), callable(ot.emd))
"""


def test_import_is_light_and_the_background_preload_loads_once():
    # a fresh process: in the test session torch and POT are imported already
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    assert res.stdout.split("\n")[:3] == ["before False False", "after True True True True", "filled True True"], res


FIRST_REPORT = """
import sys

import pytest
from solver.problem import problem_from_dict
from solver.run import solve_iter
spec = {"source": {"points": [[0.1 * i, 0.0] for i in range(6)]}, "eps": 0.1, "M": 3,
        "target": %s}
first = next(solve_iter(problem_from_dict(spec)))
print(first.phase, "torch._dynamo" in sys.modules)
"""


@pytest.mark.parametrize("target, loaded", [
    ('{"kind": "gaussian", "mean": [0.5, 1.0], "cov": 0.04}', True),  # a blob quantization will run torch.optim
    ('{"points": [[0.1 * i, 1.0] for i in range(6)]}', False),  # particles: no torch optimizer, no 1.3 s import
])
def test_a_solve_loads_torch_optims_machinery_before_its_clock_only_when_it_needs_it(target, loaded):
    # robust reports the problem's own start before it prepares any start: torch._dynamo (imported by
    # torch.optim's first optimizer, ~1.3 s) is loaded by then only if solve_iter loaded it up front
    res = subprocess.run([sys.executable, "-c", FIRST_REPORT % target], capture_output=True, text=True,
                         timeout=300, check=True)
    assert res.stdout.split() == ["start", str(loaded)], res


KERNELS_AHEAD = """
import sys
from numba.core.registry import CPUDispatcher
from solver.kernels import compile_kernels
from solver.problem import load_problem, problem_from_dict
from solver.run import solve
compile_kernels()

def loaded():
    return {f"{name}.{attr}": len(value.signatures) for name in list(sys.modules) if name.startswith("solver")
            for attr, value in vars(sys.modules[name]).items() if isinstance(value, CPUDispatcher)}

ahead = loaded()
solve(load_problem("assets/default_scene.json"))
points = [[(7 * k % 600) / 600, (11 * k % 600) / 600] for k in range(600)]
solve(problem_from_dict({"source": {"points": points}, "eps": 0.01, "M": 3, "optimizer": {"max_iter": 3},
                         "target": {"kind": "particles", "points": [[x + 2, y] for x, y in points[::-1]]}}))
after = loaded()
print(sum(n > 0 for n in ahead.values()), [name for name in after if after[name] != ahead.get(name, 0)])
"""


def test_compile_kernels_loads_every_kernel_a_first_solve_needs():
    """``make install`` runs ``compile_kernels`` so that the first solve after an install does not wait
    seconds for numba to compile (or, later, ~0.3 s to load its disk cache): after it, a first solve
    loads no kernel itself (the default scene, and 600 particles, whose sums run on the cells: no kernel
    gains a compiled signature). A kernel added to the solver but not to ``compile_kernels`` fails this."""
    res = subprocess.run([sys.executable, "-c", KERNELS_AHEAD], capture_output=True, text=True, timeout=600,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    count, new = res.stdout.split(" ", 1)
    assert int(count) >= 10 and new.strip() == "[]", res.stdout
