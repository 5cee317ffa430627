"""``solver.resident``: a spawned process measures its own peak memory, even when its parent holds more
(``ru_maxrss`` starts a child at the parent's peak: an increase measured from it reads 0)."""
import json
import subprocess
import sys
import textwrap

import numpy as np

CHILD = textwrap.dedent("""
    import json
    import numpy as np
    from solver.resident import peak_resident_bytes, resident_bytes
    before = resident_bytes()
    block = np.ones(2**25)  # 256 MiB, every page touched
    print(json.dumps({"increase": peak_resident_bytes() - before}))
""")


def test_a_spawned_process_measures_its_own_peak_beside_a_larger_parent():
    ballast = np.ones(2**27)  # this process holds 1 GiB while the child runs
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    increase = json.loads(res.stdout)["increase"]
    # the child's 256 MiB block, give or take the interpreter's own few MiB of allocations
    assert 250 * 2**20 <= increase <= 300 * 2**20, increase
    assert ballast[-1] == 1.0
