"""Command line: ``python -m solver solve PROBLEM.json --out DIR``, ``reproduce FIG``, ``distributed CASE.json``,
``sweep SWEEP.json --store DIR`` and ``runs list | show | compare | export | report`` (``solver.study``).

Bad input exits with code 2 and one line on stderr naming the field and the fix (no traceback). The
problem is validated before torch is loaded (``solver.lazy``), so such errors come at once; for the
same reason the figure pipeline (matplotlib) and the distributed lab (scipy) are imported only by
the commands that use them.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path

from tqdm import tqdm

from .allocator import keep_freed_memory
from .budget import DEFAULT_BUDGET, check
from .diagnostics import summary
from .errors import SolveError
from .io import output_folder, trajectories_csv, write_atomic
from .problem import ProblemError, load_problem, problem_warnings
from .registry import OPTIMIZERS
from .run import SolveControl, solve, threads_for
from .threads import use_threads
from .study import runs_cli
from .study.execute import record_from_result, run_sweep
from .study.store import RunStore
from .study.sweep import load_sweep

#: The run store used when ``--store`` is not given.
DEFAULT_STORE = os.environ.get("MFC_STORE", "mfc-runs")


def _solve(args: argparse.Namespace) -> int:
    problem = load_problem(args.problem)
    overrides = {k: v for k, v in (("method", args.method), ("max_iter", args.max_iter),
                                   ("time_limit", args.time_limit)) if v is not None}  # 0 is refused, not ignored
    if overrides:
        problem = problem.with_changes(optimizer={**problem.spec.get("optimizer", {}), **overrides})
    out = output_folder(args.out)
    if not args.memory > 0 or not math.isfinite(args.memory):
        raise ProblemError("--memory", f"must be a positive number of GB (got {args.memory:g}); e.g. --memory 8")
    check(problem, int(args.memory * 2**30))  # before anything large is allocated
    store = RunStore(args.store) if args.store else None  # a bad store path is refused before the solve
    for line in problem_warnings(problem):
        print(f"warning: {line}", file=sys.stderr)
    keep_freed_memory()
    use_threads(threads_for(problem, os.cpu_count() or 1))
    bar = tqdm(total=problem.optimizer.max_iter, unit="it", disable=not sys.stderr.isatty() or args.quiet,
               desc=problem.name[:40])

    def progress(snap) -> None:
        bar.n = snap.iteration
        bar.set_postfix(objective=f"{snap.objective:.6g}", phase=snap.phase, refresh=False)
        bar.refresh()

    control, received = SolveControl(), []

    def on_signal(signum: int, _frame: object) -> None:
        """Ctrl-C or SIGTERM: end the solve at its next report and keep its best iterate (a second
        signal gives up at once)."""
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        control.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = solve(problem, control=control, callback=progress, memory=int(args.memory * 2**30))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    bar.close()
    write_atomic(out / "problem.json", json.dumps(problem.to_spec(), indent=1) + "\n")
    write_atomic(out / "trajectories.csv", trajectories_csv(problem, result.states))
    info = summary(result)
    write_atomic(out / "summary.json", json.dumps(info, indent=1) + "\n")
    if store is not None:
        store.put(record_from_result(result, origin="cli", numbers=info))
    if not args.quiet:
        print(f"{info['status']}: objective {info['objective']:.8g} (kinetic {info['kinetic']:.6g}, "
              f"nonlocal {info['nonlocal']:.6g}, potential {info['potential']:.3g}) after "
              f"{info['iterations']} iterations, {info['seconds']:.1f} s -> {out}")
    if received:
        print(f"stopped by {signal.Signals(received[0]).name}: the best iterate so far is in {out}", file=sys.stderr)
        return 128 + received[0]
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce import FIGURES, reproduce  # deliberate lazy import: matplotlib only for figures

    if args.figure not in FIGURES:
        raise ProblemError("FIG", f"unknown figure {args.figure!r}; use one of {', '.join(FIGURES)}")
    reproduce(args.figure, Path(args.out))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.sweep)  # every run validated before anything starts
    store = RunStore(args.store)
    outcome = run_sweep(sweep, store, workers=args.workers, scheduler=args.scheduler,
                        progress=False if args.quiet else None)
    print(f"sweep {sweep.name}: {outcome.total} runs, {outcome.skipped} already stored, {outcome.computed} "
          f"computed, {outcome.errors} errors -> {store.folder}")
    return 1 if outcome.errors else 0


def _runs(args: argparse.Namespace) -> int:
    return runs_cli.main(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "distributed":
        from .distributed.cli import main as distributed_main  # deliberate lazy import (scipy)

        return distributed_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m solver", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve a problem file, write trajectories.csv and summary.json")
    s.add_argument("problem", help="problem JSON file (format: README, 'Problem files')")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--method", help=f"override optimizer.method ({', '.join(OPTIMIZERS.kinds())})")
    s.add_argument("--max-iter", type=int, help="override optimizer.max_iter")
    s.add_argument("--time-limit", type=float, help="override optimizer.time_limit (seconds)")
    s.add_argument("--quiet", action="store_true", help="no progress bar or final line")
    s.add_argument("--memory", type=float, default=DEFAULT_BUDGET / 2**30, metavar="GB",
                   help=f"memory budget; larger problems are refused at once (default {DEFAULT_BUDGET / 2**30:g})")
    s.add_argument("--store", metavar="DIR", help="also keep the run in this run store (python -m solver runs)")
    s.set_defaults(run=_solve)
    r = sub.add_parser("reproduce", help="regenerate a paper figure (PNG) and its numbers")
    r.add_argument("figure", help="fig1 .. fig9")
    r.add_argument("--out", default="out", help="output directory (default: out)")
    r.set_defaults(run=_reproduce)
    sub.add_parser("distributed", help="values and bounds of the distributed-control lab (CASE.json)")
    w = sub.add_parser("sweep", help="solve every problem of a sweep file on dask and keep them in a run store")
    w.add_argument("sweep", help="sweep JSON file (format: README, 'Sweeps')")
    w.add_argument("--store", default=DEFAULT_STORE, metavar="DIR", help=f"run store folder (default {DEFAULT_STORE})")
    w.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes of the local dask cluster (default: one per core)")
    w.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="use this dask scheduler instead of a local cluster")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    w.set_defaults(run=_sweep)
    runs_cli.add_parser(sub, DEFAULT_STORE).set_defaults(run=_runs)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ProblemError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SolveError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
