"""The obstacle benchmark: ``python -m solver.bench --obstacles [--markdown] [--write PATH]``.

Two scenes, each solved by the default solver (``robust``: obstacle-aware start, smoothed kink) and, as
the baseline in the same process, by plain L-BFGS on the exact penalty (59) from the paper's straight
start, both under the same time limit:

1. **Fig. 4** (``assets/fig4_obstacles.json``, whole-path avoidance off as published): seconds, status,
   objective against the published 16.16196, depths at the time points and along the segments.
2. **Three obstacles** (``three_obstacle_scene``: 60 particles from a blob to a cloud past three discs of
   radius 0.2-0.25, M = 16, eps 0.01), with whole-path avoidance on, and off for comparison.

It also draws ``docs/obstacles_off_on.png``: the three-obstacle scene solved with the option off and on.
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
from .problem import Problem, problem_from_dict
from .reproduce import draw_obstacles
from .run import solve, threads_for, use_threads

ASSETS = Path(__file__).resolve().parent.parent / "assets"
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
    started = time.perf_counter()
    result = solve(problem, method=method)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "status": result.final.status, "objective": result.final.energies["objective"],
            **obstacle_depths(problem, result.positions), "positions": result.positions}


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
