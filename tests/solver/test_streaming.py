"""The snapshot iterator: reports, pause / resume / stop from another thread, resuming, divergence."""
import pickle
import threading
import time

import numpy as np
import pytest

from solver import Snapshot, SolveControl, problem_from_dict, solve, solve_iter
from solver.history import ThinnedHistory
from solver.init import forget_quantizations


def small_problem(**changes):
    rng = np.random.default_rng(0)
    spec = {"source": {"points": rng.uniform(0, 1, (30, 2)).tolist()},
            "target": {"kind": "particles", "points": rng.normal(2, 0.3, (30, 2)).tolist()},
            "eps": 0.01, "M": 4}
    spec.update(changes)
    return problem_from_dict(spec)


def test_snapshots_carry_trajectories_every_k_and_at_the_end():
    snaps = list(solve_iter(small_problem(optimizer={"method": "gd", "lr": 1e-3, "max_iter": 25}), every=5))
    assert [s.iteration for s in snaps[:-1]] == list(range(1, 25))
    with_states = [s.iteration for s in snaps[:-1] if s.states is not None]
    assert with_states == [1, 5, 10, 15, 20]
    final = snaps[-1]
    assert final.status == "max_iter" and final.states.shape == (30, 4, 2)
    assert final.objective == min(s.objective for s in snaps)  # the best iterate is kept


def test_pause_resume_and_stop_from_another_thread():
    """Driven by events, not sleeps: pause after three reports; the paused report is followed, after
    resume, by the same iterate and then the next iteration (nothing ran while paused); stop ends the
    solve with the best iterate and its trajectories."""
    control = SolveControl()
    problem = small_problem(optimizer={"method": "gd", "lr": 1e-4, "max_iter": 10**7, "time_limit": 60})
    seen: list[Snapshot] = []
    started, paused, resumed = threading.Event(), threading.Event(), threading.Event()

    def run():
        for s in solve_iter(problem, control=control):
            seen.append(s)
            if len(seen) == 3:
                started.set()
            if s.status == "paused":
                paused.set()
            elif paused.is_set() and s.iteration > seen_paused_iteration():
                resumed.set()

    def seen_paused_iteration() -> int:
        return next(x.iteration for x in seen if x.status == "paused")

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(30)
    control.pause()
    assert paused.wait(30)
    k = seen_paused_iteration()
    at_pause = len(seen)
    assert seen[-1].status == "paused" and seen[-1].iteration == k  # the worker now waits in the pause
    control.resume()
    assert resumed.wait(30)
    after = seen[at_pause:]
    assert after[0].iteration == k and after[1].iteration == k + 1  # resumed where it paused
    control.stop()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert seen[-1].status == "stopped" and seen[-1].states is not None


def test_resume_continues_from_a_snapshot():
    problem = small_problem(optimizer={"method": "gd", "lr": 1e-3, "max_iter": 40})
    start = list(solve_iter(problem.with_changes(optimizer={"method": "gd", "lr": 1e-3, "max_iter": 1})))[-1]
    first = list(solve_iter(problem.with_changes(optimizer={"method": "gd", "lr": 1e-3, "max_iter": 20})))[-1]
    resumed = list(solve_iter(problem, resume=first))
    assert resumed[0].iteration == first.iteration + 1 and resumed[-1].iteration == 40
    # the first report after resuming is the snapshot's own iterate (gd reports before stepping)
    assert resumed[0].objective == pytest.approx(first.objective, rel=1e-12)
    assert resumed[-1].objective < first.objective < start.objective
    assert resumed[-1].elapsed >= first.elapsed  # the clock continues too


def test_a_diverging_solve_keeps_its_last_good_iterate():
    problem = small_problem(optimizer={"method": "gd", "lr": 1e6, "max_iter": 200})
    final = list(solve_iter(problem))[-1]
    assert final.status == "diverged"  # it read "converged" (no new lowest for 5 steps) before
    assert np.isfinite(final.objective) and np.isfinite(final.states).all()


def test_runs_are_pure_and_picklable():
    problem = small_problem()
    a, b = solve(problem), solve(pickle.loads(pickle.dumps(problem)))
    assert np.array_equal(a.states, b.states)  # a solve is a function of its problem (and seed)
    again = pickle.loads(pickle.dumps(a))
    assert again.final.objective == a.final.objective


def test_a_long_start_preparation_keeps_reporting_and_honours_a_stop():
    """The robust method's blob start onto a continuum target needs seconds of quantization at N = 300
    (4.7 s here, after the OT start's solve of 1.5 s); meanwhile it repeats its last report (phase
    "blob-start: preparing") every 0.2 s, so a stop (and pause, and the time limit, checked at the
    same reports) still acts, and the preparation is cancelled when the solve ends. Stopped half a
    second into the preparation, whenever that begins: a time limit would race the OT start's speed."""
    rng = np.random.default_rng(1)
    problem = problem_from_dict({
        "source": {"points": rng.uniform(-1, 1, (300, 2)).tolist()},
        "target": {"kind": "gaussian", "mean": [3.0, 0.0], "cov": [[0.1, 0.0], [0.0, 0.1]]},
        "eps": 0.01, "M": 6, "optimizer": {"time_limit": 60}})
    forget_quantizations()  # made afresh (an earlier test may have made the same ones)
    control = SolveControl()
    snaps, stop_at, stopped_at = [], None, None
    for snap in solve_iter(problem, control=control, every=1):
        snaps.append(snap)
        now = time.perf_counter()
        if snap.phase == "blob-start: preparing" and stop_at is None:
            stop_at = now + 0.5
        if stop_at is not None and now >= stop_at and stopped_at is None:
            control.stop()
            stopped_at = now
    ended = time.perf_counter()
    preparing = [s for s in snaps if s.phase == "blob-start: preparing"]
    assert preparing, "the solve never reported the blob start's preparation"
    gaps = np.diff([s.elapsed for s in preparing])
    # heartbeat 0.2 s; 1 s leaves room for a slow step on a loaded machine
    assert len(gaps) and gaps.max() < 1.0, f"{gaps.max():.2f} s without a report"
    assert snaps[-1].status == "stopped"
    # cancelled, the run ends within a heartbeat of the stop (the quantization checks between evaluations)
    assert ended - stopped_at < 1.0, f"the run went on {ended - stopped_at:.1f} s after the stop"
    assert not any(t.name == "mfc-prepare-start" for t in threading.enumerate())


def test_a_stop_during_the_ot_start_quantization_ends_the_solve_at_once():
    """init "ot" on a continuum target quantizes it first (about 10 s at N = 300 here); a stop
    requested meanwhile cancels the quantization and the solve ends with status "stopped"."""
    rng = np.random.default_rng(2)
    problem = problem_from_dict({
        "source": {"points": rng.uniform(-1, 1, (300, 2)).tolist()},
        "target": {"kind": "gaussian", "mean": [3.0, 0.0], "cov": [[0.1, 0.0], [0.0, 0.1]]},
        "eps": 0.01, "M": 6, "init": "ot"})
    control = SolveControl()
    threading.Timer(0.5, control.stop).start()
    started = time.perf_counter()
    snaps = list(solve_iter(problem, control=control))
    took = time.perf_counter() - started
    assert snaps[-1].status == "stopped" and snaps[-1].states.shape == (300, 6, 2)
    assert took < 2.5, f"the stop took {took - 0.5:.1f} s to act"  # one objective evaluation is ms


def test_thinned_history_stays_bounded_and_evenly_spread():
    """100,000 reports (the paper's gd in half a minute) are kept as at most 2 x 500 + 1 rows: the
    first, the latest, and an even spread between them."""
    history = ThinnedHistory(limit=500)
    n = 100_000
    history.extend((k, 1.0 / (k + 1)) for k in range(n))
    rows = np.array(history.rows())
    assert len(history) == n and 500 <= len(rows) <= 2 * 500 + 1
    its = rows[:, 0]
    assert its[0] == 0 and its[-1] == n - 1
    steps = np.diff(its[:-1])
    assert (steps == steps[0]).all()  # one stride (a power of two) throughout
    assert np.allclose(rows[:, 1], 1.0 / (its + 1))
    history.clear()
    assert history.rows() == []


def test_a_long_solve_keeps_a_bounded_history():
    """The CLI's ``solve`` keeps every report of a short run and a thinned record of a long one."""
    from solver.run import HISTORY_LIMIT

    short = solve(small_problem(optimizer={"method": "gd", "lr": 1e-3, "max_iter": 50}))
    assert [h["iteration"] for h in short.history] == list(range(1, 50)) + [50]
    n = 3 * HISTORY_LIMIT
    long = solve(small_problem(optimizer={"method": "gd", "lr": 1e-4, "max_iter": n, "time_limit": 120}))
    assert len(long.history) <= 2 * HISTORY_LIMIT + 1
    assert long.history[0]["iteration"] == 1 and long.history[-1]["iteration"] == n


def test_a_finished_solve_returns_the_best_iterate_its_method_stands_by(monkeypatch):
    """A method's provisional steps (the robust method's steps within a local solve, e.g. on the obstacle
    continuation's wide band, whose exact objective can dip below where the solves end) are not what a
    "converged" status speaks of: a run that ends by the method's own rule returns its best
    non-provisional iterate; a run cut short (here by max_iter) keeps the lowest iterate of any kind."""
    from solver.registry import OPTIMIZERS
    from solver.steps import Step

    def scripted(objective, x0, spec):
        script = [(3.0, True, None), (1.0, True, None), (2.0, False, None), (2.5, True, "converged")]
        for it, (value, provisional, status) in enumerate(script, 1):
            yield Step(x0 + it, {"objective": value}, 0.0, 0.0, it, it, "scripted", status, provisional)

    monkeypatch.setitem(OPTIMIZERS._items, "scripted", scripted)
    problem = small_problem(optimizer={"max_iter": 100})
    final = list(solve_iter(problem, method="scripted"))[-1]
    assert (final.status, final.objective, final.iteration) == ("converged", 2.0, 4)
    cut = list(solve_iter(small_problem(optimizer={"max_iter": 2}), method="scripted"))[-1]
    assert (cut.status, cut.objective) == ("max_iter", 1.0)
    # the states are those of the steps chosen: x0 + 3 and x0 + 2 (positions after the source, one apart)
    assert np.allclose(final.states[:, 1:] - cut.states[:, 1:], 1.0)
