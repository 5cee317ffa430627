"""The energy history of a solve, kept at bounded size for plotting.

A fast method (the paper's gd makes thousands of iterations per second) reports far more rows than a
plot can show or a browser can receive several times a second. ``EnergyHistory`` keeps every row
until it holds ``2 * limit`` rows; then it drops every other row and from then on keeps only every
``stride``-th new row, doubling ``stride`` each time it fills up again. The kept rows stay evenly
spread over the whole run (the first iterations are never lost), memory stays bounded, and the latest
row is always part of ``frame()``.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


class EnergyHistory:
    """Rows (iteration, energies ...) of one solve, thinned to at most ``2 * limit`` + 1 rows."""

    def __init__(self, columns: Sequence[str], limit: int = 2000) -> None:
        self.columns = list(columns)
        self.limit = limit
        self.clear()

    def clear(self) -> None:
        self._rows: list[list[float]] = []
        self._stride = 1
        self._seen = 0  # rows offered since the start
        self._latest: list[float] | None = None

    def __len__(self) -> int:
        return self._seen

    def extend(self, rows: Sequence[Sequence[float]]) -> None:
        for row in rows:
            if self._seen % self._stride == 0:
                self._rows.append(list(row))
                if len(self._rows) >= 2 * self.limit:
                    self._rows = self._rows[::2]
                    self._stride *= 2
            self._seen += 1
            self._latest = list(row)

    def frame(self) -> pd.DataFrame:
        """The kept rows and the latest one, as a DataFrame with ``columns``."""
        rows = self._rows
        if self._latest is not None and (not rows or rows[-1] != self._latest):
            rows = rows + [self._latest]
        return pd.DataFrame(np.array(rows, dtype=float).reshape(-1, len(self.columns)), columns=self.columns)
