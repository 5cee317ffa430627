"""External potentials V(y) (``POTENTIALS``), entering L_N as V at every time point."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, array, check_keys, floats, number
from ..registry import POTENTIALS
from ..short_sums import inner


def read_center(spec: dict, where: str, context: Context) -> np.ndarray:
    """The centre (acting on the first len(center) coordinates of the positions)."""
    c = array(spec.get("center"), f"{where}.center", 1, "give the centre as [x, y]")
    if c.shape[0] > context.dim:
        raise ProblemError(f"{where}.center", f"has more than {context.dim} coordinates")
    return c


@POTENTIALS.register
@dataclass(frozen=True)
class QuadraticPotential:
    """V(y) = (weight/2) |y - center|^2: a harmonic well (weight > 0) or hill."""

    center: np.ndarray
    weight: float
    kind: ClassVar[str] = "quadratic"
    smooth: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str) -> "QuadraticPotential":
        check_keys(spec, ("kind", "center", "weight"), where)
        return cls(read_center(spec, where, context), number(spec, "weight", f"{where}.weight"))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": floats(self.center), "weight": self.weight}

    def __call__(self, y: "torch.Tensor") -> "torch.Tensor":
        c = torch.as_tensor(self.center, dtype=y.dtype)
        d = y[..., : c.shape[0]] - c
        return 0.5 * self.weight * inner(d, d)


@POTENTIALS.register
@dataclass(frozen=True)
class GaussianBump:
    """V(y) = height exp(-|y - center|^2 / (2 width^2)): a soft obstacle or, with height < 0, a well."""

    center: np.ndarray
    height: float
    width: float
    kind: ClassVar[str] = "gaussian"
    smooth: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str) -> "GaussianBump":
        check_keys(spec, ("kind", "center", "height", "width"), where)
        return cls(read_center(spec, where, context), number(spec, "height", f"{where}.height"),
                   number(spec, "width", f"{where}.width", positive=True))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": floats(self.center), "height": self.height, "width": self.width}

    def __call__(self, y: "torch.Tensor") -> "torch.Tensor":
        c = torch.as_tensor(self.center, dtype=y.dtype)
        d = y[..., : c.shape[0]] - c
        return self.height * torch.exp(-inner(d, d) / (2 * self.width**2))
