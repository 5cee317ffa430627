"""Heavy libraries, loaded on first use.

Importing torch takes about 3 s on a small machine and POT another second; reading and validating a
problem file needs neither. Modules of ``solver`` therefore take these libraries from here instead of
importing them: ``from .lazy import torch`` binds a stand-in module that imports the real one the first
time one of its attributes is read (a solve), so that ``import solver`` and every validation error
come at once. No module of ``solver`` may touch such a library while it is being imported (no torch
decorators or torch-typed constants at module level); everything that does so sits inside functions.
"""
from __future__ import annotations

import importlib
import threading
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for the module ``name``: the first attribute read imports it (under Python's import
    lock, so concurrent first reads from several threads are safe) and copies its namespace here, so
    later reads cost what a plain module attribute costs."""

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update({k: v for k, v in vars(module).items() if k not in ("__name__", "__spec__")})
        return getattr(module, attribute)


torch = LazyModule("torch")
ot = LazyModule("ot")
#: torch.optim's first optimizer imports it (~1.3 s): solves that step one load it before their clock starts
torch_dynamo = LazyModule("torch._dynamo")
scipy_linalg = LazyModule("scipy.linalg")
scipy_optimize = LazyModule("scipy.optimize")
scipy_spatial = LazyModule("scipy.spatial")
numba = LazyModule("numba")


def load(*modules: LazyModule) -> None:
    """Import ``modules`` now (e.g. before a solve starts its clock: loading POT, which imports
    scipy.stats, takes about a second and is not the solver's time)."""
    for module in modules:
        LazyModule.__getattr__(module, "__name__")  # imports it and fills the stand-in


_preloading: threading.Thread | None = None


def load_in_background(*modules: LazyModule) -> threading.Thread:
    """Start importing ``modules`` in a daemon thread (once per process; later calls return the same
    thread): a server that will solve loads POT while its first page is being read, so the first Run
    does not wait a second for it. A solve that begins meanwhile waits on Python's import lock for the
    import in progress, never imports twice."""
    global _preloading
    if _preloading is None:
        _preloading = threading.Thread(target=load, args=modules, name="mfc-preload", daemon=True)
        _preloading.start()
    return _preloading
