"""The server process's garbage collector: exempt what the imports made from its full collections.

Python's full (generation 2) collection walks every container object of the process. After the app's
imports (torch, HoloViews, Panel, Bokeh, the solver) that is hundreds of thousands of objects, and a
full collection ran during every second new session's build, costing it ~0.2 s (in process, measured
with ``gc.callbacks``), more with other sessions open: a new tab and every tab's round trips waited.
``gc.freeze()`` moves the objects alive now to a permanent generation that collections skip (they are
still freed by reference counting). Called once per process, before the first session's objects
exist: sessions' own cycles stay collectable, so a closed tab's memory is still returned.
"""
from __future__ import annotations

import gc


def freeze_imports() -> None:
    """Collect once, then freeze everything alive (the imported modules' objects). Only the first call
    in a process does anything (nothing is frozen yet): later calls would freeze open sessions' objects,
    which then could never be collected after their tabs close."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
