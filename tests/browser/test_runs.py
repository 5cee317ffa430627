"""The "Runs" tab in headless Chromium: a solve made in the app is listed and loads back into the scene."""
from __future__ import annotations

import pytest

from tests.browser.test_explorer import choose_preset, open_app, text, wait_text

pytestmark = pytest.mark.browser


def test_a_run_made_in_the_app_is_listed_and_loads_back(app_url, browser_page):
    page = browser_page
    open_app(page, app_url)
    page.locator(".run-button button").click()
    wait_text(page, ".status-bar", r"Finished \(converged\)", timeout=60)
    page.get_by_text("Runs", exact=True).first.click()
    rows = page.locator(".runs-table .tabulator-row")
    rows.first.wait_for(state="visible", timeout=60_000)
    row = rows.filter(has_text="default scene").filter(has_text="app").first
    row.wait_for(state="visible", timeout=20_000)
    cells = row.inner_text()
    assert "converged" in cells and "4.514" in cells  # the default scene's objective, E = 4.51407
    choose_preset(page, "fig1_pot_comparison")  # another scene in place of the one solved
    wait_text(page, ".scene-summary", r"^30 source points")
    row.locator("input[type=checkbox]").first.click()
    page.locator(".runs-load button").click()
    wait_text(page, ".runs-message", r"Loaded run [0-9a-f]{12} \(default scene, converged\)")
    wait_text(page, ".status-bar", r"Loaded result \(converged, iteration \d+\)")
    wait_text(page, ".scene-summary", r"^49 source points, 49 target points, 0 obstacles")
    page.locator(".runs-compare button").click()  # one run ticked: a message, not a crash
    wait_text(page, ".runs-message", r"tick exactly two runs to compare \(ticked: 1\)")
    assert "Loaded result" in text(page, ".status-bar")
