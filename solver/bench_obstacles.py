"""The obstacle benchmark: ``python -m solver.bench --obstacles [--markdown] [--write PATH]``.

Two scenes, each solved by the default solver (``robust``: obstacle-aware start, smoothed kink) and, as
the baseline in the same process, by plain L-BFGS on the exact penalty (59) from the paper's straight
start, both under the same time limit:

1. **Fig. 4** (``assets/fig4_obstacles.json``, whole-path avoidance off as published): seconds, status,
   objective against the published 16.16196, depths at the time points and along the segments.
2. **Three obstacles** (``three_obstacle_scene``: 60 particles from a blob to a cloud past three discs of
   radius 0.2-0.25, M = 16, eps 0.01), with whole-path avoidance on, and off for comparison.

It also draws ``docs/obstacles_off_on.png``: the three-obstacle scene solved with the option off and on.

``--scenes`` instead solves the 23 obstacle scenes the solver's changes are measured on (``scenes``: the
three cases above, the gap-in-a-wall and mixture presets, and ``assets/obstacle_scenes``: the default
scene with a disc on its paths, with and without whole-path avoidance, 400 particles past a disc, a
polygon wall, 14 random scenes of 40-250 particles and 1-3 discs with particle and continuum targets)
by the default solver alone, one after the other in this process: seconds, iterations, status,
objective and depths per scene, and their total. Plain L-BFGS takes minutes on most of them, so there
is no baseline in the same process: ``--against PATH`` compares with a run saved by ``--save PATH``
(e.g. of another commit): time ratios and relative objective changes (local minima differ: section
4.7).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from matplotlib.figure import Figure

from .diagnostics import obstacle_depths
from .init import forget_quantizations
from .problem import Problem, problem_from_dict
from .reproduce import draw_obstacles
from .run import solve, threads_for
from .threads import use_threads

ASSETS = Path(__file__).resolve().parent.parent / "assets"
#: The drawn and random obstacle scenes of ``--scenes`` (besides the cases and presets).
SCENES = ASSETS / "obstacle_scenes"
#: Both solvers stop here at the latest.
TIME_LIMIT = 60.0
#: The figure marks segments reaching deeper than this into an obstacle.
CUT_DEPTH = 1e-3
#: The published Fig. 4 objective (paper-data README).
FIG4_PUBLISHED = 16.16196


def three_obstacle_scene(segments: bool, seed: int = 0) -> dict[str, Any]:
    """60 particles in a blob at the origin, a cloud of 60 around (2, 0), three discs in between."""
    rng = np.random.default_rng(seed)
    obstacles = [{"center": [0.7, -0.25], "radius": 0.22}, {"center": [1.0, 0.3], "radius": 0.25},
                 {"center": [1.35, -0.15], "radius": 0.2}]
    return {"name": "three obstacles", "source": {"points": rng.normal([0.0, 0.0], 0.15, (60, 2)).tolist()},
            "target": {"kind": "particles", "points": rng.normal([2.0, 0.0], 0.15, (60, 2)).tolist()},
            "obstacles": obstacles, "obstacle_segments": segments, "eps": 0.01, "M": 16,
            "optimizer": {"time_limit": TIME_LIMIT}}


def _timed(problem: Problem, method: str | None) -> dict[str, Any]:
    use_threads(threads_for(problem, os.cpu_count() or 1))  # as the command line would (one thread here)
    forget_quantizations()  # a first solve of its target (the warm-up may have made its quantizations)
    started = time.perf_counter()
    result = solve(problem, method=method)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "status": result.final.status, "objective": result.final.energies["objective"],
            "iterations": result.final.iteration, **obstacle_depths(problem, result.positions),
            "positions": result.positions}


def _warm_up(problem: Problem) -> None:
    """A few iterations of both solvers on ``problem``, untimed: the process's one-time costs (library
    loading, torch's first calls; measured ~2.5 s on Fig. 4's first solve) are then no case's."""
    short = dataclasses.replace(problem.optimizer, max_iter=20)
    for method in (None, "lbfgs"):
        solve(dataclasses.replace(problem, optimizer=short), method=method)


def cases() -> list[tuple[str, Problem]]:
    fig4 = json.loads((ASSETS / "fig4_obstacles.json").read_text())
    fig4["optimizer"] = {"time_limit": TIME_LIMIT}
    return [("Fig. 4 (segments off)", problem_from_dict(fig4)),
            ("three obstacles, segments on", problem_from_dict(three_obstacle_scene(True))),
            ("three obstacles, segments off", problem_from_dict(three_obstacle_scene(False)))]


def draw(runs: dict[str, dict], problem: Problem, path: Path) -> None:
    """The three-obstacle scene solved with whole-path avoidance off (left) and on (right)."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, label in zip(axes, ("three obstacles, segments off", "three obstacles, segments on")):
        run = runs[label]
        pos = run["positions"]
        draw_obstacles(ax, problem)
        for k, path_k in enumerate(pos):
            ax.plot(path_k[:, 0], path_k[:, 1], "-", color="tab:blue", lw=0.6, alpha=0.7,
                    label="trajectories (straight between time points)" if k == 0 else None)
        ax.plot(pos[:, :, 0].ravel(), pos[:, :, 1].ravel(), ".", ms=2, color="tab:blue", label="time points")
        i, j = np.nonzero(problem.obstacles.segment_depths(pos) > CUT_DEPTH)
        for n, (a, b) in enumerate(zip(pos[i, j], pos[i, j + 1])):
            ax.plot([a[0], b[0]], [a[1], b[1]], "-", color="crimson", lw=1.6,
                    label=f"segments more than {CUT_DEPTH:g} inside" if n == 0 else None)
        ax.plot(pos[:, -1, 0], pos[:, -1, 1], "o", ms=3, color="tab:orange", label="terminal points")
        ax.set_title(f"obstacle_segments = {'true' if 'on' in label else 'false'}\n"
                     f"{len(i)} segments cut an obstacle; deepest {max(run['max_obstacle_depth_segments'], 0.0):.1e}",
                     fontsize=10)
        ax.set_xlabel("x0")
        ax.set_aspect("equal")
    axes[0].set_ylabel("x1")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=5, fontsize=8)
    fig.savefig(path, dpi=110)


def report(markdown: bool, render: Callable[[tuple[str, ...], list[list[str]], bool], str],
           figure: Path | None = None) -> str:
    """Run every case with both solvers; the table (and the figure, if a path is given)."""
    header = ("case", "solver", "seconds", "status", "objective", "depth at time points",
              "depth along segments", "baseline time / ours")
    rows, runs = [], {}
    scenes = cases()
    _warm_up(scenes[0][1])
    for label, problem in scenes:
        ours, base = _timed(problem, None), _timed(problem, "lbfgs")
        runs[label] = ours
        for name, run in (("robust (ours)", ours), ("lbfgs, straight start (baseline)", base)):
            rows.append([label, name, f"{run['seconds']:.1f}", run["status"], f"{run['objective']:.7f}",
                         f"{run['max_obstacle_depth']:.1e}", f"{run['max_obstacle_depth_segments']:.1e}",
                         f"{base['seconds'] / ours['seconds']:.1f}" if run is ours else ""])
    if figure is not None:
        draw(runs, scenes[1][1], figure)
    note = (f"Published Fig. 4 objective: {FIG4_PUBLISHED}. Depths: how far the deepest point lies inside "
            f"an obstacle (<= 0: outside all); time limit {TIME_LIMIT:.0f} s for both solvers.")
    return render(header, rows, markdown) + "\n\n" + note


def scenes() -> list[tuple[str, Problem]]:
    """The cases above, the obstacle presets of ``assets/playful`` and the scenes of ``SCENES``, each
    under ``TIME_LIMIT``."""
    found = cases()
    for path in [ASSETS / "playful" / "gap_in_a_wall.json", ASSETS / "playful" / "mixture_with_obstacles.json",
                 *sorted(SCENES.glob("*.json"))]:
        spec = json.loads(path.read_text())
        spec["optimizer"] = {**spec.get("optimizer", {}), "time_limit": TIME_LIMIT}
        found.append((path.stem, problem_from_dict(spec)))
    return found


def scenes_report(markdown: bool, render: Callable[[tuple[str, ...], list[list[str]], bool], str],
                  against: dict[str, dict] | None = None) -> tuple[str, dict[str, dict]]:
    """Solve every scene of ``scenes`` by the default solver; the table (compared with ``against``, a
    saved run, where given) and the results to save."""
    found = scenes()
    _warm_up(found[0][1])
    results = {}
    for label, problem in found:
        run = _timed(problem, None)
        results[label] = {k: run[k] for k in ("seconds", "iterations", "status", "objective", "max_obstacle_depth",
                                              "max_obstacle_depth_segments")}
    saved = against or {}
    # relative objective change against the saved run, for the scenes it has
    change = {label: (r["objective"] - saved[label]["objective"]) / abs(saved[label]["objective"])
              for label, r in results.items() if label in saved}
    header = ["scene", "N", "M", "seconds", "iterations", "status", "objective", "depth at time points",
              "depth along segments"]
    if against:
        header += ["saved run: seconds", "time / saved", "objective change (relative)"]
    rows = []
    for label, problem in found:
        r = results[label]
        row = [label, str(problem.N), str(problem.M), f"{r['seconds']:.1f}", str(r["iterations"]), r["status"],
               f"{r['objective']:.9f}", f"{r['max_obstacle_depth']:.1e}", f"{r['max_obstacle_depth_segments']:.1e}"]
        if against:
            row += (["-"] * 3 if label not in change else
                    [f"{saved[label]['seconds']:.1f}", f"{r['seconds'] / saved[label]['seconds']:.2f}",
                     f"{change[label]:+.1e}"])
        rows.append(row)
    total = sum(r["seconds"] for r in results.values())
    note = f"{len(found)} scenes, {total:.0f} s in all; time limit {TIME_LIMIT:.0f} s each."
    if against:
        shared = list(change)
        before = sum(saved[label]["seconds"] for label in shared)
        changes = list(change.values())
        note += (f" Against the saved run ({len(shared)} shared scenes): {before:.0f} -> "
                 f"{sum(results[label]['seconds'] for label in shared):.0f} s; objectives "
                 f"{sum(c > 1e-12 for c in changes)} higher, {sum(c < -1e-12 for c in changes)} lower, "
                 f"{sum(abs(c) <= 1e-12 for c in changes)} equal (to 1e-12 relative).")
    return render(tuple(header), rows, markdown) + "\n\n" + note, results
