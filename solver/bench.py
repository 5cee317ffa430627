"""Benchmark: ``python -m solver.bench [--quick] [--markdown] [--workers K] [--write docs/benchmark.md]``.

For each case (a preset of assets/), ours (``solve_iter`` with the preset's method, "robust") and the
paper's method ("gd", section 4.1, with the preset's learning rate) run in the same process, one
after the other, on one thread each. gd gets a fixed budget: ``GD_STEPS`` iterations or ``GD_SECONDS``
seconds, whichever comes first (``--quick``: 2,000 iterations). Reported: the paper's published value
(objective (50), or the terminal error (65) for the Fig. 9 rows), each method's final value, seconds,
gradient evaluations and status, and how much longer gd takes than ours to first reach the paper's
value. Cases run in parallel on a dask LocalCluster (``--workers``, default 2 single-threaded worker
processes; ``--workers 1`` runs them one after the other in this process).

A last block times one gradient evaluation of eq. (50) with N = 20,000 particles in 2-D and reports its
peak memory (the increase of the process's own peak, ``resident``, in a fresh spawned process) against the 3.2 GB that one dense
N x N float64 kernel matrix would take.

``--scale`` runs the scale benchmark (``bench_scale``), ``--obstacles`` the obstacle benchmark
(``bench_obstacles``), ``--scenes [--save PATH] [--against PATH]`` its 23 obstacle scenes instead.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from dask.distributed import Client, LocalCluster, as_completed

from . import bench_obstacles, bench_scale
from .allocator import keep_freed_memory
from .diagnostics import map_errors
from .init import forget_quantizations, initial_variables
from .objective import Objective
from .problem import Problem, load_problem, problem_from_dict
from .resident import peak_resident_bytes, resident_bytes
from .run import Snapshot, solve_iter
from .threads import use_threads

ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: The obstacle benchmark's figure (README).
FIGURE = Path(__file__).resolve().parent.parent / "docs" / "obstacles_off_on.png"
GD_STEPS, GD_STEPS_QUICK, GD_SECONDS = 20_000, 2_000, 60.0
BIG_N = 20_000


@dataclass(frozen=True)
class Case:
    """A benchmark case: the preset assets/PRESET.json and the quantity the paper publishes for it."""

    label: str
    preset: str
    quantity: str = "objective"  # or "error (65)": the terminal error against T(y) = y/2 + 2 (Fig. 9)


CASES = (Case("fig1", "fig1_pot_comparison"), Case("fig2 samples", "fig2_gaussian_samples"),
         Case("fig2 continuum", "fig2_gaussian_continuum"), Case("fig4", "fig4_obstacles"),
         Case("fig5", "fig5_acceleration"),
         *(Case(f"fig9 N={n}", f"fig9_N{n:03d}", "error (65)") for n in (5, 10, 20, 40, 80, 100)))
QUICK = ("fig1", "fig5", "fig9 N=5", "fig9 N=20")


@dataclass
class Run:
    """One method on one case: final value of the case's quantity, objective, cost, status, and the
    (seconds, objective) of every report, from which ``reached`` reads when a level was first met."""

    value: float
    objective: float
    seconds: float
    evaluations: int
    status: str
    trace: list[tuple[float, float]]

    def reached(self, level: float) -> float | None:
        return next((t for t, f in self.trace if f <= level), None)


def _value(problem: Problem, case: Case, snap: Snapshot) -> float:
    if case.quantity == "objective":
        return snap.objective
    return map_errors(snap.states, 0.5 * problem.source + 2.0)["error_terminal"]


def measure(problem: Problem, case: Case) -> Run:
    """Run ``solve_iter`` to the end, recording the objective at every report."""
    trace, evaluations, snap = [], 0, None
    for snap in solve_iter(problem):
        evaluations = max(evaluations, snap.evaluations)  # the final snapshot is the best iterate's
        trace.append((snap.elapsed, snap.objective))
    return Run(_value(problem, case, snap), snap.objective, snap.elapsed, evaluations, snap.status, trace)


def run_case(case: Case, gd_steps: int) -> dict:
    """Ours, then the paper's gd (``gd_steps`` iterations or GD_SECONDS), on one thread. Both are timed
    to the same objective level: the paper's objective where published, else ours' final objective +
    0.1% (error (65) cannot serve: it is not monotone along a descent, and the OT start already has
    error 0 in 1-D)."""
    keep_freed_memory()  # in the dask worker process, as the command line runs
    use_threads(1)  # as the command line runs problems this small (``threads_for``)
    problem = load_problem(ASSETS / f"{case.preset}.json")
    published = problem.spec["paper"]
    paper = published.get("objective" if case.quantity == "objective" else "terminal_error")
    forget_quantizations()  # a first solve of its target, as the command line would make it
    ours = measure(problem, case)
    gd_problem = problem.with_changes(optimizer={**problem.spec.get("optimizer", {}), "method": "gd",
                                                 "max_iter": gd_steps, "time_limit": GD_SECONDS})
    gd = measure(gd_problem, case)
    level = published.get("objective", ours.objective + 1e-3 * abs(ours.objective))
    return {"case": case.label, "N": problem.N, "quantity": case.quantity, "paper": paper,
            "level": "paper" if "objective" in published else "ours + 0.1%",
            "ours": _summary(ours, level), "gd": _summary(gd, level)}


def _summary(run: Run, level: float) -> dict:
    return {"value": run.value, "objective": run.objective, "seconds": run.seconds,
            "evaluations": run.evaluations, "status": run.status, "reached": run.reached(level)}


def run_cases(cases: list[Case], gd_steps: int, workers: int) -> list[dict]:
    """All cases, on a dask LocalCluster of ``workers`` single-threaded processes (or here, if 1),
    printing a line to stderr as each finishes; rows come back in the order of ``cases``."""
    def done(row: dict) -> None:
        print(f"  {row['case']}: ours {row['ours']['seconds']:.1f} s, gd {row['gd']['seconds']:.1f} s",
              file=sys.stderr, flush=True)

    if workers <= 1:
        rows = []
        for case in cases:
            rows.append(run_case(case, gd_steps))
            done(rows[-1])
        return rows
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        futures = client.map(run_case, cases, gd_steps=gd_steps, pure=False)
        by_label = {}
        for future in as_completed(futures):
            row = future.result()
            by_label[row["case"]] = row
            done(row)
    return [by_label[c.label] for c in cases]


# ---------------------------------------------------------------------------- one big evaluation
def big_problem(N: int = BIG_N) -> Problem:
    """N particles uniform on [0, 1]^2 to the Gaussian N((1.5, 1.5), 0.5^2 I), eps = 0.01, M = 5."""
    points = np.random.default_rng(0).random((N, 2))
    return problem_from_dict({"name": f"N = {N} in 2-D", "source": {"points": points.tolist()},
                              "target": {"kind": "gaussian", "mean": [1.5, 1.5], "cov": 0.25},
                              "eps": 0.01, "M": 5})


def _one_evaluation(N: int) -> dict:
    """In a fresh process: seconds and peak-RSS increase (bytes) of one value_and_grad at size N."""
    torch.set_num_threads(os.cpu_count() or 1)
    objective = Objective(big_problem(N))
    variables = initial_variables(objective)
    before = resident_bytes()
    clock = time.perf_counter()
    objective.value_and_grad(variables)
    seconds = time.perf_counter() - clock
    after = peak_resident_bytes()
    return {"N": N, "seconds": seconds, "peak_increase": after - before, "peak": after,
            "threads": torch.get_num_threads()}


def big_evaluation(N: int = BIG_N) -> dict:
    """``_one_evaluation`` in a spawned process, so that the peak is that evaluation's own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_one_evaluation, N).result()


# ---------------------------------------------------------------------------- table
COLUMNS = ("case", "N", "quantity", "paper", "ours", "s", "evals", "status",
           "gd", "gd s", "gd evals", "gd status", "time to objective level: gd / ours")


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _ratio(row: dict) -> str:
    ours, gd = row["ours"]["reached"], row["gd"]["reached"]
    if ours is None:
        return "ours not reached"
    if gd is None:
        return f"gd not reached (> {row['gd']['seconds'] / max(ours, 1e-9):.0f}x)"
    return f"{gd / max(ours, 1e-9):.1f}x ({gd:.2f} s / {ours:.2f} s, {row['level']})"


def table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        o, g = r["ours"], r["gd"]
        out.append([r["case"], str(r["N"]), r["quantity"], _g(r["paper"]), _g(o["value"]), f"{o['seconds']:.2f}",
                    str(o["evaluations"]), o["status"], _g(g["value"]), f"{g['seconds']:.2f}",
                    str(g["evaluations"]), g["status"], _ratio(r)])
    return out


def render(header: tuple[str, ...], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def report(rows: list[dict], big: dict, gd_steps: int, workers: int, markdown: bool) -> str:
    """The whole benchmark as text (or Markdown)."""
    dense = 8 * big["N"] ** 2
    big_rows = [[f"{big['N']:,}", f"{big['seconds']:.2f}", f"{big['peak_increase'] / 2**20:.0f} MB",
                 f"{big['peak'] / 2**20:.0f} MB", f"{dense / 1e9:.1f} GB", str(big["threads"])]]
    big_header = ("N", "seconds", "peak RSS increase", "peak RSS of the process", "dense N x N float64",
                  "torch threads")
    setup = (f"ours: the preset's method (robust); gd: the paper's gradient descent with the preset's lr, "
             f"{gd_steps:,} iterations or {GD_SECONDS:.0f} s, whichever first. Time to objective level: until "
             f"the objective first reaches the paper's (else ours' final + 0.1%). One thread per run; "
             f"{'cases in parallel on ' + str(workers) + ' dask worker processes' if workers > 1 else 'cases one after the other'}. "
             f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, torch {torch.__version__}.")
    title = "## Benchmark\n\n" if markdown else ""
    return (f"{title}{setup}\n\n{render(COLUMNS, table_rows(rows), markdown)}\n\n"
            f"{'### ' if markdown else ''}N = {big['N']:,} particles in 2-D: one gradient evaluation\n\n"
            f"{render(big_header, big_rows, markdown)}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m solver.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"cases {', '.join(QUICK)} only, and a gd budget of {GD_STEPS_QUICK:,} iterations")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--workers", type=int, default=2,
                        help="dask worker processes running the cases (1: one after the other here)")
    parser.add_argument("--write", metavar="PATH", help="also write the Markdown report to PATH")
    parser.add_argument("--scale", action="store_true",
                        help="the scale benchmark instead: kernel backends at N = 1e3 .. 1e5, large solves, drawn scenes")
    parser.add_argument("--obstacles", action="store_true",
                        help="the obstacle benchmark instead: Fig. 4 and a three-obstacle scene, and "
                             "docs/obstacles_off_on.png")
    parser.add_argument("--scenes", action="store_true",
                        help="the obstacle scenes instead: 23 scenes with discs or a polygon by the default solver")
    parser.add_argument("--save", metavar="PATH", help="with --scenes: save the results (JSON)")
    parser.add_argument("--against", metavar="PATH", help="with --scenes: compare with results saved by --save")
    args = parser.parse_args(argv)
    if (args.save or args.against) and not args.scenes:
        parser.error("--save and --against go with --scenes")
    keep_freed_memory()  # as the command line and the app run (ratios are within one process)
    if args.scenes:
        against = json.loads(Path(args.against).read_text()) if args.against else None
        text, results = bench_obstacles.scenes_report(args.markdown or bool(args.write), render, against)
        print(text)
        if args.write:
            Path(args.write).write_text("## Obstacle scenes\n\n" + text + "\n")
        if args.save:
            Path(args.save).write_text(json.dumps(results, indent=1))
        return 0
    if args.obstacles:
        text = bench_obstacles.report(args.markdown or bool(args.write), render, FIGURE)
        print(text)
        if args.write:
            Path(args.write).write_text("## Obstacle benchmark\n\n" + text)
        return 0
    if args.scale:
        text = bench_scale.report(args.markdown or bool(args.write), render)
        print(text)
        if args.write:
            Path(args.write).write_text("## Scale benchmark\n\n" + text)
        return 0
    cases = [c for c in CASES if c.label in QUICK] if args.quick else list(CASES)
    gd_steps = GD_STEPS_QUICK if args.quick else GD_STEPS
    rows = run_cases(cases, gd_steps, args.workers)
    big = big_evaluation()
    print(report(rows, big, gd_steps, args.workers, args.markdown))
    if args.write:
        Path(args.write).write_text(report(rows, big, gd_steps, args.workers, True))
    return 0


if __name__ == "__main__":
    # Run the copy imported as solver.bench, not this __main__ module: dask and spawn pickle
    # run_case and Case by reference and must find them by their module name.
    from solver.bench import main as _main

    sys.exit(_main())
