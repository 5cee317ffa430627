"""Fair sharing of the machine among the sessions' solver threads.

Every session solves in its own thread of the server process, whose event loop also serves every tab,
and on a small machine the browser showing the tabs runs alongside. With eight tabs solving, eight
solver threads kept both cores busy and a widget change waited seconds for the server and the page
(``explorer.bench_sessions``). ``CoreShare`` lets at most ``cores`` solver threads compute at once
(one less than the machine has, at least one: a core stays for the event loop and the pages); the
others wait on a condition, holding no lock the event loop needs, in arrival order, and a running
thread hands its core on after ``slice_s`` seconds when another waits. One session alone never waits;
eight progress together, each at its share. The landscape threads compute only while no solver
thread waits (``busy``): under load the diagnostic refreshes less often, the solves do not slow.

The pages share a budget too (``live_period``): drawing one trajectory update of the default scene
costs a Chromium tab ~35 ms of its main thread and an energy-plot update ~60 ms (measured with the
DevTools performance metrics), so eight tabs each drawing ten updates a second would need more than
the machine, and each publish also costs the server's event loop, which must stay free for the pages'
messages. All sessions together publish about ``LIVE_UPDATES_PER_SECOND`` times a second, split
among the sessions solving: one session alone keeps its ten a second.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Callable


class CoreShare:
    """At most ``cores`` holders at once, granted in arrival order (see the module docstring)."""

    def __init__(self, cores: int, slice_s: float = 0.1) -> None:
        self.cores = max(1, cores)
        self.slice_s = slice_s
        self._cond = threading.Condition()
        self._holders: dict[int, float] = {}  # thread id -> when it got its core
        self._queue: deque[int] = deque()

    def acquire(self, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Wait for a core (checking ``cancelled`` every 0.2 s); False if cancelled meanwhile."""
        me = threading.get_ident()
        with self._cond:
            if me in self._holders:
                return True
            self._queue.append(me)
            while not (len(self._holders) < self.cores and self._queue[0] == me):
                if cancelled():
                    self._queue.remove(me)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.2)
            self._queue.popleft()
            self._holders[me] = time.perf_counter()
            self._cond.notify_all()  # the next in line may find a core free too
            return True

    def release(self) -> None:
        with self._cond:
            if self._holders.pop(threading.get_ident(), None) is not None:
                self._cond.notify_all()

    def turn(self, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Between two pieces of work: hand the core on if this thread has held it ``slice_s`` and
        another waits, then wait for it again. False if cancelled while waiting."""
        with self._cond:
            since = self._holders.get(threading.get_ident())
            if since is not None and (not self._queue or time.perf_counter() - since < self.slice_s):
                return True
        self.release()
        return self.acquire(cancelled)

    @property
    def solving(self) -> int:
        """How many threads hold or wait for a core (the sessions solving now; paused ones release)."""
        with self._cond:
            return len(self._holders) + len(self._queue)

    @property
    def busy(self) -> bool:
        """Whether a thread waits for a core."""
        with self._cond:
            return bool(self._queue)


#: The server process's share for solver threads: all cores but one (at least one).
CORES = CoreShare((os.cpu_count() or 2) - 1)
#: Publishes (trajectories, status) per second of all solving sessions together (one alone: 10 a second).
LIVE_UPDATES_PER_SECOND = 16.0


def live_period(alone: float, solving: int | None = None) -> float:
    """Seconds between two updates of a live view whose period for a session alone is ``alone``:
    ``alone`` stretched so that the ``solving`` sessions (default: ``CORES.solving``) together publish
    at most ``LIVE_UPDATES_PER_SECOND`` times a second at ``alone`` = 0.1 s (the slower views, energies
    and landscape, are stretched in proportion)."""
    solving = CORES.solving if solving is None else solving
    return alone * max(1.0, solving / (LIVE_UPDATES_PER_SECOND * 0.1))
