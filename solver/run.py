"""Running a solve as a stream of snapshots.

``solve_iter(problem)`` yields ``Snapshot``s (iteration, energies, step size, gradient norm, elapsed
time, and the trajectories every ``every`` iterations and on the last one). It honours a
``SolveControl`` (pause / resume / stop from another thread), the problem's iteration and time limits,
and can resume from a snapshot. The last snapshot carries the best iterate seen (a diverging solve
keeps its last good iterate; a solve that ended by its method's rule, the best of the iterates the
method stands by: not ``Step.provisional``) and a ``status``. ``solve(problem)`` runs it to the end and returns a
``Result``. The CLI, the explorer app and the tests all call these two functions.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .budget import DEFAULT_BUDGET, check
from .errors import SolveError
from .history import ThinnedHistory
from .init import Cancelled, PaperStart, blob_quantized, initial_variables, target_size
from .kernels import load_dense_hessian
from .lazy import LazyModule, load, ot, torch, torch_dynamo
from .objective import Objective
from .steps import Step
from .problem import Problem
from .registry import OPTIMIZERS
from .threads import adopt_threads


class SolveControl:
    """Thread-safe pause / resume / stop switches for a running ``solve_iter``."""

    def __init__(self) -> None:
        self._run = threading.Event()
        self._run.set()
        self._stop = threading.Event()

    def pause(self) -> None:
        self._run.clear()

    def resume(self) -> None:
        self._run.set()

    def stop(self) -> None:
        self._stop.set()
        self._run.set()

    @property
    def paused(self) -> bool:
        return not self._run.is_set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def stop_event(self) -> threading.Event:
        """Set once ``stop()`` is called (long preparations poll it to give up early)."""
        return self._stop

    def wait_while_paused(self) -> None:
        self._run.wait()


@dataclass
class Snapshot:
    """State of a solve after ``iteration`` iterations. ``states`` is (N, M, D) or None between
    trajectory reports; ``status`` is None until the final snapshot."""

    iteration: int
    evaluations: int
    energies: dict[str, float]
    step_size: float
    grad_norm: float
    elapsed: float
    phase: str
    states: np.ndarray | None = None
    status: str | None = None
    best_objective: float = math.inf

    @property
    def objective(self) -> float:
        return self.energies["objective"]


@dataclass
class Result:
    """Outcome of ``solve``: the final snapshot (best iterate) and the history of its reports
    (iteration, elapsed, energies, gradient norm, step size, phase), every report up to
    ``2 * HISTORY_LIMIT`` of them, then thinned evenly (``ThinnedHistory``)."""

    problem: Problem
    final: Snapshot
    history: list[dict] = field(default_factory=list)

    @property
    def states(self) -> np.ndarray:
        return self.final.states

    @property
    def positions(self) -> np.ndarray:
        return self.final.states[..., : self.problem.source.shape[1]]


def _start_variables(objective: Objective, problem: Problem, resume: Snapshot | None,
                     control: SolveControl | None) -> torch.Tensor:
    """The resumed snapshot's trajectories, else the problem's own start. A stop requested while
    the "ot" start quantizes a continuum target (seconds at N ~ 500) ends that at once; the paper's
    start (56)-(57) stands in, and the solve stops after its first report."""
    if resume is not None and resume.states is not None:
        pos = torch.as_tensor(resume.states[..., : problem.source.shape[1]], dtype=torch.float64)
        return objective.variables_from_positions(pos)
    try:
        return initial_variables(objective, cancel=control.stop_event if control else None)
    except Cancelled:
        return initial_variables(objective, PaperStart())


#: A solve's ``Result.history`` keeps every report up to twice this many, then thins them evenly.
HISTORY_LIMIT = 5000

#: Kernel sums smaller than this (N x K pairs) are best run on one thread: torch's thread pool costs
#: more than it saves on them, and its spinning threads slow down when another process holds a core.
SINGLE_THREAD_PAIRS = 1_000_000


def threads_for(problem: Problem, available: int) -> int:
    """How many threads suit ``problem``: one for small kernel sums, else ``available`` (for
    ``use_threads``)."""
    return 1 if problem.N * max(problem.N, target_size(problem)) < SINGLE_THREAD_PAIRS else available


#: Methods stepping a torch.optim optimizer.
TORCH_OPTIM_METHODS = ("gd", "adam")


def libraries(problem: Problem, method: str) -> tuple[LazyModule, ...]:
    """The heavy libraries a solve of ``problem`` by ``method`` loads: torch and POT; torch._dynamo too
    (torch.optim's first optimizer imports it, ~1.3 s) where a torch optimizer runs: blob quantizations
    of a continuum target (``blob_quantized``) and the methods in ``TORCH_OPTIM_METHODS``."""
    optim = blob_quantized(problem) or method in TORCH_OPTIM_METHODS
    return (torch, ot, torch_dynamo) if optim else (torch, ot)


#: The fields that scale each term of eq. (50), named when a term is not finite at the start.
TERM_FIELDS = {"kinetic": "p or the coordinates", "potential": "the potential's weights or heights",
               "obstacle": "obstacle_weight", "interaction": "the interaction's strengths",
               "nonlocal": "eps or delta"}


def overflowing_terms(objective: Objective, variables: "torch.Tensor") -> str | None:
    """One line naming the terms of eq. (50) that are not finite at ``variables`` and the fields to lower
    (a valid problem beyond float64: |u|^p with p = 1e6, a potential 1e308 high), or None if all are."""
    with torch.no_grad():
        pos = objective.positions(variables)
        terms = {"kinetic": objective.kinetic(pos, variables), "potential": objective.potential_field(pos),
                 "obstacle": objective.obstacle(pos), "interaction": objective.interaction(pos),
                 "nonlocal": objective.nonlocal_energy(objective.problem.dynamics.terminal(pos, objective.h))}
    bad = {name: float(value) for name, value in terms.items() if not math.isfinite(float(value))}
    if not bad:
        return None
    values = ", ".join(f"{name} = {value:g}" for name, value in bad.items())
    return f"the start's energies are beyond float64 ({values}): lower {'; '.join(TERM_FIELDS[n] for n in bad)}"


def solve_iter(problem: Problem, control: SolveControl | None = None, every: int = 10,
               resume: Snapshot | None = None, method: str | None = None,
               memory: int = DEFAULT_BUDGET) -> Iterator[Snapshot]:
    """Minimize eq. (50) for ``problem``, yielding a ``Snapshot`` per optimizer report.

    ``every``: attach trajectories to every ``every``-th snapshot (and to the first and the last).
    ``resume``: continue from a snapshot with trajectories (iteration count and clock continue).
    ``method``: override ``problem.optimizer.method`` (a name in ``OPTIMIZERS``).
    ``memory``: the budget in bytes; a larger problem raises ``ProblemError`` before any allocation.
    """
    check(problem, memory)
    spec = problem.optimizer
    load(*libraries(problem, method or spec.method))  # library loading (seconds on a first solve) is not solver time
    adopt_threads()  # in whichever thread the solve runs
    load_dense_hessian()  # nor loading a compiled kernel
    objective = Objective(problem)
    x0 = _start_variables(objective, problem, resume, control)
    it0 = resume.iteration if resume else 0
    ev0 = resume.evaluations if resume else 0
    clock0 = time.perf_counter() - (resume.elapsed if resume else 0.0)
    runner = OPTIMIZERS[method or spec.method](objective, x0, spec)
    best: Step | None = None  # the lowest iterate seen
    answer: Step | None = None  # the lowest iterate that is not ``provisional``
    last_good: Step | None = None
    count = 0

    def snapshot(step: Step, status: str | None, with_states: bool, counts: Step | None = None) -> Snapshot:
        """The iterate of ``step``; iteration and evaluation counts of ``counts`` (default: the same)."""
        states = objective.states(step.variables).detach().numpy() if with_states else None
        counts = counts or step
        return Snapshot(it0 + counts.iterations, ev0 + counts.evaluations, step.energies, step.step_size,
                        step.grad_norm, time.perf_counter() - clock0, step.phase, states, status,
                        best.energies["objective"] if best else math.inf)

    status = "max_iter"
    try:
        for step in runner:
            count += 1
            finite = all(math.isfinite(v) for v in step.energies.values())
            if finite:
                last_good = step
                if best is None or step.energies["objective"] <= best.energies["objective"]:
                    best = step
                if not step.provisional and (answer is None
                                             or step.energies["objective"] <= answer.energies["objective"]):
                    answer = step
            if step.status == "diverged" or not finite:
                status = "diverged"
                break
            if step.status:
                status = step.status
                break
            if it0 + step.iterations >= spec.max_iter:
                status = "max_iter"
                break
            if time.perf_counter() - clock0 >= spec.time_limit:
                status = "time_limit"
                break
            if control is not None:
                if control.paused:
                    yield snapshot(step, "paused", True)
                    control.wait_while_paused()
                if control.stopped:
                    status = "stopped"
                    break
            yield snapshot(step, None, count == 1 or count % max(every, 1) == 0)
    finally:  # also when the caller closes this generator early (a live change re-targets the solve)
        runner.close()
    # a method that ended by its own rule stands by its answer: a lower provisional iterate (one it
    # moved on from, or a solve on another objective) is not what its status speaks of; a run cut short
    # (limits, stop, divergence) keeps the lowest iterate of any kind
    final = (answer if status not in ("max_iter", "time_limit", "stopped", "diverged") else None) or best or last_good
    if final is None:
        raise SolveError(overflowing_terms(objective, x0)
                         or "the optimizer produced no finite iterate; check eps, delta and the inputs")
    yield snapshot(final, status, True, counts=step)


def solve(problem: Problem, control: SolveControl | None = None, every: int = 10,
          callback: Callable[[Snapshot], None] | None = None, method: str | None = None,
          memory: int = DEFAULT_BUDGET) -> Result:
    """Run ``solve_iter`` to the end; ``callback`` sees every snapshot (e.g. a progress bar)."""
    history: ThinnedHistory[dict] = ThinnedHistory(HISTORY_LIMIT)
    snap = None
    for snap in solve_iter(problem, control, every, method=method, memory=memory):
        history.append({"iteration": snap.iteration, "elapsed": snap.elapsed, **snap.energies,
                        "grad_norm": snap.grad_norm, "step_size": snap.step_size, "phase": snap.phase})
        if callback is not None:
            callback(snap)
    return Result(problem, snap, history.rows())
