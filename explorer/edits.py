"""Undo / redo of scene edits (points, target, obstacles) for one session."""
from __future__ import annotations

import copy
import time
from collections import deque
from typing import Any, Callable

import param

from .model import SessionModel

#: The parts of the model a scene edit changes (solver parameters such as eps are not undone).
SCENE_PARAMS = ("source", "target_points", "target_kind", "target_params", "obstacles")
#: Changes of the same parts closer together than this are one step (a drag sends many updates).
MERGE_SECONDS = 0.3
#: Steps kept.
DEPTH = 50


class SceneHistory(param.Parameterized):
    """Records every change of ``SCENE_PARAMS`` (a preset, a click, a drag, a generated cloud, a table
    edit) as one step holding the values before it; ``undo()`` restores them, ``redo()`` re-applies
    the step. A new edit after an undo forgets the redo steps."""

    can_undo = param.Boolean(default=False, doc="Whether there is a step to undo.")
    can_redo = param.Boolean(default=False, doc="Whether there is a step to redo.")

    def __init__(self, model: SessionModel, depth: int = DEPTH, clock: Callable[[], float] = time.monotonic,
                 **params: Any) -> None:
        super().__init__(**params)
        self.model = model
        self.clock = clock  # seconds; tests give their own to tell one gesture from separate edits
        self._undo: deque[tuple[float, dict[str, Any]]] = deque(maxlen=depth)
        self._redo: list[tuple[float, dict[str, Any]]] = []
        self._restoring = False
        model.param.watch(self._record, list(SCENE_PARAMS))

    def _record(self, *events: param.parameterized.Event) -> None:
        if self._restoring:
            return
        before = {e.name: copy.deepcopy(e.old) for e in events}
        now = self.clock()
        if self._undo and now - self._undo[-1][0] < MERGE_SECONDS and set(before) <= set(self._undo[-1][1]):
            self._undo[-1] = (now, self._undo[-1][1])  # the same gesture goes on: keep its first values
        else:
            self._undo.append((now, before))
        self._redo.clear()
        self._sync()

    def undo(self) -> None:
        self._swap(self._undo, self._redo)

    def redo(self) -> None:
        self._swap(self._redo, self._undo)

    def _swap(self, source: Any, dest: Any) -> None:
        """Apply the newest step of ``source``, keeping the values it replaces as a step of ``dest``."""
        if not source:
            return
        _, values = source.pop()
        dest.append((0.0, {name: copy.deepcopy(getattr(self.model, name)) for name in values}))  # never merged
        self._restoring = True
        try:
            with param.parameterized.batch_call_watchers(self.model):
                self.model.param.update(**values)
                self.model.scene_version += 1  # the draw tools show the restored points
        finally:
            self._restoring = False
        self._sync()

    def _sync(self) -> None:
        self.param.update(can_undo=bool(self._undo), can_redo=bool(self._redo))
