"""Regenerate the figures of the paper's section 4 from the presets in assets/ (``python -m solver
reproduce FIG --out DIR``).

``reproduce(figure, out)`` solves the figure's preset(s) with ``solver.solve`` (``solve_iter`` where
the figure shows the descent), draws ``out/FIG.png`` like the paper's figure, writes the numbers to
``out/FIG.json``, prints a table "quantity | paper | ours" and returns the numbers:
``{"figure", "title", "numbers": {quantity: {"paper": float | None, "ours": float}}, "solves", "seconds",
"png"}`` ("solves": how each solve ended: status, iterations, gradient evaluations, seconds).
"paper" is the published value where the paper (or its released data, assets/paper-data) has one.

Where a figure compares with the paper's own method, "gd" (section 4.1: plain gradient descent with the
preset's learning rate) is rerun here for a fixed budget of steps.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Polygon

from .diagnostics import map_errors, w2sq
from .init import initial_variables
from .io import output_folder
from .landscape import fig6_markers, fig6_problem, terminal_landscape
from .lazy import ot
from .objective import Objective
from .paths import at_times
from .problem import Problem, load_problem
from .run import Result, Snapshot, solve, solve_iter

ASSETS = Path(__file__).resolve().parent.parent / "assets"

FIGURES: dict[str, str] = {
    "fig1": "Fig. 1: N = 30 in 2-D, blob method vs POT emd (section 4.3)",
    "fig2": "Fig. 2: grid to Gaussian samples / continuum Gaussian, delta = N^(-0.99/d) (section 4.4)",
    "fig3": "Fig. 3: as Fig. 2 with delta too small (section 4.4)",
    "fig4": "Fig. 4: transport around two obstacles at t = 0.3, 0.55, 0.85, 1 (section 4.5)",
    "fig5": "Fig. 5: acceleration control in 1-D, initialization and optimizer (section 4.6)",
    "fig6": "Fig. 6: loss landscape of two particles in 1-D for four (eps, delta) (section 4.7)",
    "fig7": "Fig. 7: trajectories along the descent, 1-D, eps = 0.001 (section 4.8)",
    "fig8": "Fig. 8: errors (64), (65) and energies along the descent (section 4.8)",
    "fig9": "Fig. 9: terminal error (65) against N, delta = N^(-0.99) (section 4.9)",
}

#: Steps of the paper's gradient descent rerun in Figs. 1 (the paper's n = 2,000) and 7-8.
GD_STEPS = {"fig1": 2000, "fig7": 20000}
#: Fig. 4's solve is capped at this many seconds (it converges in about 18 s on 2 cores).
FIG4_SECONDS = 20.0
#: Fig. 6: the objective values the paper's notebook prints at the markers, per panel (float32).
FIG6_NOTEBOOK = {"source": (398.94302, 39.894302, 26.824535, 2.6824536), "target": (1.0,) * 4,
                 "flipped": (1.25,) * 4}

Numbers = dict[str, tuple[float | None, float]]


# ------------------------------------------------------------------------------------- runs
@dataclass
class Descent:
    """Snapshots of one solve: ``history`` (every report) and ``final`` (the best iterate)."""

    history: list[Snapshot]
    final: Snapshot

    @property
    def evaluations(self) -> np.ndarray:
        return np.array([s.evaluations for s in self.history])

    def energy(self, key: str) -> np.ndarray:
        return np.array([s.energies[key] for s in self.history])

    def errors(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Errors (64), (65) at every snapshot (NaN where it carries no trajectories)."""
        rows = [map_errors(s.states, image) if s.states is not None else {} for s in self.history]
        return {k: np.array([r.get(k, np.nan) for r in rows]) for k in ("error_all_times", "error_terminal")}

    def by_start(self, values: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """(evaluations, values) per start of the method, ``values`` aligned with ``history`` (the
        start is the first part of ``Snapshot.phase``: robust runs from an OT start, then the given one)."""
        starts = np.array([s.phase.split("/")[0] for s in self.history])
        return {name: (self.evaluations[starts == name], values[starts == name]) for name in dict.fromkeys(starts)}


def preset(name: str) -> Problem:
    """The problem file assets/NAME.json."""
    return load_problem(ASSETS / f"{name}.json")


def with_optimizer(problem: Problem, **changes: object) -> Problem:
    """``problem`` with some optimizer settings replaced (method, max_iter, time_limit, ...)."""
    return problem.with_changes(optimizer={**problem.spec.get("optimizer", {}), **changes})


def record(runs: list[dict], problem: Problem, method: str | None, snaps: list[Snapshot]) -> None:
    """Append how a solve ended to ``runs`` (evaluations: the total, not the best iterate's)."""
    final = snaps[-1]
    runs.append({"problem": problem.name, "method": method or problem.optimizer.method, "status": final.status,
                 "iterations": max(s.iteration for s in snaps), "evaluations": max(s.evaluations for s in snaps),
                 "seconds": final.elapsed})


def solved(problem: Problem, runs: list[dict]) -> Result:
    """``solve(problem)``, recorded in ``runs``."""
    snaps: list[Snapshot] = []
    result = solve(problem, callback=snaps.append)
    record(runs, problem, None, snaps)
    return result


def descend(problem: Problem, runs: list[dict], method: str | None = None, every: int = 10**9) -> Descent:
    """Run ``solve_iter`` to the end, keeping every snapshot (trajectories every ``every`` reports);
    recorded in ``runs``."""
    snaps = list(solve_iter(problem, every=every, method=method))
    record(runs, problem, method, snaps)
    return Descent(snaps[:-1] or snaps, snaps[-1])


def paper_gd(problem: Problem, steps: int, runs: list[dict], every: int = 10**9) -> Descent:
    """The paper's method (gd, the preset's learning rate) for at most ``steps`` steps."""
    return descend(with_optimizer(problem, max_iter=steps, time_limit=600.0), runs, "gd", every)


def ot_matched(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The target point each point is sent to by an exact OT plan (POT emd, squared distances)."""
    n, k = len(points), len(targets)
    plan = ot.emd(np.full(n, 1.0 / n), np.full(k, 1.0 / k), ot.dist(points, targets))
    return targets[plan.argmax(1)]


# ------------------------------------------------------------------------------------- drawing
def new_figure(rows: int, cols: int, width: float, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(rows, cols, squeeze=False))


def draw_paths(ax: Axes, positions: np.ndarray, colour: str = "C0") -> None:
    """2-D trajectories (linear interpolation between time points), sources o, terminal points ."""
    for path in positions:
        ax.plot(path[:, 0], path[:, 1], "-", color=colour, lw=0.7, alpha=0.6)
    ax.plot(positions[:, 0, 0], positions[:, 0, 1], "o", ms=3, color="C0", label="source")
    ax.plot(positions[:, -1, 0], positions[:, -1, 1], ".", ms=5, color="C2", label="terminal $y_{i,M}$")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal")


def draw_paths_1d(ax: Axes, positions: np.ndarray, title: str) -> None:
    """1-D trajectories: position against time."""
    t = np.linspace(0.0, 1.0, positions.shape[1])
    for path in positions[..., 0]:
        ax.plot(t, path, "-o", ms=2, lw=0.8)
    ax.set(xlabel="t", ylabel="position", title=title)


def draw_gaussian(ax: Axes, mean: np.ndarray, sigma: float) -> None:
    """Dotted circles at sigma and 2 sigma around the Gaussian's mean."""
    for k in (1, 2):
        ax.add_patch(Circle(tuple(mean), k * sigma, fill=False, ls=":", color="k",
                            label=r"$\sigma$, $2\sigma$" if k == 1 else None))


def draw_obstacles(ax: Axes, problem: Problem) -> None:
    """Every obstacle as its outline, filled."""
    for k, shape in enumerate(problem.obstacles.shapes):
        ax.add_patch(Polygon(shape.outline(), closed=True, color="0.6", alpha=0.6, label=None if k else "obstacles"))


# ------------------------------------------------------------------------------------- figures
def fig1(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 1 (section 4.3): N = 30 in 2-D. Top: our trajectories and terminal points vs the target;
    bottom left: the POT emd matching; bottom right: objective (50) along the descent of ours and of
    the paper's gd (rerun for 2,000 steps, and the published loss curve plus C/eps)."""
    problem = preset("fig1_pot_comparison")
    paper = problem.spec["paper"]
    ours = descend(problem, runs, every=1)
    gd = paper_gd(problem, GD_STEPS["fig1"], runs)
    shift = Objective(problem).constant / problem.eps  # published losses omit C_{delta,m1}/eps
    published = np.load(ASSETS / "paper-data" / "fig1_pot_comparison.npz")["losses"] + shift
    source, target = problem.source, problem.target.points
    emd = w2sq(source, target)
    pos = ours.final.states

    fig, ax = new_figure(2, 2, 10, 9)
    draw_paths(ax[0, 0], pos)
    ax[0, 0].set_title("blob method: trajectories")
    ax[0, 1].plot(*target.T, "x", color="C3", label="target $w_i$")
    ax[0, 1].plot(*pos[:, -1].T, ".", color="C2", label="terminal $y_{i,M}$")
    ax[0, 1].set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title="terminal points vs target")
    matched = ot_matched(source, target)
    for a, b in zip(source, matched):
        ax[1, 0].plot([a[0], b[0]], [a[1], b[1]], "-", color="C1", lw=0.8)
    ax[1, 0].plot(*source.T, "o", ms=3, color="C0", label="source")
    ax[1, 0].plot(*target.T, "x", color="C3", label="target")
    ax[1, 0].set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title="POT emd matching")
    b = ax[1, 1]
    zoom = b.inset_axes([0.4, 0.35, 0.55, 0.4])
    for a in (b, zoom):
        for start, (evals, values) in ours.by_start(ours.energy("objective")).items():
            a.plot(evals, values, label=f"ours ({start})")
        a.plot(gd.evaluations, gd.energy("objective"), label=f"paper's gd, rerun ({gd.final.iteration} steps)")
        a.plot(np.arange(1, len(published) + 1), published, "--", label="paper's gd, published losses + C/eps")
        a.axhline(emd, color="k", ls=":", label=f"POT emd $W_2^2$ = {emd:.5f}")
        a.set_xscale("log")
    b.set(yscale="log", xlabel="gradient evaluations", ylabel="objective (50)", title="objective along the descent")
    zoom.set(ylim=(emd - 0.03, emd + 0.05), xlim=(10, None))
    zoom.tick_params(labelsize=7)
    for a in ax.flat:
        a.legend(fontsize=7, loc="upper left" if a is b else "best")
    fig.suptitle(FIGURES["fig1"])
    e = ours.final.energies
    return fig, {"objective": (paper["objective"], e["objective"]), "kinetic": (paper["kinetic"], e["kinetic"]),
                 "nonlocal": (paper["nonlocal"], e["nonlocal"]), "POT emd W2^2": (paper["emd_w2sq"], emd),
                 f"gd objective after {gd.final.iteration} steps (paper: published last loss + C/eps)":
                     (float(published[-1]), gd.final.objective)}


def gaussian_rows(names: tuple[str, str], figure: str, runs: list[dict]) -> tuple[Figure, Numbers]:
    """Figs. 2-3 (section 4.4): rows = iid samples / continuum Gaussian target; columns = trajectories
    and terminal points vs the target, with dotted circles at sigma and 2 sigma."""
    fig, ax = new_figure(2, 2, 10, 9.5)
    continuum = preset(names[1]).target
    mean, sigma = continuum.means[0], math.sqrt(continuum.covs[0][0, 0])
    numbers: Numbers = {}
    for row, name in enumerate(names):
        problem = preset(name)
        result = solved(problem, runs)
        kind = "samples" if problem.target.empirical is not None else "continuum"
        draw_paths(ax[row, 0], result.positions)
        ax[row, 0].set_title(f"{kind}: trajectories (delta = {problem.delta:.4f})")
        right = ax[row, 1]
        if kind == "samples":
            right.plot(*problem.target.points.T, "x", ms=4, color="C3", label="target samples")
        right.plot(*result.positions[:, -1].T, ".", color="C2", label="terminal $y_{i,M}$")
        draw_gaussian(right, mean, sigma)
        right.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title=f"{kind}: terminal points vs target")
        for a in ax[row]:
            a.legend(fontsize=7, loc="upper left")
        e = result.final.energies
        numbers[f"{kind}: objective"] = (problem.spec["paper"].get("objective"), e["objective"])
        numbers[f"{kind}: kinetic"] = (None, e["kinetic"])
        numbers[f"{kind}: nonlocal"] = (None, e["nonlocal"])
        outside = np.linalg.norm(result.positions[:, -1] - mean, axis=1) > 2 * sigma
        numbers[f"{kind}: share beyond 2 sigma (Gaussian: {math.exp(-2):.3f})"] = (None, float(outside.mean()))
    fig.suptitle(FIGURES[figure])
    return fig, numbers


def fig2(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 2: N = 225 grid source to 225 Gaussian samples (top) and to the continuum Gaussian (bottom)."""
    return gaussian_rows(("fig2_gaussian_samples", "fig2_gaussian_continuum"), "fig2", runs)


def fig3(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 3: as Fig. 2 with delta = sigma d^(-1/2) N^(-0.99/d), too small to sense the tails."""
    return gaussian_rows(("fig3_gaussian_samples", "fig3_gaussian_continuum"), "fig3", runs)


def fig4(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 4 (section 4.5): N = 25, M = 21 to a Gaussian around two circular obstacles (eq. 59); the
    linearly interpolated trajectories up to t = 0.3, 0.55, 0.85 and 1."""
    problem = with_optimizer(preset("fig4_obstacles"), time_limit=FIG4_SECONDS)
    result = solved(problem, runs)
    pos = result.positions
    fine = np.linspace(0.0, 1.0, 401)
    dense = at_times(pos, fine)
    fig, ax = new_figure(1, 4, 16, 4.6)
    for a, t in zip(ax[0], (0.3, 0.55, 0.85, 1.0)):
        draw_obstacles(a, problem)
        draw_gaussian(a, problem.target.means[0], math.sqrt(problem.target.covs[0][0, 0]))
        upto = dense[fine <= t + 1e-12]
        for i in range(problem.N):
            a.plot(upto[:, i, 0], upto[:, i, 1], "-", color="C0", lw=0.7)
        a.plot(*pos[:, 0].T, "o", ms=3, color="C0", label="source")
        a.plot(*at_times(pos, np.array([t]))[0].T, ".", ms=7, color="C2", label=f"y(t), t = {t}")
        a.set(xlabel="$x_1$", ylabel="$x_2$", aspect="equal", title=f"t = {t}", xlim=(-0.2, 2.2), ylim=(-0.2, 2.4))
        a.legend(fontsize=7, loc="lower right")
    fig.suptitle(FIGURES["fig4"])
    paper, e = problem.spec["paper"], result.final.energies
    depth = problem.obstacles.depth
    return fig, {"objective": (paper["objective"], e["objective"]), "kinetic": (paper["kinetic"], e["kinetic"]),
                 "nonlocal": (paper["nonlocal"], e["nonlocal"]), "obstacle penalty": (7e-10, e["obstacle"]),
                 "max depth inside an obstacle, time points": (None, float(depth(pos).max())),
                 "max depth inside an obstacle, interpolated": (None, float(depth(dense).max()))}


def fig5(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 5 (section 4.6): N = 10 in 1-D under acceleration control; the initialization (eqs. 56-57)
    and the optimizer (position against time), and the terminal (x, v) of both vs the target."""
    problem = preset("fig5_acceleration")
    objective = Objective(problem)
    start = objective.states(initial_variables(objective)).detach().numpy()
    result = solved(problem, runs)
    target = problem.target.points  # (x, v)
    fig, ax = new_figure(1, 3, 15, 4.5)
    draw_paths_1d(ax[0, 0], start[..., :1], "initialization (eqs. 56-57)")
    draw_paths_1d(ax[0, 1], result.positions, "optimized trajectories")
    phase = ax[0, 2]
    phase.plot(*target.T, "x", ms=8, color="C3", label="target (x, v)")
    phase.plot(*start[:, -1].T, "s", mfc="none", color="C7", label="initialization at t = 1")
    phase.plot(*result.states[:, -1].T, ".", ms=8, color="C2", label="optimized at t = 1")
    phase.set(xlabel="position x", ylabel="velocity v", title="phase plane at t = 1")
    phase.legend(fontsize=7)
    fig.suptitle(FIGURES["fig5"])
    terminal = result.states[:, -1]
    err = np.abs(terminal - ot_matched(terminal, target)).max(0)
    e = result.final.energies
    return fig, {"objective": (None, e["objective"]), "kinetic": (None, e["kinetic"]),
                 "nonlocal": (None, e["nonlocal"]), "max terminal position error (OT-matched)": (None, float(err[0])),
                 "max terminal velocity error (OT-matched)": (None, float(err[1]))}


def fig6(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 6 (section 4.7): objective (50) of two particles in 1-D (M = 2, straight lines) as a function
    of the terminal points (y_{1,2}, y_{2,2}) in [0, 2]^2, for the preset's four (eps, delta); markers:
    source +, target x, flipped pentagon, initialization (eqs. 56-57) dot, with their values."""
    panels = preset("fig6_landscape").spec["paper"]["panels"]
    grid = np.linspace(0.0, 2.0, 81)
    style = {"source": ("+", "k"), "target": ("x", "r"), "flipped": ("p", "k"), "initial": ("o", "k")}
    fig, ax = new_figure(2, 2, 11, 10)
    numbers: Numbers = {}
    for k, (a, (eps, delta)) in enumerate(zip(ax.flat, panels)):
        problem = fig6_problem(eps, delta)
        E = terminal_landscape(problem, grid, grid)
        filled = a.contourf(grid, grid, np.log10(E), levels=30, cmap="viridis")
        fig.colorbar(filled, ax=a, label="log10 objective")
        for name, (y1, y2) in fig6_markers(problem).items():
            value = float(terminal_landscape(problem, np.array([y1]), np.array([y2]))[0, 0])
            marker, colour = style[name]
            a.plot(y1, y2, marker, color=colour, ms=10, mew=2, clip_on=False, zorder=5,
                   label=f"{name}: {value:.6g}")
            notebook = FIG6_NOTEBOOK.get(name)
            numbers[f"{name}, eps={eps} delta={delta}"] = (notebook[k] if notebook else None, value)
        a.set(xlabel="$y_{1,2}$", ylabel="$y_{2,2}$", aspect="equal", title=f"eps = {eps}, delta = {delta}")
        a.legend(fontsize=7, loc="lower left")
    fig.suptitle(FIGURES["fig6"])
    return fig, numbers


def small_eps_runs(runs: list[dict]) -> tuple[Problem, Descent, Descent]:
    """Figs. 7-8's runs on fig7_small_eps.json: the paper's gd (lr = max(0.001 eps, 1e-5), the
    preset's) for 20,000 steps and ours, both with trajectories at every iteration."""
    problem = preset("fig7_small_eps")
    return problem, paper_gd(problem, GD_STEPS["fig7"], runs, every=1), descend(problem, runs, every=1)


def _along(descent: Descent) -> list[tuple[str, np.ndarray]]:
    """Fig. 7's columns for one run: its first iterate, after 10 iterations, a geometric middle
    iteration, and the result (the best iterate)."""
    last = descent.history[-1].iteration
    marks = (1, min(10, last), int(round(math.sqrt(10 * last))))
    picked = [min(descent.history, key=lambda s: abs(s.iteration - m)) for m in marks]
    titles = [f"first iterate ({picked[0].phase})"] + [f"iteration {s.iteration} ({s.phase})" for s in picked[1:]]
    return [*zip(titles, (s.states for s in picked)), (f"result, iteration {descent.final.iteration} "
                                                       f"({descent.final.phase})", descent.final.states)]


def _small_eps_numbers(problem: Problem, gd: Descent, ours: Descent, image: np.ndarray) -> Numbers:
    numbers: Numbers = {"exact W2^2 of the discrete measures (reference)":
                        (None, w2sq(problem.source, problem.target.points))}
    for label, run in ((f"paper's gd, {gd.final.iteration} steps", gd), ("ours", ours)):
        errors = map_errors(run.final.states, image)
        for key in ("objective", "kinetic", "nonlocal"):
            numbers[f"{label}: {key}"] = (None, run.final.energies[key])
        numbers[f"{label}: error (64), all times"] = (None, errors["error_all_times"])
        numbers[f"{label}: error (65), t = 1"] = (None, errors["error_terminal"])
    return numbers


def fig7(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 7 (section 4.8): N = 20 in 1-D, eps = 0.001; trajectories at the start, after 10 iterations,
    at a middle iteration and at the end of the paper's gd (top) and of ours (bottom)."""
    problem, gd, ours = small_eps_runs(runs)
    fig, ax = new_figure(2, 4, 16, 7.5)
    for row, (label, run) in enumerate((("paper's gd", gd), ("ours", ours))):
        for a, (title, states) in zip(ax[row], _along(run)):
            draw_paths_1d(a, states, f"{label}: {title}")
    fig.suptitle(FIGURES["fig7"])
    return fig, _small_eps_numbers(problem, gd, ours, 0.5 * problem.source + 2.0)


def fig8(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 8 (section 4.8): along the descent of the paper's gd and of ours (Fig. 7's runs), the
    errors (64) (all times) and (65) (t = 1) against T(y) = y/2 + 2 (eq. 63), and the kinetic (51),
    nonlocal (55) and total (50) energies."""
    problem, gd, ours = small_eps_runs(runs)
    image = 0.5 * problem.source + 2.0
    exact = w2sq(problem.source, problem.target.points)
    fig, ax = new_figure(1, 3, 18, 5.2)
    for method, run, styles in (("gd", gd, ("-",)), ("ours", ours, ("--", ":"))):
        errors = run.errors(image)
        series = [(0, errors["error_all_times"], "C0", "error (64)"), (0, errors["error_terminal"], "C1", "error (65)")]
        series += [(1, run.energy(k), c, k) for k, c in (("kinetic", "C2"), ("nonlocal", "C3"), ("objective", "k"))]
        series += [(2, run.energy("kinetic"), "C2", "kinetic")]
        for panel, values, colour, name in series:
            for (start, (evals, part)), ls in zip(run.by_start(values).items(), styles):
                label = f"{method}{'' if method == 'gd' else ' (' + start + ')'}: {name}"
                ax[0, panel].plot(evals, part, ls, color=colour, label=label)
    ax[0, 2].axhline(exact, color="k", ls=":", label=f"exact $W_2^2$ = {exact:.5f}")
    ax[0, 0].set(xscale="log", yscale="log", xlabel="gradient evaluations", ylabel="error",
                 title="errors (64) all times, (65) t = 1")
    ax[0, 1].set(xscale="log", yscale="log", xlabel="gradient evaluations", ylabel="energy",
                 title="kinetic (51), nonlocal (55), total (50)")
    ax[0, 2].set(xscale="log", ylim=(exact - 0.01, exact + 0.1), xlabel="gradient evaluations",
                 ylabel="kinetic energy (51)", title="kinetic energy, linear axis")
    for a in ax.flat:
        a.legend(fontsize=7)
    fig.suptitle(FIGURES["fig8"])
    return fig, _small_eps_numbers(problem, gd, ours, image)


def fig9(runs: list[dict]) -> tuple[Figure, Numbers]:
    """Fig. 9 (section 4.9): terminal error (65) against N = 5 .. 100 (eps = 0.01, delta = N^(-0.99)),
    ours and the paper's, on log-log axes with least-squares slopes."""
    numbers: Numbers = {}
    Ns, paper, ours = [], [], []
    for path in sorted(ASSETS.glob("fig9_N*.json")):
        problem = load_problem(path)
        result = solved(problem, runs)
        err = map_errors(result.positions, 0.5 * problem.source + 2.0)["error_terminal"]
        Ns.append(problem.N), paper.append(problem.spec["paper"]["terminal_error"]), ours.append(err)
        numbers[f"error (65), N = {problem.N}"] = (paper[-1], err)
    logN = np.log(Ns)
    slopes = {label: float(np.polyfit(logN, np.log(errs), 1)[0]) for label, errs in (("paper", paper), ("ours", ours))}
    numbers["least-squares slope"] = (slopes["paper"], slopes["ours"])
    fig, ax = new_figure(1, 1, 6.5, 5)
    a = ax[0, 0]
    for label, errs, style in (("paper (gd, 2e6 steps)", paper, dict(marker="s", color="C0")),
                               ("ours", ours, dict(marker="o", color="C1", mfc="none", ms=10))):
        fit = np.polyfit(logN, np.log(errs), 1)
        a.loglog(Ns, errs, ls="none", label=label, **style)
        a.loglog(Ns, np.exp(np.polyval(fit, logN)), "--", color=style["color"],
                 label=f"least-squares fit, slope {fit[0]:.3f}")
    a.set(xlabel="N", ylabel="error (65) at t = 1", title="Fig. 9: terminal error (65) against N,\n"
          "eps = 0.01, delta = N^(-0.99), M = 5")
    a.legend(fontsize=8)
    return fig, numbers


BUILDERS: dict[str, Callable[[list[dict]], tuple[Figure, Numbers]]] = {
    "fig1": fig1, "fig2": fig2, "fig3": fig3, "fig4": fig4, "fig5": fig5, "fig6": fig6, "fig7": fig7,
    "fig8": fig8, "fig9": fig9}


# ------------------------------------------------------------------------------------- output
def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def table(numbers: Numbers) -> str:
    """The "quantity | paper | ours" table."""
    width = max(len(q) for q in numbers)
    lines = [f"{'quantity'.ljust(width)} | {'paper':>12} | {'ours':>12}", f"{'-' * width}-+-{'-' * 12}-+-{'-' * 12}"]
    lines += [f"{q.ljust(width)} | {_fmt(p):>12} | {_fmt(o):>12}" for q, (p, o) in numbers.items()]
    return "\n".join(lines)


def reproduce(figure: str, out: Path) -> dict:
    """Regenerate ``figure`` ("fig1" .. "fig9"): write out/FIG.png and out/FIG.json, print the table,
    return the numbers (see the module docstring)."""
    out = output_folder(out)
    clock = time.perf_counter()
    runs: list[dict] = []
    fig, numbers = BUILDERS[figure](runs)
    png = out / f"{figure}.png"
    fig.savefig(png, dpi=110)
    info = {"figure": figure, "title": FIGURES[figure],
            "numbers": {q: {"paper": p, "ours": float(o)} for q, (p, o) in numbers.items()},
            "solves": runs, "seconds": time.perf_counter() - clock, "png": str(png)}
    (out / f"{figure}.json").write_text(json.dumps(info, indent=1) + "\n")
    print(f"{FIGURES[figure]}  ({info['seconds']:.1f} s) -> {png}")
    print(table(numbers))
    for r in runs:
        print(f"  {r['problem']} [{r['method']}]: {r['status']} after {r['iterations']} iterations, "
              f"{r['evaluations']} evaluations, {r['seconds']:.1f} s")
    return info
