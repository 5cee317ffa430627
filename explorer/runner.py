"""Background solves for one session.

``SolveRunner`` runs ``solver.solve_iter`` in a worker thread; a second thread recomputes the loss
landscape every ``landscape_interval`` seconds (solver threads of all sessions share the machine:
``cores.CORES``). The threads only deposit their results in a
lock-protected mailbox; ``flush()``, which the app calls from a Panel periodic callback on the
server's event loop (every ``push_interval`` s, i.e. up to 10 times per second), publishes them:
trajectories through a HoloViews ``Pipe`` (the scene writes them straight into its Bokeh data
sources), energies (a ``ThinnedHistory`` of at most a few thousand rows) and the landscape through
``Pipe``s, and the runner's own ``param`` parameters (state, status line, progress) for the status
bar. Publishing from the event loop at a fixed rate keeps the page responsive however fast the
solver reports. ``stop()`` ends both threads; the app calls it when the session is destroyed.
"""
from __future__ import annotations

import atexit
import dataclasses
import math
import threading
import time
import weakref
from collections import deque
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import param
from panel.io.document import unlocked
import torch

import solver
from solver.assignment import REASSIGN_EXACT_PAIRS, emd_affordable
from solver.diagnostics import obstacle_depths, w2sq_terminal
from solver.history import ThinnedHistory
from solver.init import target_size
from solver.landscape import path_landscape
from solver.study.execute import record_from_result
from solver.study.store import RunStore
from solver.threads import adopt_threads
from solver.warm import carry_over, continuation_method

from .cores import CORES, live_period

ENERGY_PERIOD = 1.0  # seconds between energy-plot updates (a Chromium tab draws one in ~60 ms)
W2_PERIOD = 1.0  # seconds between live W2^2-to-target evaluations (particle targets)
#: Larger plans (``assignment.emd_affordable``) are solved once, at the end (emd takes seconds).
LIVE_W2_MAX_PAIRS = 1_000_000
#: At most this many numbers of trajectories per second go to the plots: N = 500 (M = 10, 2-D) can
#: update 10 times a second, N = 20,000 once a second (each update is sent to the browser whole).
TRAJECTORY_NUMBERS_PER_SECOND = 400_000
PATH_KEEP = 200  # iterates kept for the landscape's path (each N x M x d numbers)
TERMINAL_PATH_KEEP = 5000  # terminal positions kept for Fig. 6's path (a long solve stays bounded)
#: The energy history's columns: the iteration, the iterate's energies, and the run's best objective so far
#: (``Snapshot.best_objective``: the robust method's check starts begin far above it, and the total jumps)
ENERGY_COLUMNS = ["iteration", "objective", "kinetic", "nonlocal", "obstacle", "best"]
ENERGY_PLOT_ROWS = 2000
#: The landscape thread waits so that it uses at most this share of a core, and sizes each slice's grid
#: so that a slice takes this share of ``LANDSCAPE_PERIOD``: in the browser a new slice every 0.4-0.9 s
#: (Fig. 4 solving; issue 11 asks at least one a second; slices vary by half with the solver threads'
#: share of the interpreter, and the loop waits at least ``landscape_interval``), at any N whose smallest
#: grid (7 x 7) fits in that time (N = 500: ~0.4 s a slice, every ~1.3 s).
LANDSCAPE_CPU_SHARE, LANDSCAPE_PERIOD = 0.3, 0.4


def next_budget(budget: float, took: float, most: float) -> float:
    """The next landscape slice's evaluation budget (at most ``most``): the last one's scaled so that a
    slice takes ``LANDSCAPE_CPU_SHARE * LANDSCAPE_PERIOD`` seconds in all. ``path_landscape`` sizes its
    grid from one timed evaluation, which leaves out its gradient and the solver threads' share of the
    interpreter; measured slices put those in."""
    return min(most, budget * LANDSCAPE_CPU_SHARE * LANDSCAPE_PERIOD / max(took, 1e-6))


def solve_parameters(problem: solver.Problem) -> str:
    """The parameters a solve runs with, for the status line (a live change shows up here)."""
    opt = problem.optimizer
    parts = [f"eps = {problem.eps:g}", f"delta = {problem.delta:.3g}", f"M = {problem.M}"]
    exponent = problem.control_cost.to_spec().get("p")
    if exponent is not None:
        parts.append(f"p = {exponent:g}")
    parts.append(f"method = {opt.method}")
    if opt.method in ("gd", "adam"):
        parts.append(f"lr = {opt.lr:g}" if opt.lr is not None else "lr = 0.01 eps")
    return " · ".join(parts)


def status_line(snap: solver.Snapshot, rate: float, w2: float | None = None,
                problem: solver.Problem | None = None) -> str:
    """One line for the status bar: iteration, phase, iterations per second, step size, energies, W2,
    and the parameters the solve uses."""
    e = snap.energies
    parts = [f"iteration {snap.iteration}", *([snap.phase] if snap.phase else []), f"{rate:.0f} it/s",
             f"step {snap.step_size:.3g}", f"E = {e['objective']:.6g}", f"KE = {e['kinetic']:.4g}",
             f"NE = {e['nonlocal']:.4g}"]
    if e.get("obstacle"):
        parts.append(f"obstacle = {e['obstacle']:.4g}")
    if w2 is not None:
        parts.append(f"W2² to target = {w2:.4g}")
    parts.append(f"{snap.elapsed:.1f} s")
    if problem is not None:
        parts.append(f"[{solve_parameters(problem)}]")
    return " · ".join(parts)


_RUNNERS: "weakref.WeakSet[SolveRunner]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Stop every solve when the server exits (no solver thread outlives the interpreter)."""
    for runner in list(_RUNNERS):
        runner.close(timeout=2.0)


class SolveRunner(param.Parameterized):
    """One session's solve: start / pause / resume / stop; ``flush()`` publishes to the streams."""

    state = param.Selector(default="idle", objects=["idle", "running", "paused", "finished"])
    status = param.String(default="Ready. Press Run to solve.")
    final_status = param.String(default="", doc="converged / max_iter / time_limit / stopped / diverged")
    iteration = param.Integer(default=0)
    progress = param.Number(default=0.0, bounds=(0.0, 100.0))
    pushes = param.Integer(default=0, doc="Trajectory updates sent to the plots in this solve.")
    stored = param.Integer(default=0, doc="Runs of this session written to the run store.")

    def __init__(self, push_interval: float = 0.1, landscape_interval: float = 0.5,
                 landscape_budget: float = 0.4, store: RunStore | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.store = store
        self.store_error = ""
        self.push_interval = push_interval
        self.landscape_interval = landscape_interval
        self.landscape_budget = landscape_budget
        self.landscape_enabled = True
        self.trajectories = hv.streams.Pipe(data=None)
        self.history: ThinnedHistory[list[float]] = ThinnedHistory(ENERGY_PLOT_ROWS)
        self.energies = hv.streams.Pipe(data=self.energy_frame())
        self.landscape = hv.streams.Pipe(data=None)
        self.acceleration = hv.streams.Pipe(data=None)  # trajectories of acceleration problems only
        self._next_flush = 0.0
        self._idle = threading.Event()  # cleared while flush() publishes; the solver thread waits
        self._idle.set()
        self._energy_sent = 0.0
        self._energy_unsent = False  # rows in the history that the energy plot has not been sent yet
        self.problem: solver.Problem | None = None
        self.states: np.ndarray | None = None
        self.summary: dict[str, Any] | None = None
        # recent iterates (positions, flattened) for the landscape, terminal positions for Fig. 6's path
        self.path: deque[np.ndarray] = deque(maxlen=PATH_KEEP)
        self.terminal_path: deque[np.ndarray] = deque(maxlen=TERMINAL_PATH_KEEP)
        self._control: solver.SolveControl | None = None
        self._thread: threading.Thread | None = None
        self._landscape_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._clear_mailbox()
        _RUNNERS.add(self)

    def _clear_mailbox(self) -> None:
        self._rows: list[list[float]] = []
        self._snap: solver.Snapshot | None = None  # latest snapshot
        self._fresh: solver.Snapshot | None = None  # latest snapshot with states, not yet shown
        self._final: tuple[solver.Snapshot, float | None] | None = None
        self._failure: str | None = None
        self._landscape_result: dict | None = None
        self._next_trajectories = 0.0  # large N: earliest time of the next trajectory update
        self._rate_mark = (time.perf_counter(), 0)
        self._rate = 0.0
        self._w2: float | None = None  # latest W2^2 from the terminal states to a particle target
        self._pending: solver.Problem | None = None  # a live change waiting for the solver thread

    # ----------------------------------------------------------------------------- controls
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, problem: solver.Problem, warm: bool = False) -> None:
        """Start a solve of ``problem`` (stopping any solve in progress). ``warm``: continue from the
        last result when ``solver.warm.carry_over`` maps it onto ``problem`` (a small change), else
        start from the problem's own start."""
        carried = carry_over(self.problem, self.states, problem) if warm and self.problem is not None else None
        self._forget()
        resume = None
        if carried is not None:
            resume = solver.Snapshot(0, 0, {}, 0.0, math.inf, 0.0, "warm start", states=carried)
        self.problem = problem
        self._control = solver.SolveControl()
        self.state = "running"
        self.status = ("Continuing from the last result ..." if resume else "Starting the solve ...") + \
            f" [{solve_parameters(problem)}]"
        self._thread = threading.Thread(target=self._run, args=(problem, self._control, resume),
                                        name="mfc-solve", daemon=True)
        self._thread.start()
        if self.landscape_enabled:
            self._landscape_thread = threading.Thread(target=self._landscape_loop, args=(self._control,),
                                                      name="mfc-landscape", daemon=True)
            self._landscape_thread.start()

    def retarget(self, problem: solver.Problem) -> bool:
        """Hand a changed problem to the running (or paused) solve: at its next report it continues on
        ``problem`` from its current iterate (``carry_over``; the problem's own start if the change is
        too large). Returns False when no solve is running. The latest of several quick changes wins."""
        if not self.running:
            return False
        with self._lock:
            self._pending = problem
        self.status = f"Applying the change: continuing from the current iterate [{solve_parameters(problem)}]"
        return True

    def pause(self) -> None:
        if self._control is not None and self.running:
            self._control.pause()
            self.state = "paused"

    def resume(self) -> None:
        if self._control is not None and self.running:
            self._control.resume()
            self.state = "running"

    def request_stop(self) -> None:
        """Ask the solve to stop and return at once (the Stop button: an event handler must not wait
        for the solver thread); its best iterate becomes the result at the next ``flush()``."""
        if self._control is not None and self.running:
            self._control.stop()
            self.status = "Stopping: the result appears at the solver's next check ..."

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the solve (its best iterate becomes the result), wait for the threads, publish."""
        self.close(timeout)
        self.flush(force=True)

    def close(self, timeout: float = 10.0) -> None:
        """End the threads without publishing (the session is gone: its plots no longer exist)."""
        if self._control is not None:
            self._control.stop()
        for thread in (self._thread, self._landscape_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the solve to end by itself, then publish its result (tests, scripts)."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush(force=True)

    def _forget(self) -> None:
        """Stop any solve and clear its mailbox, history, result and counters."""
        self.stop()
        with self._lock:
            self._clear_mailbox()
            self.path.clear()
            self.terminal_path.clear()
        self.problem, self.states, self.summary = None, None, None
        self.history.clear()
        self.energies.send(self.energy_frame())
        self._energy_unsent = False
        self.iteration, self.progress, self.pushes, self.final_status = 0, 0.0, 0, ""

    def reset(self) -> None:
        """Stop and forget the result."""
        self._forget()
        self.trajectories.send(None)
        self.acceleration.send(None)
        self.landscape.send(None)
        self.state = "idle"
        self.status = "Ready. Press Run to solve."

    def load_result(self, problem: solver.Problem, states: np.ndarray | None,
                    summary: dict[str, Any] | None) -> None:
        """Show an imported result (a loaded session) as if it had just been solved."""
        self.reset()
        if states is None:
            return
        self.problem, self.states, self.summary = problem, states, summary
        self.final_status = str((summary or {}).get("status", "loaded"))
        self.iteration = int((summary or {}).get("iteration", 0))
        self.state = "finished"
        self.status = f"Loaded result ({self.final_status}, iteration {self.iteration})."
        self.trajectories.send(states)
        if problem.dynamics.has_velocities:
            self.acceleration.send(states)

    def energy_frame(self) -> pd.DataFrame:
        """The solve's energy history (thinned) as a DataFrame with ``ENERGY_COLUMNS``."""
        rows = np.array(self.history.rows(), dtype=float).reshape(-1, len(ENERGY_COLUMNS))
        return pd.DataFrame(rows, columns=ENERGY_COLUMNS)

    # ----------------------------------------------------------------------------- worker
    def _run(self, problem: solver.Problem, control: solver.SolveControl,
             resume: solver.Snapshot | None) -> None:
        """Solve ``problem`` (from ``resume``'s trajectories if given), depositing every snapshot in the
        mailbox. A live change (``retarget``) ends the current leg at its next report and starts a leg
        on the new problem from the current iterate; iterations keep counting across legs."""
        method = continuation_method(problem) if resume is not None else None
        try:
            while True:
                current, pending = self._leg(problem, control, resume, method)
                if pending is None:
                    return
                carried = carry_over(problem, current.states, pending) if current is not None else None
                resume = method = None
                if carried is not None:
                    resume = dataclasses.replace(current, states=carried, elapsed=0.0, status=None)
                    method = continuation_method(pending)
                problem = pending
                with self._lock:  # iterates of the old problem no longer fit the landscape's path
                    self.problem, self._fresh = problem, None
                    self.path.clear()
                    self.terminal_path.clear()
        except Exception as err:  # the solver failed on this input: report it, keep the app alive
            with self._lock:
                self._failure = f"The solve failed: {type(err).__name__}: {err}"

    def _leg(self, problem: solver.Problem, control: solver.SolveControl, resume: solver.Snapshot | None,
             method: str | None) -> tuple[solver.Snapshot | None, solver.Problem | None]:
        """One solve of ``problem`` until it ends or a live change arrives; returns the latest snapshot
        with trajectories and the change (None when the solve ended by itself)."""
        live_w2 = emd_affordable(problem.N, target_size(problem), LIVE_W2_MAX_PAIRS)
        w2, w2_time = None, -math.inf
        current = None

        def interrupted() -> bool:
            return control.stopped or self._pending is not None

        iterator = solver.solve_iter(problem, control=control, every=1, resume=resume, method=method)
        try:
            while True:
                CORES.acquire(interrupted)  # (interrupted while waiting: the solve only reports and ends)
                try:
                    snap = next(iterator)
                except StopIteration:
                    break
                with self._lock:
                    pending, self._pending = self._pending, None
                if pending is not None and not control.stopped:
                    return current or (snap if snap.states is not None else None), pending
                if snap.states is not None:
                    current = snap
                row = [snap.iteration] + [snap.energies.get(k, 0.0) for k in ENERGY_COLUMNS[1:-1]] + [
                    min(snap.best_objective, snap.objective)]
                last = snap.status not in (None, "paused")
                if snap.states is not None and (last or live_w2 and time.perf_counter() - w2_time > W2_PERIOD):
                    # live: emd's sizes; at the end also the larger ones that summary.json gets exactly
                    w2 = w2sq_terminal(problem, snap.states, REASSIGN_EXACT_PAIRS if last else 0)
                    w2_time = time.perf_counter()
                with self._lock:
                    self._rows.append(row)
                    self._snap = snap
                    self._w2 = w2
                    if snap.states is not None:
                        self._fresh = snap
                    self._final = (snap, w2) if last else None
                self._idle.wait(1.0)  # while the event loop publishes, leave it the interpreter (GIL)
                if snap.status == "paused":  # wait for Resume without holding a core
                    CORES.release()
                    control.wait_while_paused()
                else:
                    CORES.turn(interrupted)
        finally:
            iterator.close()
            CORES.release()
        return current, None

    def flush(self, force: bool = False) -> None:
        """Publish what the threads produced since the last call (call on the server's event loop).

        Publishing costs event-loop time (HoloViews re-renders the plots): the solver thread waits
        while it runs (so the two do not fight over the interpreter lock), and a call that comes
        sooner than 60 % of the previous publish's duration after it is skipped, so the loop stays
        free for the browser's messages however slow the rendering gets. With several sessions solving,
        each publishes less often (``live_period``: all sessions together about
        ``LIVE_UPDATES_PER_SECOND`` publishes a second), since every publish costs the event loop and the
        page's browser; the periodic callback itself comes every ``push_interval``. ``force``: publish
        now whatever the last publish's time (``stop`` and ``wait``, whose callers read the result at
        once: skipped there, a stopped or finished solve could still read "running")."""
        if not force and time.perf_counter() < self._next_flush:
            return
        started = time.perf_counter()
        self._idle.clear()
        try:
            with unlocked():  # the publish's changes (plots, status, counters) go out as one message
                self._publish()
        finally:
            self._idle.set()
        finished = time.perf_counter()
        self._next_flush = finished + max(0.6 * (finished - started),
                                          live_period(self.push_interval) - self.push_interval)

    def _publish(self) -> None:
        with self._lock:
            rows, snap, fresh, final, failure = self._rows, self._snap, self._fresh, self._final, self._failure
            landscape = self._landscape_result
            self._rows, self._final, self._failure, self._landscape_result = [], None, None, None
            if final is not None or time.perf_counter() >= self._next_trajectories:
                self._fresh = None
            else:
                fresh = None  # large N: too soon after the last trajectories; they wait in the mailbox
            if fresh is not None and self.problem is not None:
                pos = fresh.states[..., : self.problem.source.shape[1]]
                self.path.append(pos.ravel().copy())
                self.terminal_path.append(pos[:, -1].ravel().copy())
        self.history.extend(rows)
        self._energy_unsent = self._energy_unsent or bool(rows)
        if self._energy_unsent and (final is not None
                                    or time.perf_counter() - self._energy_sent > live_period(ENERGY_PERIOD)):
            self.energies.send(self.energy_frame())
            self._energy_sent, self._energy_unsent = time.perf_counter(), False
        if fresh is not None:
            self.states = fresh.states
            self._next_trajectories = time.perf_counter() + fresh.states.size / TRAJECTORY_NUMBERS_PER_SECOND
            self.trajectories.send(fresh.states)
            if self.problem is not None and self.problem.dynamics.has_velocities:
                self.acceleration.send(fresh.states)
        if landscape is not None:
            self.landscape.send(landscape)
        if rows and snap is not None and self.problem is not None:
            # one batch of parameter changes: the status widgets re-render once per publish
            self.param.update(**self._progress(self.problem, snap),
                              **({"pushes": self.pushes + 1} if fresh is not None else {}))
        elif fresh is not None:
            self.pushes += 1
        if final is not None:
            self._finish(*final)
        if failure is not None:
            self.final_status, self.state, self.status = "error", "finished", failure

    def _progress(self, problem: solver.Problem, snap: solver.Snapshot) -> dict[str, Any]:
        """Iteration, progress and status line for ``snap`` (updates the iteration-rate estimate)."""
        now = time.perf_counter()
        mark_time, mark_iter = self._rate_mark
        if now - mark_time > 0.5:
            self._rate = (snap.iteration - mark_iter) / (now - mark_time)
            self._rate_mark = (now, snap.iteration)
        opt = problem.optimizer
        prefix = "Paused at " if snap.status == "paused" else ""
        return {"iteration": snap.iteration,
                "progress": min(100.0, 100.0 * max(snap.iteration / opt.max_iter, snap.elapsed / opt.time_limit)),
                "status": prefix + status_line(snap, self._rate, self._w2, problem)}

    def _finish(self, snap: solver.Snapshot, w2: float | None) -> None:
        depths = {}
        if self.problem is not None and self.problem.obstacles is not None and snap.states is not None:
            depths = obstacle_depths(self.problem, snap.states)
        self.summary = {"status": snap.status, "iteration": snap.iteration, "elapsed": snap.elapsed,
                        "energies": snap.energies, "best_objective": snap.best_objective,
                        **({"w2sq_terminal": w2} if w2 is not None else {}), **depths}
        self.final_status = snap.status
        self.progress = 100.0
        self.status = f"Finished ({snap.status}): " + status_line(snap, self._rate, w2, self.problem)
        if depths:
            self.status += (f" · deepest inside an obstacle: {depths['max_obstacle_depth']:.2g} at the time "
                            f"points, {depths['max_obstacle_depth_segments']:.2g} along the paths")
        self.state = "finished"
        if self.store is not None and self.problem is not None and snap.states is not None:
            threading.Thread(target=self._keep, args=(solver.Result(self.problem, snap),), daemon=True,
                             name="mfc-store-run").start()

    def _keep(self, result: solver.Result) -> None:
        """Write a finished or stopped solve to the run store (summary numbers include an exact OT
        diagnostic, so this runs off the event loop)."""
        try:
            self.store.put(record_from_result(result, origin="app"))
            self.stored += 1
        except Exception as err:  # a full disk must not take the session down; the Runs tab shows it
            self.store_error = f"Could not keep the run in the store: {type(err).__name__}: {err}"

    # ----------------------------------------------------------------------------- landscape
    def _landscape_loop(self, control: solver.SolveControl) -> None:
        """Recompute the landscape every ``landscape_interval`` s for the problem being solved (which a
        live change replaces)."""
        adopt_threads()  # the process's kernel threads (one in the app), not numba's default of all cores
        objective = None
        next_time = time.perf_counter() + 1.0
        # seconds of grid evaluations for the next slice
        budget = min(self.landscape_budget, LANDSCAPE_CPU_SHARE * LANDSCAPE_PERIOD)
        while not control.stopped and self.running:
            if time.perf_counter() < next_time or control.paused or CORES.busy:
                time.sleep(0.1)
                continue
            problem = self.problem
            if problem is None:
                break
            if objective is None or objective.problem is not problem:
                objective = solver.Objective(problem)
            started = time.perf_counter()
            try:
                result = self.compute_landscape(objective, budget)
            except Exception as err:  # never kill the session for a diagnostic plot
                result = {"error": f"{type(err).__name__}: {err}"}
            if result is not None:
                with self._lock:
                    self._landscape_result = result
            took = time.perf_counter() - started
            if result is not None and "error" not in result:
                budget = next_budget(budget, took, self.landscape_budget)
            # at most LANDSCAPE_CPU_SHARE of a core: the solve and the page come first (large N)
            next_time = time.perf_counter() + max(live_period(self.landscape_interval),
                                                  took * (1 / LANDSCAPE_CPU_SHARE - 1))

    def compute_landscape(self, objective: solver.Objective, budget: float) -> dict[str, Any] | None:
        """``solver.landscape.path_landscape`` around the latest iterate, through the recent path, its
        grid's evaluations sized to ``budget`` seconds; None before two iterates."""
        shape = (objective.problem.N, objective.problem.M, objective.problem.source.shape[1])
        with self._lock:  # (a live change may have just replaced the problem: keep iterates that fit)
            path = [p for p in self.path if p.size == math.prod(shape)]
        if len(path) < 2:
            return None
        iterates = [objective.variables_from_positions(torch.as_tensor(p.reshape(shape))) for p in path]
        return path_landscape(objective, iterates, budget=budget)
