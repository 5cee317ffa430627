"""The live explorer in headless Chromium (issue 11): a parameter change that reaches the running solve,
the landscape beside the scene streaming during a solve, an obstacle dragged mid-solve, a brush
stroke, undo / redo, and the solve exported as GIF and MP4."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.browser.figures import axis_room, data_to_page, figure_column, figure_columns, figure_state
from tests.browser.test_explorer import choose_preset, open_app, set_number, stop_if_running, text, wait_text

pytestmark = pytest.mark.browser


def image_sum(page) -> float | None:
    """Sum of the live landscape image's values (changes when the slice is recomputed)."""
    images = figure_column(page, "Loss landscape at", "image")
    values = [v for r in images or [] if r for v in r if v is not None]
    return sum(values) if values else None


def test_eps_change_reaches_the_running_solve_and_the_landscape_streams(app_url, browser_page, measured):
    page = browser_page
    open_app(page, app_url)
    choose_preset(page, "fig4_obstacles")  # the paper's obstacle scene
    wait_text(page, ".scene-summary", r"25 source points.*2 obstacles")
    # with the paper's gradient descent (20,000 iterations, ~30 s here): `robust` now converges in ~9 s,
    # before the landscape has been watched and eps changed
    page.locator(".method-select select").select_option("gd")
    page.locator(".run-button button").click()
    wait_text(page, ".status-bar", r"iteration [1-9]\d* .*eps = 0\.1 ", timeout=30)
    # the landscape beside the scene is drawn and recomputed during the solve
    seen = set()
    deadline = time.monotonic() + 15
    while len(seen) < 3 and time.monotonic() < deadline:
        value = image_sum(page)
        if value is not None:
            seen.add(round(value, 9))
        time.sleep(0.25)
    assert len(seen) >= 3, f"the landscape showed {len(seen)} different slices in 15 s"
    state = figure_state(page, "Loss landscape at")
    assert state["x"][1] > state["x"][0] and min(state["drawn"][:1]) > 0, state
    # a live change of eps: the status line shows the running solve using it
    before = int(re.search(r"iteration (\d+)", text(page, ".status-bar")).group(1))
    t0 = time.monotonic()
    set_number(page, ".eps-input", "0.05")
    wait_text(page, ".status-bar", r"^iteration \d+ .*eps = 0\.05", timeout=10)
    delay = time.monotonic() - t0
    measured(f"eps change reached the running solve's status line in {delay:.2f} s")
    # the bound is 2 s (measured here 1.1-1.8 s at first, 0.7 s at 6783ae4). In CI the browser,
    # the server and the solve share 2 cores with the test's own polling: one fresh-clone run measured
    # 2.01 s, so CI allows 3 s
    bound = 3.0 if os.environ.get("CI") else 2.0
    assert delay < bound, f"the eps change took {delay:.2f} s to reach the solve"
    wait_text(page, ".iteration", r"Iteration \d+", timeout=5)
    time.sleep(2.0)
    assert "running" in text(page, ".iteration") or "finished" in text(page, ".iteration")

    def energies_after_the_change() -> tuple[list, float]:
        iterations, totals = (column[0] for column in figure_columns(page, "Energies", "iteration", "energy"))
        return [e for i, e in zip(iterations, totals) if i is not None and e is not None and i > before], totals[0]

    # it continued from the current iterate: no energy after the change is near the start's. (The new
    # leg's first reports can wait for a core behind other solves in the same server: poll, do not sleep)
    read = {}
    wait_for(lambda: read.update(now=energies_after_the_change()) or read["now"][0],
             "no energies were drawn after the change", timeout=15)
    after, start = read["now"]  # the very read that showed them (the plot changes between two reads)
    assert max(after) < 0.5 * start, (start, max(after))
    assert int(re.search(r"iteration (\d+)", text(page, ".status-bar")).group(1)) > before
    page.locator(".stop-button button").click()
    wait_text(page, ".iteration", "finished", timeout=20)


def obstacle_cell(page, row: int, field: str) -> float:
    return float(page.locator(".obstacle-table .tabulator-row").nth(row)
                 .locator(f".tabulator-cell[tabulator-field={field}]").inner_text())


def drag(page, start: tuple[float, float], end: tuple[float, float], steps: int) -> None:
    """Press at the scene's data point ``start``, move to ``end`` in ``steps`` steps, release (a person's
    drag, or a brush stroke)."""
    ax, ay = data_to_page(page, "Scene", ".scene-plot canvas", *start)
    bx, by = data_to_page(page, "Scene", ".scene-plot canvas", *end)
    page.mouse.move(ax, ay)
    page.mouse.down()
    for k in range(1, steps + 1):
        page.mouse.move(ax + (bx - ax) * k / steps, ay + (by - ay) * k / steps)
        time.sleep(0.02)
    page.mouse.up()


def wait_for(condition, message: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def test_drag_an_obstacle_mid_solve_then_undo(app_url, browser_page):
    page = browser_page
    open_app(page, app_url)
    choose_preset(page, "playful/mixture_with_obstacles")  # 3 obstacles; a solve that runs for seconds
    wait_text(page, ".scene-summary", "3 obstacles")
    page.locator(".mode-select button", has_text="place obstacles").click()
    wait_text(page, ".mode-hint", "drag its centre")
    page.locator(".scene-plot canvas").first.wait_for(state="visible")
    time.sleep(1.0)
    x0, y0 = obstacle_cell(page, 0, "x"), obstacle_cell(page, 0, "y")
    page.locator(".run-button button").click()
    wait_text(page, ".iteration", r"Iteration [1-9]\d* .*running", timeout=30)
    # drag the first obstacle's centre 0.4 up, like a person: press, move in steps, release
    drag(page, (x0, y0), (x0, y0 + 0.4), steps=10)
    try:
        wait_for(lambda: obstacle_cell(page, 0, "y") > y0 + 0.3, "", timeout=5)
    except AssertionError:  # the page was busy drawing the solve when the press came: drag again, as a
        drag(page, (x0, y0), (x0, y0 + 0.4), steps=10)  # person would (seen once in ten runs)
        wait_for(lambda: obstacle_cell(page, 0, "y") > y0 + 0.3, "the drag did not move the obstacle")
    assert obstacle_cell(page, 0, "x") == pytest.approx(x0, abs=0.05)
    wait_text(page, ".note", "obstacles changed during the solve", timeout=5)
    time.sleep(3.0)  # the solve re-routes around the obstacle's new place (and may converge meanwhile)
    stop_if_running(page)
    wait_text(page, ".iteration", "finished", timeout=30)
    depth = re.search(r"deepest inside an obstacle: (\S+) at the time points", text(page, ".status-bar"))
    assert depth and float(depth.group(1)) < 0.05, text(page, ".status-bar")  # against the moved obstacle
    page.locator(".undo-button button").click()  # the whole drag is one step
    wait_for(lambda: abs(obstacle_cell(page, 0, "y") - y0) < 1e-6, "undo did not put the obstacle back")
    assert obstacle_cell(page, 0, "x") == pytest.approx(x0)
    assert "3 obstacles" in text(page, ".scene-summary")


def source_count(page) -> int:
    return int(re.search(r"(\d+) source points", text(page, ".scene-summary")).group(1))


def test_a_brush_stroke_adds_points_and_undo_restores_the_scene(app_url, browser_page):
    page = browser_page
    open_app(page, app_url)
    start = source_count(page)
    page.locator(".mode-select button", has_text="paint").click()
    wait_text(page, ".mode-hint", "brush stroke")
    page.locator(".scene-plot canvas").first.wait_for(state="visible")
    time.sleep(1.0)
    set_number(page, ".brush-width", "0")
    set_number(page, ".brush-spacing", "0.1")
    time.sleep(0.5)
    # a stroke from (1.6, 0) to (1.6, 1): about 11 points 0.1 apart on that line
    drag(page, (1.6, 0.0), (1.6, 1.0), steps=20)
    wait_for(lambda: source_count(page) > start, "the stroke added no points")
    added = source_count(page) - start
    assert 9 <= added <= 12, added  # the pointer's pixels round the stroke's ends
    page.locator(".undo-button button").click()
    wait_for(lambda: source_count(page) == start, "undo did not remove the painted points")
    page.locator(".redo-button button").click()
    wait_for(lambda: source_count(page) == start + added, "redo did not bring them back")


def test_export_the_solve_as_gif_and_mp4(app_url, browser_page, tmp_path):
    import imageio.v2 as imageio

    page = browser_page
    open_app(page, app_url)
    choose_preset(page, "fig1_pot_comparison")
    wait_text(page, ".scene-summary", "30 source points")
    page.locator(".run-button button").click()
    wait_text(page, ".iteration", "finished", timeout=60)
    card = page.locator(".card-header", has_text="Export / import").first
    if not page.locator(".make-animation button").is_visible():
        card.click()
    for fmt in ("gif", "mp4"):
        page.locator(".animation-format button", has_text=fmt).click()
        page.locator(".make-animation button").click()
        wait_text(page, ".animation-status", f"{fmt.upper()} ready", timeout=60)
        with page.expect_download() as info:
            page.locator(".download-animation button").click()
        path = tmp_path / f"solve.{fmt}"
        path.write_bytes(Path(info.value.path()).read_bytes())
        first = imageio.get_reader(str(path), format="GIF" if fmt == "gif" else "FFMPEG").get_data(0)
        assert first.shape[0] == first.shape[1] == 640 and first[..., :3].std() > 5  # a picture, decoded


def scene_settled(page) -> None:
    """Wait until the parts built after the page loaded stand beside the scene and the scene no longer
    moves: a drag aimed at data points before that reflow can land beside them (on a cold machine the
    box of the test below once selected nothing)."""
    page.locator(".energy-plot canvas").first.wait_for(state="visible", timeout=30_000)
    seen = []
    wait_for(lambda: seen.append(data_to_page(page, "Scene", ".scene-plot canvas", 0.0, 0.0)) or
             (len(seen) > 1 and seen[-1] == seen[-2]), "the scene kept moving", timeout=15)


def choose_tool(page, icon: str) -> None:
    """Click the scene's toolbar button ``icon`` (e.g. "box-select") and wait until Bokeh shows it active
    (a second click would switch it off again)."""
    button = page.locator(f".scene-plot .bk-tool-icon-{icon}").first
    active = "e => e.getRootNode().host.classList.contains('bk-active')"
    if not button.evaluate(active):
        button.click()
    wait_for(lambda: button.evaluate(active), f"the {icon} tool never became active")


def test_box_select_and_delete_points(app_url, browser_page):
    page = browser_page
    open_app(page, app_url)  # the default scene: a 7 x 7 grid of source points on [-0.21, 0.21]^2
    start = source_count(page)
    scene_settled(page)
    choose_tool(page, "box-select")
    drag(page, (-0.3, -0.3), (0.0, 0.3), steps=8)  # a box over the left columns of the grid
    # the selection reaches the server a moment after the drag; the button then counts it (clicked at
    # once, the click could arrive first: "No points selected")
    wait_text(page, ".delete-points", r"Delete \d+ selected points", timeout=10)
    page.locator(".delete-points button").click()
    wait_text(page, ".note", r"Deleted \d+ selected points", timeout=10)
    deleted = int(re.search(r"Deleted (\d+)", text(page, ".note")).group(1))
    assert 7 <= deleted < start and source_count(page) == start - deleted
    page.locator(".undo-button button").click()
    wait_for(lambda: source_count(page) == start, "undo did not bring the deleted points back")


def test_scene_landscape_and_energies_fit_side_by_side_at_1400_px(app_url, browser_page):
    """At 1,400 x 1,000 px the landscape and the energies stand beside the scene and end inside the
    window (they were cut at its right edge), every draw mode's label fits its button, and the scene's
    x axis label has room below the axis."""
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 1000})
    open_app(page, app_url)
    page.locator(".landscape-plot canvas").first.wait_for(state="visible", timeout=30_000)
    page.locator(".energy-plot canvas").first.wait_for(state="visible", timeout=30_000)
    scene = page.locator(".scene-plot").first.bounding_box()
    for selector in (".landscape-plot", ".energy-plot"):
        box = page.locator(selector).first.bounding_box()
        assert box["x"] >= scene["x"] + scene["width"] - 1, f"{selector} is not beside the scene: {box}"
        assert box["x"] + box["width"] <= 1400, f"{selector} reaches past the window's edge: {box}"
    for button in page.locator(".mode-select button").all():
        overflow = button.evaluate("b => b.scrollWidth - b.clientWidth")
        assert overflow <= 0, f"the mode button {button.inner_text()!r} cuts its label ({overflow} px)"
    # the scene's x axis label is drawn whole: Bokeh's measure of it falls short of the drawn glyphs, and
    # with the box ending at the figure's edge (0 px left, the default border) the label was cut in half
    room = axis_room(page, "Scene")
    assert room["height"] - room["axis_bottom"] >= 10, f"the scene's x axis label is cut: {room}"
