"""The lazy stand-ins of solver.lazy: ``import solver`` loads neither torch nor POT; a background
preload (what the app starts for its first Run) imports them once, in one thread however often asked."""
from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, threading
import solver.run
from solver.lazy import load_in_background, ot, torch
print("before", "ot" in sys.modules, "torch" in sys.modules)
first = load_in_background(torch, ot)
again = load_in_background(torch, ot)
first.join(120)
print("after", "ot" in sys.modules, "torch" in sys.modules, first is again, first.daemon)
print("filled", "emd" in vars(ot), callable(ot.emd))
"""


def test_import_is_light_and_the_background_preload_loads_once():
    # a fresh process: in the test session torch and POT are imported already
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300, check=True)
    assert res.stdout.split("\n")[:3] == ["before False False", "after True True True True", "filled True True"], res
