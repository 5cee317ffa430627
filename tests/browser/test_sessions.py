"""Many sessions: tabs opened, solving and closed leave no solver or landscape thread behind and no
growing memory in the server (measured in the server process through /proc)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.browser.test_explorer import open_app, wait_text

pytestmark = pytest.mark.browser

#: Tabs opened (and solving) per round; rounds after the warm-up tab.
TABS, ROUNDS = 3, 2


def server_figures(pid: int) -> tuple[int, float]:
    """(threads, resident MB) of the server process."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def settle(pid: int, target: int, timeout: float = 30.0) -> tuple[int, float]:
    """The server's figures once its thread count is back to ``target`` (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    figures = server_figures(pid)
    while figures[0] > target and time.monotonic() < deadline:
        time.sleep(0.5)
        figures = server_figures(pid)
    return figures


def a_round(browser, url: str, pid: int, tabs: int = TABS) -> tuple[int, float]:
    """``tabs`` tabs open, each starts the default scene's solve, then all close (mid-solve or after);
    returns the server's figures while they were all open."""
    contexts = []
    for _ in range(tabs):
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(60_000)
        open_app(page, url)
        page.locator(".run-button button").click()
        contexts.append((context, page))
    for _, page in contexts:
        wait_text(page, ".status-bar", r"iteration|Finished", timeout=60)
    busy = server_figures(pid)
    for context, page in contexts:
        page.goto("about:blank")
        context.close()
    return busy


def test_closed_sessions_leave_no_threads_and_no_growing_memory(app_server, _browser, measured):
    url, proc = app_server
    a_round(_browser, url, proc.pid, tabs=1)  # warm-up: imports, compiled kernels, the first session's caches
    time.sleep(3.0)
    threads0, rss0 = server_figures(proc.pid)
    figures, busy = [], []
    for _ in range(ROUNDS):
        busy.append(a_round(_browser, url, proc.pid))
        figures.append(settle(proc.pid, threads0))
    measured(f"server after a warm-up tab: {threads0} threads, {rss0:.0f} MB; after each further round of "
          f"{TABS} solving tabs opened and closed: " + ", ".join(f"{t} threads, {r:.0f} MB" for t, r in figures)
          + "; with the tabs open: " + ", ".join(f"{t} threads, {(r - rss0) / TABS:.0f} MB per session" for t, r in busy))
    assert all(t <= threads0 for t, _ in figures)  # every session's solver and landscape threads ended
    # memory: Python keeps freed arenas and the allocator its pools, so allow some drift, but a leak of
    # a session's state (scene, plots, history: tens of MB each) would grow by round
    assert figures[-1][1] - rss0 < 150.0
