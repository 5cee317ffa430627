import json
from pathlib import Path

import pytest

from solver import problem_from_dict

ASSETS = Path(__file__).resolve().parents[2] / "assets"


@pytest.fixture
def preset():
    """Load a paper preset from assets/ by name, optionally changing top-level keys."""

    def load(name: str, **changes):
        spec = json.loads((ASSETS / f"{name}.json").read_text())
        spec.update(changes)
        return problem_from_dict(spec)

    return load
