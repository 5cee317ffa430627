"""Fixtures for the browser tests: a served explorer app and a headless Debian Chromium page.

``app_url``: ``panel serve explorer/app.py`` on a free port for the whole test session; after the
session its log must contain no errors. ``browser_page``: a fresh Playwright page per test, from
``/usr/bin/chromium`` (Playwright's own browser download is not used).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("MFC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Server log lines that mean something went wrong (tracebacks, Bokeh/Panel errors).
LOG_ERRORS = re.compile(r"Traceback|\bERROR\b|Exception|error:", re.IGNORECASE)
#: Tornado's report of a message sent to a browser tab that had just closed: not an app error.
CLOSED_SOCKET = re.compile(r"^.*Task exception was never retrieved\n(?:.*\n)*?tornado\.websocket\."
                           r"WebSocketClosedError\n", re.MULTILINE)


def log_errors(text: str) -> list[str]:
    """Lines of a ``panel serve`` log that report errors (closed-websocket noise excluded)."""
    return [line for line in CLOSED_SOCKET.sub("", text).splitlines() if LOG_ERRORS.search(line)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"panel serve exited early:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"panel serve did not answer within {timeout} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def app_url(app_server) -> str:
    """URL of the explorer served by ``panel serve`` for this test session (log checked at the end)."""
    return app_server[0]


@pytest.fixture(scope="session")
def app_server() -> Iterator[tuple[str, subprocess.Popen]]:
    """(URL, process) of ``panel serve explorer/app.py``; closed sessions are destroyed within about a
    second (Bokeh's default keeps them for 15 s), so leak checks need not wait."""
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="mfc-explorer-"))
    log = folder / "panel.log"
    with open(log, "w") as out:  # the app keeps its runs in a store of its own (not the user's)
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", "explorer/app.py", "--port", str(port),
             "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}",
             "--check-unused-sessions", "500", "--unused-session-lifetime", "500"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, MFC_STORE=str(folder / "store")))
    url = f"http://127.0.0.1:{port}/app"
    try:
        _wait_until_up(url, proc, log)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert not log_errors(text), "errors in the panel serve log:\n" + text


@pytest.fixture(scope="session")
def _browser() -> Iterator["object"]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(_browser) -> Iterator["object"]:
    """A fresh Playwright page (own context, downloads allowed) in the headless Debian Chromium."""
    context = _browser.new_context(viewport={"width": 1600, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    page.goto("about:blank")  # close the app's websocket cleanly before the context goes away
    page.wait_for_timeout(300)
    context.close()

