"""The scale benchmark: ``python -m solver.bench --scale [--markdown] [--write PATH]``.

Three tables, every comparison measured in this process:

1. **Kernels.** One value-and-gradient of the nonlocal energy (eqs. 53, 55; Gaussian target, the terminal
   states at a quasi-random quantization of it, delta = N^(-0.99/d)) for N = 10^3, 10^4, 2 10^4, 10^5 in
   2-D and 10^4 in 3-D, by each backend of ``solver.kernels`` and the automatic choice: seconds, and the
   relative error of the value and of the gradient against the dense sum where it still runs (N up to
   2 10^4, the size at which the issue asks for the error of the backends used at 10^5).
2. **Solves at scale.** ``python -m solver solve`` in a fresh process (so ``ru_maxrss`` is its own):
   N = 10^3, 10^4 (to convergence or the time limit: 120 s, 300 s) and 10^5 (20 iterations), uniform
   source on the unit square to N((2, 1), 0.3^2 I), eps 0.01, M 3: status, seconds, iterations, peak
   resident memory.
3. **Drawn scenes and sample targets.** The issue's small-N cases with today's (the previous solver's)
   numbers as the baseline column: the app's default scene, uniform to N samples of N((2, 1), 0.3^2 I)
   for N = 100, 300, 1,000, 3,000, 10,000 (M 5), the continuum Gaussian at N = 1,000; for particle
   targets also POT's emd W2^2 and its time, and the ratio of our time to it.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import kernels
from .diagnostics import w2sq
from .init import forget_quantizations
from .objective import Objective
from .problem import problem_from_dict
from .run import solve, threads_for
from .threads import use_threads

DEFAULT_SCENE = Path(__file__).resolve().parent.parent / "assets" / "default_scene.json"
#: Backends whose estimated time exceeds this are not run (reported as "-").
MAX_SECONDS = 60.0
#: Today's numbers (previous solver, the issue's measurements on its own random instances).
BASELINE = {"default scene (N 49, M 10)": (5.1, 4.5140667), "N 100 samples": (16.4, 2.1268585),
            "N 300 samples": (60.9, 2.6059638), "N 1,000 samples": (600.0, 2.5211033)}


def gaussian_iterate(N: int, dim: int) -> tuple:
    """A problem with N uniform sources and a Gaussian target in ``dim`` dimensions, and terminal
    states at the target's quasi-random quantization (a typical iterate)."""
    rng = np.random.default_rng(0)
    mean = [2.0, 1.0, 0.5][:dim]
    p = problem_from_dict({"source": {"points": rng.uniform(0, 1, (N, dim)).tolist()},
                           "target": {"kind": "gaussian", "mean": mean, "cov": 0.09}, "eps": 0.01, "M": 3})
    y, _ = p.target.quantization(N, 0)
    return p, torch.as_tensor(y)


def timed_gradient(objective: Objective, y: torch.Tensor, backend: str) -> tuple[float, float, torch.Tensor]:
    with kernels.backend(backend):
        x = y.clone().requires_grad_(True)
        clock = time.perf_counter()
        value = objective.nonlocal_energy(x)
        (g,) = torch.autograd.grad(value, x)
        return time.perf_counter() - clock, float(value.detach()), g


def kernel_rows() -> list[list[str]]:
    rows = []
    for N, dim in ((1_000, 2), (10_000, 2), (20_000, 2), (100_000, 2), (10_000, 3)):
        small, y_small = gaussian_iterate(600, dim)
        for name in ("cells", "grid"):  # compile / load each backend once, outside the timings
            timed_gradient(Objective(small), y_small, name)
        p, y = gaussian_iterate(N, dim)
        objective = Objective(p)
        results = {}
        for name in ("dense", "cells", "grid", "auto"):
            if name == "dense" and N > 20_000:
                continue
            if name == "grid":
                extent = float(np.ptp(y.numpy(), axis=0).max())
                if kernels.fourier.cost(N, dim, extent, p.delta, kernels.cutoff(p.delta)) > MAX_SECONDS:
                    continue
            results[name] = timed_gradient(objective, y, name)
        ref = results.get("dense")
        for name, (seconds, value, g) in results.items():
            err_v = err_g = "-"
            if ref is not None and name != "dense":
                err_v = f"{abs(value - ref[1]) / abs(ref[1]):.1e}"
                err_g = f"{float((g - ref[2]).abs().max() / ref[2].abs().max()):.1e}"
            chosen = kernels.plan(y.numpy(), y.numpy(), p.delta).name if name == "auto" else ""
            dense_seconds = f"{seconds / ref[0]:.3f}" if ref is not None else "-"
            rows.append([f"{N:,}", str(dim), name + (f" ({chosen})" if chosen else ""), f"{seconds:.3f}",
                         dense_seconds, err_v, err_g])
    return rows


#: ``python -m solver ARGS`` that prints the process's own peak resident memory (kB: ``resident``)
#: when it ends.
RUN_AND_REPORT_RSS = """import runpy, sys
from solver.resident import peak_resident_bytes
sys.argv = ["solver"] + sys.argv[1:]
try:
    runpy.run_module("solver", run_name="__main__")
finally:
    print("MAXRSS", peak_resident_bytes() // 1024)
"""


def cli_run(spec: dict, max_iter: int | None = None, time_limit: float = 300.0) -> dict:
    """``python -m solver solve`` in a fresh process; its summary plus the peak RSS (from GNU time)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.json"
        path.write_text(json.dumps(spec))
        args = [sys.executable, "-c", RUN_AND_REPORT_RSS, "solve", str(path), "--out", str(Path(tmp) / "out"),
                "--quiet", "--time-limit", str(time_limit)]
        if max_iter:
            args += ["--max-iter", str(max_iter)]
        clock = time.perf_counter()
        res = subprocess.run(args, capture_output=True, text=True)
        wall = time.perf_counter() - clock
        if res.returncode != 0:
            return {"status": f"error: {res.stderr.strip().splitlines()[-1] if res.stderr else res.returncode}"}
        out = json.loads((Path(tmp) / "out" / "summary.json").read_text())
        rss = [line for line in res.stdout.splitlines() if line.startswith("MAXRSS")]
        out["peak_rss"] = int(rss[-1].split()[1]) * 1024 if rss else None
        out["wall"] = wall
        return out


def uniform_to_gaussian(N: int) -> dict:
    rng = np.random.default_rng(0)
    return {"name": f"N={N}", "source": {"points": rng.uniform(0, 1, (N, 2)).tolist()},
            "target": {"kind": "gaussian", "mean": [2, 1], "cov": 0.09}, "eps": 0.01, "M": 3}


def scale_rows() -> list[list[str]]:
    rows = []
    for N, max_iter, limit in ((1_000, None, 120.0), (10_000, None, 300.0), (100_000, 20, 600.0)):
        out = cli_run(uniform_to_gaussian(N), max_iter, limit)
        if "seconds" not in out:
            rows.append([f"{N:,}", str(max_iter or "-"), out["status"], "-", "-", "-", "-"])
            continue
        rows.append([f"{N:,}", str(max_iter or "to convergence"), out["status"], f"{out['seconds']:.1f}",
                     str(out["iterations"]), f"{out['objective']:.7g}", f"{out['peak_rss'] / 2**20:.0f} MB"])
    return rows


def samples(N: int, M: int = 5) -> dict:
    rng = np.random.default_rng(0)
    return {"source": {"points": rng.uniform(0, 1, (N, 2)).tolist()},
            "target": {"kind": "particles", "points": rng.normal([2, 1], 0.3, (N, 2)).tolist()},
            "eps": 0.01, "M": M, "optimizer": {"time_limit": 120}}


def scene_rows(default_scene: dict) -> list[list[str]]:
    cases = [("default scene (N 49, M 10)", default_scene)]
    cases += [(f"N {N:,} samples", samples(N)) for N in (100, 300, 1_000, 3_000, 10_000)]
    cases.append(("N 1,000 continuum Gaussian", dict(uniform_to_gaussian(1000), M=5, optimizer={"time_limit": 120})))
    rows = []
    for label, spec in cases:
        p = problem_from_dict(spec)
        use_threads(threads_for(p, os.cpu_count() or 1))  # as the command line would
        forget_quantizations()  # a first solve of its target
        r = solve(p)
        emd = ratio = w2 = "-"
        if p.target.empirical is not None:
            points, weights = p.target.empirical
            clock = time.perf_counter()
            exact = w2sq(p.source, points, None, weights)
            t_emd = time.perf_counter() - clock
            emd, w2, ratio = f"{t_emd:.3f}", f"{exact:.7f}", f"{r.final.elapsed / t_emd:.1f}"
        base = BASELINE.get(label, (None, None))
        rows.append([label, f"{base[0]:g}" if base[0] else "-", f"{base[1]:.7f}" if base[1] else "-",
                     f"{r.final.elapsed:.2f}", str(r.final.iteration), f"{r.final.objective:.7f}", r.final.status,
                     w2, emd, ratio])
    return rows


KERNEL_HEADER = ("N", "d", "backend", "seconds", "/ dense", "value rel. error", "gradient rel. error")
SCALE_HEADER = ("N", "iterations asked", "status", "seconds", "iterations", "objective", "peak RSS")
SCENE_HEADER = ("case", "baseline s (previous solver)", "baseline objective", "seconds", "iterations",
                "objective", "status", "W2^2 (emd)", "emd s", "ours / emd")


def report(markdown: bool, render) -> str:
    use_threads(os.cpu_count() or 1)
    setup = (f"Measured on {os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch "
             f"{torch.__version__}; every ratio within one process.")
    parts = [setup,
             "### Kernels: one value-and-gradient of the nonlocal energy\n\n" + render(KERNEL_HEADER, kernel_rows(), markdown),
             "### Solves at scale (command line, fresh process)\n\n" + render(SCALE_HEADER, scale_rows(), markdown),
             "### Drawn scenes and sample targets (N 49 to 10,000)\n\n" + render(SCENE_HEADER, scene_rows(json.loads(DEFAULT_SCENE.read_text())), markdown)]
    return "\n\n".join(parts) + "\n"
