"""The uniform target on a box prod_d [low_d, high_d], in closed form:

    (K_delta * m_1)(y) = prod_d [Phi((high_d - y_d)/delta) - Phi((low_d - y_d)/delta)] / (high_d - low_d),
    C_{delta,m_1} = prod_d c(L_d) / L_d^2,  L_d = high_d - low_d,
    c(L) = int_0^L int_0^L phi_delta(x - y) dx dy = 2 [L (Phi(L/delta) - 1/2) - delta (1 - e^{-L^2/2delta^2}) / sqrt(2 pi)].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, check_keys, floats, vector
from ..registry import TARGETS


def read_box(spec: dict, where: str, dim: int, coordinates: str = "") -> tuple[np.ndarray, np.ndarray]:
    """``low`` and ``high`` corners of a box of dimension ``dim``, high > low (``coordinates``: their
    names, for messages)."""
    low = vector(spec.get("low"), f"{where}.low", dim, coordinates)
    high = vector(spec.get("high"), f"{where}.high", dim, coordinates)
    if np.any(high <= low):
        raise ProblemError(f"{where}.high", f"must be above {where}.low in every coordinate")
    return low, high


@TARGETS.register
@dataclass(frozen=True)
class UniformBoxTarget:
    """Uniform on the box [low, high]: exact K_delta * m_1 and C."""

    low: np.ndarray
    high: np.ndarray

    kind: ClassVar[str] = "uniform"
    keys: ClassVar[tuple[str, ...]] = ("kind", "low", "high")
    given_by_points: ClassVar[bool] = False  # the file lists the target's points (drawn and edited)
    discrete: ClassVar[bool] = False
    empirical: ClassVar[None] = None

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str = "target") -> "UniformBoxTarget":
        check_keys(spec, cls.keys, where)
        return cls(*read_box(spec, where, context.state_dim, context.state_coordinates))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "low": floats(self.low), "high": floats(self.high)}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        return {"kind": cls.kind, "low": [0.75] * dim, "high": [1.25] * dim}

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    def mean(self) -> np.ndarray:
        return 0.5 * (self.low + self.high)

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.low, self.high

    def smoothed(self, y: "torch.Tensor", delta: float) -> "torch.Tensor":
        lo = torch.as_tensor(self.low, dtype=y.dtype)
        hi = torch.as_tensor(self.high, dtype=y.dtype)
        per_dim = (torch.special.ndtr((hi - y) / delta) - torch.special.ndtr((lo - y) / delta)) / (hi - lo)
        return per_dim.prod(1)

    def cross_term(self, y: "torch.Tensor", a: "torch.Tensor", delta: float) -> "torch.Tensor":
        return a @ self.smoothed(y, delta)

    def constant(self, delta: float) -> float:
        out = 1.0
        for L in self.high - self.low:
            Phi = 0.5 * (1.0 + math.erf(L / (delta * math.sqrt(2.0))))
            c = 2.0 * (L * (Phi - 0.5) - delta * (1.0 - math.exp(-L * L / (2 * delta * delta)))
                       / math.sqrt(2 * math.pi))
            out *= c / (L * L)
        return out

    def support_size(self, n: int) -> int:
        return n

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if self.dim == 1:  # exact quantiles: the midpoints of n equal cells
            pts = self.low + (np.arange(n)[:, None] + 0.5) / n * (self.high - self.low)
        else:
            u = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=seed).draw(
                n, dtype=torch.float64).numpy()
            pts = self.low + u * (self.high - self.low)
        return pts, np.full(n, 1.0 / n)
