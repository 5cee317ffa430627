"""``CoreShare``: at most ``cores`` solver threads compute at once, in arrival order, taking turns, and
a waiting thread can be called off; two sessions' solves both finish through it."""
from __future__ import annotations

import threading
import time

import pytest

import solver
from explorer.cores import LIVE_UPDATES_PER_SECOND, CoreShare, live_period
from explorer.runner import SolveRunner


def test_at_most_cores_threads_hold_a_core_and_they_take_turns():
    share = CoreShare(cores=2, slice_s=0.02)
    holding, most, pieces = [0], [0], {k: 0 for k in range(5)}
    lock = threading.Lock()

    def work(k: int) -> None:
        share.acquire()
        try:
            end = time.perf_counter() + 0.6
            while time.perf_counter() < end:
                with lock:
                    holding[0] += 1
                    most[0] = max(most[0], holding[0])
                time.sleep(0.005)  # a piece of work
                pieces[k] += 1
                with lock:
                    holding[0] -= 1
                share.turn()
        finally:
            share.release()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert most[0] == 2  # never more than two at once, and both cores used
    # turns of 20 ms over 0.6 s each: every thread got work done while the others waited (without turns
    # the first two would run to the end before the rest started; all five still progress here)
    assert min(pieces.values()) > 5


def test_a_waiting_thread_is_called_off():
    share = CoreShare(cores=1)
    share.acquire()
    stop = threading.Event()
    got = []
    waiter = threading.Thread(target=lambda: got.append(share.acquire(stop.is_set)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # waits for the held core
    stop.set()
    waiter.join(2)
    assert got == [False] and not share.busy
    share.release()
    assert share.acquire()  # the core is free again
    share.release()


def test_two_sessions_solving_at_once_both_finish(monkeypatch):
    """Two runners on a one-core share (10 ms turns): both solves end, each with exactly the objective
    of the same solve run alone (a deterministic method with an iteration budget)."""
    import explorer.runner as runner_module
    monkeypatch.setattr(runner_module, "CORES", CoreShare(cores=1, slice_s=0.01))
    spec = {"source": {"points": [[0.0, 0.0], [0.2, 0.1]]}, "target": {"kind": "particles",
                                                                         "points": [[1.0, 0.5], [1.2, 0.3]]},
            "eps": 0.05, "M": 6, "optimizer": {"method": "gd", "max_iter": 400}}
    runners = [SolveRunner(landscape_interval=60.0) for _ in range(2)]
    for r in runners:
        r.start(solver.problem_from_dict(spec))
    for r in runners:
        r.wait(30)
    reference = solver.solve(solver.problem_from_dict(spec)).final
    for r in runners:
        assert r.final_status == "max_iter"
        # the same iterations as a solve alone: the share changes when a solve runs, not what it computes
        assert r.summary["energies"]["objective"] == reference.objective


def test_solving_counts_holders_and_waiters_and_the_live_budget_splits_among_them():
    share = CoreShare(cores=1)
    assert share.solving == 0
    share.acquire()
    stop = threading.Event()
    waiter = threading.Thread(target=lambda: share.acquire(stop.is_set))
    waiter.start()
    time.sleep(0.3)
    assert share.solving == 2  # one computing, one waiting for the core: two sessions solving
    stop.set()
    waiter.join(2)
    share.release()
    assert share.solving == 0
    # a session alone (or two) keeps its own period; k sessions together stay within the budget:
    # k updates every period, i.e. k / period = LIVE_UPDATES_PER_SECOND a second (exactly, by design)
    assert live_period(0.1, solving=1) == 0.1
    k = 8
    assert k / live_period(0.1, solving=k) == pytest.approx(LIVE_UPDATES_PER_SECOND, rel=1e-12)
    assert live_period(1.0, solving=k) == pytest.approx(10 * live_period(0.1, solving=k), rel=1e-12)
