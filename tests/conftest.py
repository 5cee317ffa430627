"""Figures some tests measure (e.g. the session leak test's thread counts and memory) are shown at the
end of every run, `pytest -q` included, under "measured figures" (print() output of passing tests is
captured and never shown)."""
from __future__ import annotations

from typing import Callable

import pytest

_FIGURES: list[str] = []


@pytest.fixture
def measured(request) -> Callable[[str], None]:
    """``measured(text)``: report a measured figure in the run's terminal summary."""
    return lambda text: _FIGURES.append(f"{request.node.nodeid}: {text}")


def pytest_terminal_summary(terminalreporter) -> None:
    if _FIGURES:
        terminalreporter.section("measured figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
