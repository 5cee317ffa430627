"""The server's garbage-collector setting (``explorer.gc_tuning``): the imports' objects are frozen
once; objects made later (a session's) stay collectable. Run in a fresh interpreter: freezing the
test process itself would keep every test's cycles alive."""
from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import gc, weakref
from explorer.gc_tuning import freeze_imports
assert gc.get_freeze_count() == 0
freeze_imports()
frozen = gc.get_freeze_count()
assert frozen > 1000, frozen  # the interpreter's and the imports' objects
class Session: pass
session = Session(); session.me = session  # a cycle, as a session's objects are
alive = weakref.ref(session)
freeze_imports()  # a later session's run: must not freeze the open session
assert gc.get_freeze_count() == frozen, (gc.get_freeze_count(), frozen)
del session
gc.collect()
assert alive() is None  # the closed session's cycle was collected
print("ok")
"""


def test_imports_are_frozen_once_and_later_cycles_are_collected():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
