"""The "Distributed control" tab in headless Chromium: changing the graph updates the results table."""
import re

import pytest

from tests.browser.figures import figure_state

pytestmark = pytest.mark.browser


FIND_TEXT = """(args) => {
    const [tag, prefix] = args;
    const find = (root) => {
        for (const el of root.querySelectorAll('*')) {
            if (el.tagName === tag && el.textContent.startsWith(prefix)) return true;
            if (el.shadowRoot && find(el.shadowRoot)) return true;
        }
        return false;
    };
    return find(document);
}"""


def test_graph_change_updates_table(app_url, browser_page):
    page = browser_page
    page.goto(app_url)
    page.get_by_text("Distributed control", exact=True).first.click()
    table = page.locator(".distributed-table").first
    table.wait_for(state="attached", timeout=60_000)
    first = page.locator(".distributed-table caption").first
    first.wait_for(timeout=60_000)
    assert re.search(r"ring, n = 20", first.inner_text())
    v_ring = page.locator(".distributed-table td[data-key='V']").first.inner_text()
    page.locator(".distributed-graph select").first.select_option("star")
    page.wait_for_function(FIND_TEXT, arg=["CAPTION", "star"], timeout=60_000)
    v_star = page.locator(".distributed-table td[data-key='V']").first.inner_text()
    assert float(v_star) != float(v_ring)  # the star's V (row-normalized, n = 20) differs from the ring's
    # let the background computation finish before the page closes (no pushes to a closed session)
    page.wait_for_function(FIND_TEXT, arg=["P", "done"], timeout=120_000)
    # every plot shows its data (issue 11: the graph sat in one corner, the gap plot was empty)
    graph = figure_state(page, "graph W")
    assert graph["drawn"] == [20 - 1, 20], graph  # a star on 20 players: 19 edges, 20 players
    gap = figure_state(page, "gap and bound")
    assert len(gap["drawn"]) == 2 and min(gap["drawn"]) >= 2, gap
    assert gap["x"][0] > 0 and gap["y"][0] > 0, gap  # log axes framed around the curves
    paths = figure_state(page, "player 1")
    assert len(paths["drawn"]) == 2 and min(paths["drawn"]) > 10, paths
