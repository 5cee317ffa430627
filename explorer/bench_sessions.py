"""Many sessions at once (issue 11, items 5 and 7): ``python -m explorer.bench_sessions [--tabs 8]``.

Serves the app (``panel serve`` on a free local port) and, in headless Chromium (Playwright,
``/usr/bin/chromium`` or ``MFC_CHROMIUM``), times a second tab of one browser (shared cache) until it is
usable (scene drawn, Run button shown) and complete (the parts built after the page loaded drawn too);
then opens ``--tabs`` tabs one after another, each in a browser context of its own (a person each, cold
cache), timing each the same way; then starts a solve in every tab (the paper's gradient descent, so
they run for a while) and changes eps in each tab ``--rounds`` times, timing each change until its own
tab's scene summary shows it. Prints the open times and the round trips' median and 95th percentile.
A measurement, not a test: it needs the test extras (Playwright) and a browser.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: A change not shown within this many seconds counts as this long.
GIVE_UP = 30.0
#: An element's text including its open shadow roots (Panel renders panes inside them).
DEEP_TEXT = """el => { const walk = n => { let t = n.shadowRoot ? walk(n.shadowRoot) : '';
  for (const c of n.childNodes) t += c.nodeType === 3 ? c.textContent : (c.nodeType === 1 ? walk(c) : '');
  return t; }; return walk(el); }"""


def _serve() -> tuple[subprocess.Popen, str]:
    """``panel serve explorer/app.py`` on a free local port, as README starts it; returns once the server
    accepts connections (no page requested: the first tab opened is the server's first session)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(tempfile.mkdtemp(prefix="mfc-bench-")) / "panel.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "panel", "serve", "explorer/app.py", "--port", str(port),
                             "--address", "127.0.0.1", f"--allow-websocket-origin=127.0.0.1:{port}"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return proc, f"http://127.0.0.1:{port}/app"
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("panel serve did not start within 90 s")


def _summary_shows(page, value: str, started: float) -> float:
    """Seconds from ``started`` until the tab's scene summary shows ``eps = value`` (GIVE_UP if never)."""
    while time.monotonic() - started < GIVE_UP:
        if f"eps = {value}" in page.locator(".scene-summary").first.evaluate(DEEP_TEXT):
            return time.monotonic() - started
        time.sleep(0.05)
    shown = page.locator(".scene-summary").first.evaluate(DEEP_TEXT).rsplit("}", 1)[-1].strip()
    box = page.locator(".eps-input input").first.input_value()
    print(f"  eps = {value} not shown within {GIVE_UP:.0f} s; the eps box holds {box!r}, the summary says {shown!r}")
    return GIVE_UP


def _median_and_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


#: What a tab shows first (the page is usable): the scene drawn and the Run button.
USABLE = (".scene-plot canvas", ".run-button button")
#: What follows once the page has loaded (``explorer.views.after_load``): the plots beside the scene, the
#: sidebar's parameters and point generators.
COMPLETE = (".landscape-plot canvas", ".energy-plot canvas", ".eps-input input", ".generator-card")


def _open(context, url: str) -> tuple:
    """A new tab of ``context`` at ``url``: (page, seconds until it is usable, seconds until it is
    complete); returns when it is complete."""
    page = context.new_page()
    page.set_default_timeout(120_000)
    started = time.monotonic()
    page.goto(url)
    for selector in USABLE:
        page.locator(selector).first.wait_for(state="visible")
    usable = time.monotonic() - started
    for selector in COMPLETE:
        page.locator(selector).first.wait_for(state="attached")
    return page, usable, time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=8, help="browser tabs (sessions) at once")
    parser.add_argument("--rounds", type=int, default=3, help="eps changes per tab")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    proc, url = _serve()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=os.environ.get("MFC_CHROMIUM", "/usr/bin/chromium"),
                                         args=CHROMIUM_ARGS, headless=True)
            # one person opening tabs: the tabs of one browser share its cache
            person = browser.new_context(viewport={"width": 1600, "height": 1000})
            first, second = (_open(person, url) for _ in range(2))
            print(f"one browser: first tab after the server's start usable after {first[1]:.1f} s, complete "
                  f"after {first[2]:.1f} s; a second tab usable after {second[1]:.1f} s, complete after "
                  f"{second[2]:.1f} s")
            person.close()
            # many people: a browser context (cold cache) each
            pages, opened = [], []
            for _ in range(args.tabs):
                page, usable, complete = _open(browser.new_context(viewport={"width": 1600, "height": 1000}), url)
                opened.append(f"{usable:.1f}/{complete:.1f}")
                pages.append(page)
            print("one tab per person, usable/complete after (s):", " ".join(opened))
            for page in pages:
                page.locator(".method-select select").select_option("gd")
                page.locator(".run-button button").click()
            time.sleep(5.0)
            trips, typing = [], []
            for round_ in range(args.rounds):
                for k, page in enumerate(pages):
                    value = f"0.0{round_ + 2}{k}"
                    box = page.locator(".eps-input input").first
                    started = time.monotonic()
                    box.fill(value)
                    box.press("Enter")
                    typed = time.monotonic() - started
                    typing.append(typed)
                    if typed > 5.0:  # the tab did not take the keystrokes (a busy page), not a lost change
                        print(f"  tab {k + 1}: typing eps = {value} waited {typed:.1f} s for the page")
                    trips.append(_summary_shows(page, f"{float(value):g}", started))
            median, p95 = _median_and_p95(trips)
            print(f"{args.tabs} tabs solving: eps change -> own tab's summary: median {median:.2f} s, "
                  f"95th percentile {p95:.2f} s, "
                  f"{sum(t >= GIVE_UP for t in trips)} of {len(trips)} took {GIVE_UP:.0f} s or more")
            median, p95 = _median_and_p95(typing)
            print(f"  of which typing the value into the tab (the browser's share): median {median:.2f} s, "
                  f"95th percentile {p95:.2f} s")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


if __name__ == "__main__":
    main()
