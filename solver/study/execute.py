"""Running a sweep on dask.distributed and storing every run.

``run_sweep(sweep, store)`` records the sweep in the store, finds the runs the store does not hold
finished (``RunStore.missing``), submits one task per run (``execute``) to a dask cluster (a
``LocalCluster`` of single-threaded worker processes by default, or an existing scheduler), and
stores each result as it arrives, in this process: workers need no access to the store's folder, and
a run is stored only once it is complete. A worker that dies mid-run has its task rerun elsewhere by
the scheduler; a run that raises comes back as an ``error`` record with its one-line message, and the
sweep goes on.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from tqdm import tqdm

from ..allocator import keep_freed_memory
from ..diagnostics import summary
from ..errors import ProblemError
from ..problem import problem_from_dict
from ..run import Result, solve
from ..threads import use_threads
from .store import RunRecord, RunStore
from .sweep import Sweep, run_key


@dataclass
class SweepOutcome:
    """What a sweep run did: runs in the sweep, already stored (skipped), computed, and failed."""

    total: int
    skipped: int
    computed: int
    errors: int


def record_from_result(result: Result, origin: str, wall: float | None = None,
                       numbers: dict | None = None) -> RunRecord:
    """The store's record of a finished (or stopped) solve; ``numbers``: its ``summary`` when the caller
    already has it (it includes an exact OT diagnostic, not worth computing twice)."""
    return RunRecord(run_key(result.problem), result.final.status, result.problem.to_spec(),
                     summary(result) if numbers is None else numbers, states=result.states, origin=origin, wall=wall)


def one_line(err: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def execute(spec: dict[str, Any], key: str, origin: str = "sweep") -> RunRecord:
    """Solve the problem ``spec`` (on a dask worker, or here) on one thread and return its record; a
    failure becomes an ``error`` record under ``key`` (the run's key, computed by the client) with a
    one-line message (a task never raises)."""
    clock = time.perf_counter()
    try:
        problem = problem_from_dict(spec)
        keep_freed_memory()
        use_threads(1)  # one run per worker process and core
        return record_from_result(solve(problem), origin, time.perf_counter() - clock)
    except Exception as err:  # stored with the run: one failing run must not stop a sweep
        return RunRecord(key, "error", spec, {}, error=one_line(err), origin=origin,
                         wall=time.perf_counter() - clock)


def start_client(workers: int = 2, scheduler: str | None = None) -> Any:
    """A dask client: of an existing scheduler (``tcp://HOST:PORT``), else of a new LocalCluster with
    ``workers`` single-threaded worker processes (no dashboard)."""
    from dask.distributed import Client, LocalCluster  # deliberate lazy import: only sweeps need dask

    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as err:  # ValueError: a malformed address ("host", no port)
            raise ProblemError("--scheduler", f"cannot reach {scheduler} ({one_line(err)}); start it with "
                                              "`dask scheduler` and check the address") from None
    if workers < 1:
        raise ProblemError("--workers", f"must be at least 1 (got {workers})")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


def run_sweep(sweep: Sweep, store: RunStore, client: Any = None, workers: int = 2, scheduler: str | None = None,
              progress: bool | None = None, on_record: Callable[[RunRecord], None] | None = None) -> SweepOutcome:
    """Compute the sweep's missing runs on ``client`` (or a new one, see ``start_client``) and store
    them. ``progress``: a tqdm bar (default: when stderr is a terminal)."""
    from dask.distributed import as_completed  # deliberate lazy import

    store.add_sweep(sweep.name, sweep.spec, [(run.key, run.params) for run in sweep.runs])
    missing = set(store.missing([run.key for run in sweep.runs]))
    todo = [run for run in sweep.runs if run.key in missing]
    outcome = SweepOutcome(len(sweep.runs), len(sweep.runs) - len(todo), 0, 0)
    if not todo:
        return outcome
    own = client is None
    client = start_client(workers, scheduler) if own else client
    bar = tqdm(total=len(todo), unit="run", desc=sweep.name[:30],
               disable=not sys.stderr.isatty() if progress is None else not progress)
    try:
        futures = {client.submit(execute, run.problem.to_spec(), run.key, pure=False): run for run in todo}
        for future in as_completed(futures):
            run = futures[future]
            try:
                record = future.result()
            except Exception as err:  # e.g. KilledWorker: the run killed every worker that tried it
                record = RunRecord(run.key, "error", run.problem.to_spec(), {}, error=one_line(err), origin="sweep")
            store.put(record)
            outcome.computed += 1
            outcome.errors += record.status == "error"
            if on_record is not None:
                on_record(record)
            bar.update()
            bar.set_postfix(errors=outcome.errors, refresh=False)
    finally:
        bar.close()
        if own:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    return outcome
