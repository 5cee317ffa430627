"""This process's own resident memory, now and at its peak (Linux: ``/proc/self/status``).

``resource.getrusage(...).ru_maxrss`` is not the process's own peak: a child started by fork and exec
inherits its parent's peak at the fork (Linux records the old address space's high-water mark at exec),
so a fresh process spawned by a test runner or a benchmark holding 1.5 GB reports at least 1.5 GB, and an
increase measured from it reads 0. VmHWM is the high-water mark of the process's own address space.
"""
from __future__ import annotations


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def resident_bytes() -> int:
    """Resident memory now (VmRSS), in bytes."""
    return 1024 * _status_kb("VmRSS")


def peak_resident_bytes() -> int:
    """The process's own peak resident memory (VmHWM), in bytes."""
    return 1024 * _status_kb("VmHWM")
