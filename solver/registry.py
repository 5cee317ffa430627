"""Registries: every interchangeable part of a problem or a solve is chosen by name.

A ``Registry`` maps a ``kind`` (the string a problem file writes, e.g. ``"gaussian"``) to the class,
or for optimizers the function, that implements it. A new kind is one class with the decorator
``@TARGETS.register`` in its own module (and that module imported by its package); the problem
parser, the command line and the explorer find it here, with no other edit. Looking up an unknown
kind raises ``ProblemError`` naming the field, the closest known kind and the list to choose from.

The registries of the solver (filled by the modules that define their kinds):

=================  ====================  ===================================================
registry           problem-file field    kinds
=================  ====================  ===================================================
``DYNAMICS``       ``dynamics.kind``     velocity, acceleration, linear (``solver.dynamics``)
``DRIFTS``         ``dynamics.drift``    mean_attraction
``TARGETS``        ``target.kind``       particles, gaussian, mixture, uniform, grid, annulus
``CONTROL_COSTS``  ``control_cost``      power, piecewise (``solver.costs``)
``OBSTACLES``      ``obstacles[k]``      circle, polygon
``POTENTIALS``     ``potential[k]``      quadratic, gaussian
``INTERACTIONS``   ``interaction[k]``    gaussian, quadratic
``INITS``          ``init``              paper, ot, source, trajectories (``solver.init``)
``OPTIMIZERS``     ``optimizer.method``  robust, lbfgs, newton, gd, adam (``solver.optimizers``)
=================  ====================  ===================================================
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import ProblemError

T = TypeVar("T")


def suggestion(word: str, choices: list[str]) -> str:
    """' (did you mean "x"?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named implementations of one part of a problem (``sort``), found under ``field`` in a problem
    file; ``default`` is the kind used when a spec names none."""

    def __init__(self, sort: str, field: str, default: str | None = None) -> None:
        self.sort = sort
        self.field = field
        self.default = default
        self._items: dict[str, T] = {}

    def register(self, item: T | None = None, *, name: str | None = None) -> Any:
        """Decorator: register a class under its ``kind`` attribute (or a function under ``name``)."""
        def add(obj: T) -> T:
            kind = name or getattr(obj, "kind")
            if kind in self._items:
                raise ValueError(f"{self.sort} kind {kind!r} is registered twice")
            self._items[kind] = obj
            return obj
        return add if item is None else add(item)

    def __getitem__(self, kind: str) -> T:
        if not isinstance(kind, str) or kind not in self._items:
            raise ProblemError(self.field, f"unknown {self.sort} {kind!r}{suggestion(kind, self.kinds())}; "
                                           f"use one of {', '.join(self.kinds())}")
        return self._items[kind]

    def __contains__(self, kind: object) -> bool:
        return kind in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def kinds(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def describe(self, kind: str) -> str:
        """The first sentence of the kind's docstring, without its full stop (tooltips and help)."""
        doc = (getattr(self[kind], "__doc__", None) or "").strip()
        paragraph = " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())
        sentence = re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z])", paragraph)[0].rstrip(".")
        return sentence or kind

    def kind_of(self, spec: Any, where: str) -> str:
        """The kind a spec names (``spec["kind"]``, else the default); raises for unknown kinds."""
        kind = spec.get("kind", self.default) if isinstance(spec, dict) else spec
        if kind is None:
            raise ProblemError(f"{where}.kind", f"is required; use one of {', '.join(self.kinds())}")
        field = f"{where}.kind" if isinstance(spec, dict) else where
        if not isinstance(kind, str):
            raise ProblemError(field, f"must be the name of a {self.sort} (got {kind!r}); use one of "
                                      f"{', '.join(self.kinds())}")
        if kind not in self._items:
            raise ProblemError(field, f"unknown {self.sort} {kind!r}{suggestion(kind, self.kinds())}; "
                                      f"use one of {', '.join(self.kinds())}")
        return kind


DYNAMICS: Registry[Any] = Registry("dynamics", "dynamics.kind", default="velocity")
DRIFTS: Registry[Any] = Registry("drift", "dynamics.drift.kind")
TARGETS: Registry[Any] = Registry("target", "target.kind", default="particles")
CONTROL_COSTS: Registry[Any] = Registry("control cost", "control_cost", default="power")
OBSTACLES: Registry[Any] = Registry("obstacle", "obstacles.kind", default="circle")
POTENTIALS: Registry[Any] = Registry("potential", "potential.kind")
INTERACTIONS: Registry[Any] = Registry("interaction", "interaction.kind")
INITS: Registry[Any] = Registry("initialization", "init", default="paper")
OPTIMIZERS: Registry[Callable[..., Any]] = Registry("method", "optimizer.method", default="robust")
