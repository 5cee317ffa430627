"""A bounded record of a solve's reports.

The paper's gradient descent makes millions of iterations (2,000,000 for Fig. 9, up to 5,000,000 for
Fig. 2); one row per report would take gigabytes, and a plot cannot show them anyway.
``ThinnedHistory`` keeps every row until it holds ``2 * limit`` rows; then it drops every other row
and from then on keeps only every ``stride``-th new row, doubling ``stride`` each time it fills up
again. The kept rows stay evenly spread over the whole run (the first reports are never lost), the
memory stays bounded, and ``rows()`` always ends with the latest row.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

Row = TypeVar("Row")


class ThinnedHistory(Generic[Row]):
    """Rows of one solve, in order, thinned to at most ``2 * limit`` (+ the latest)."""

    def __init__(self, limit: int = 2000) -> None:
        self.limit = limit
        self.clear()

    def clear(self) -> None:
        self._kept: list[Row] = []
        self._stride = 1
        self._seen = 0
        self._latest: Row | None = None

    def __len__(self) -> int:
        """Rows offered since the start (kept or not)."""
        return self._seen

    def append(self, row: Row) -> None:
        if self._seen % self._stride == 0:
            self._kept.append(row)
            if len(self._kept) >= 2 * self.limit:
                self._kept = self._kept[::2]
                self._stride *= 2
        self._seen += 1
        self._latest = row

    def extend(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.append(row)

    def rows(self) -> list[Row]:
        """The kept rows, and the latest row if it was not kept."""
        if self._latest is None or (self._kept and self._kept[-1] is self._latest):
            return list(self._kept)
        return self._kept + [self._latest]
