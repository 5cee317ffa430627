"""A density given on a regular grid of cells (e.g. an image), by cell-centre quadrature."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, array, check_keys, floats
from ..registry import TARGETS
from .particles import ParticleTarget
from .uniform import read_box


@TARGETS.register
@dataclass(frozen=True)
class GridDensityTarget:
    """Nonnegative values on a grid of cells over [low, high]: point masses at the cell centres.

    ``values`` has one axis per dimension, ordered (x_{d-1}, ..., x_0) as in an image (rows are the
    second coordinate). The measure is approximated by quadrature: a point mass at each cell centre
    carrying the normalized cell mass, so K_delta * m_1 and C are pair sums over the cells; the error is
    small when the cell size is well below delta.
    """

    low: np.ndarray
    high: np.ndarray
    values: np.ndarray

    kind: ClassVar[str] = "grid"
    keys: ClassVar[tuple[str, ...]] = ("kind", "low", "high", "values")
    given_by_points: ClassVar[bool] = False  # the file lists the target's points (drawn and edited)
    discrete: ClassVar[bool] = True
    empirical: ClassVar[None] = None
    _cells: ParticleTarget = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        d = self.low.shape[0]
        shape = self.values.shape[::-1]  # (n_0, n_1, ...) cells along x_0, x_1, ...
        axes = [self.low[k] + (np.arange(shape[k]) + 0.5) * (self.high[k] - self.low[k]) / shape[k]
                for k in range(d)]
        mesh = np.meshgrid(*axes, indexing="ij")
        pts = np.stack([m.ravel() for m in mesh], axis=1)
        mass = np.transpose(self.values, axes=tuple(range(d))[::-1]).ravel().astype(np.float64)
        keep = mass > 0
        object.__setattr__(self, "_cells", ParticleTarget(pts[keep], mass[keep] / mass[keep].sum()))

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str = "target") -> "GridDensityTarget":
        check_keys(spec, cls.keys, where)
        low, high = read_box(spec, where, context.state_dim, context.state_coordinates)
        dim = context.state_dim
        values = array(spec.get("values"), f"{where}.values", dim,
                       f"give a {dim}-D array of nonnegative numbers (rows = second coordinate)")
        if values.min() < 0 or values.sum() <= 0:
            raise ProblemError(f"{where}.values", "must be nonnegative and not all 0")
        return cls(low, high, values)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": floats(self.low), "high": floats(self.high),
                "values": floats(self.values)}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        plus = [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]]
        values: Any = plus[1] if dim == 1 else plus if dim == 2 else np.ones((3,) * dim).tolist()
        return {"kind": cls.kind, "low": [0.5] * dim, "high": [1.5] * dim, "values": values}

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    @property
    def cells(self) -> ParticleTarget:
        return self._cells

    def mean(self) -> np.ndarray:
        return self._cells.mean()

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.low, self.high

    def smoothed(self, y: "torch.Tensor", delta: float) -> "torch.Tensor":
        return self._cells.smoothed(y, delta)

    def cross_term(self, y: "torch.Tensor", a: "torch.Tensor", delta: float) -> "torch.Tensor":
        return self._cells.cross_term(y, a, delta)

    def constant(self, delta: float) -> float:
        return self._cells.constant(delta)

    def support_size(self, n: int) -> int:
        return len(self._cells.points)

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return self._cells.points, self._cells.weights
