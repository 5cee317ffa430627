"""The solver's version, as stored with every run and summary: the package version, plus the git
commit of the checkout it runs from when there is one (so a result can be traced to its code)."""
from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


@functools.lru_cache(maxsize=1)
def solver_version() -> str:
    try:
        base = version("mfc-explorer")
    except PackageNotFoundError:
        base = "unknown"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{base}+{commit}" if commit else base
