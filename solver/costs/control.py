"""Control costs psi of Assumption 2.1, chosen by the problem's ``control_cost`` and ``p``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ProblemError
from ..lazy import torch
from ..reading import number
from ..registry import CONTROL_COSTS
from ..short_sums import inner


def read_p(spec: dict) -> float:
    """The exponent p > 1 of a problem (default 2)."""
    p = number(spec, "p", "p", 2.0)
    if p <= 1:
        raise ProblemError("p", f"must be > 1 (got {p}); use p = 2 for the W2 problem")
    return p


@CONTROL_COSTS.register
@dataclass(frozen=True)
class PowerCost:
    """psi(u) = |u|^p (p = 2: the kinetic energy of eq. 51, the W2 problem)."""

    p: float = 2.0
    kind: ClassVar[str] = "power"

    @classmethod
    def from_spec(cls, spec: dict) -> "PowerCost":
        return cls(read_p(spec))

    def to_spec(self) -> dict[str, Any]:
        return {"control_cost": self.kind, "p": self.p}

    @property
    def is_quadratic(self) -> bool:
        return self.p == 2.0

    @property
    def smooth(self) -> bool:
        """Twice continuously differentiable (p >= 2; below, psi'' grows without bound as u -> 0)."""
        return self.p >= 2.0

    def __call__(self, u: "torch.Tensor") -> "torch.Tensor":
        sq = inner(u, u)
        if self.p == 2.0:
            return sq
        return sq.clamp_min(1e-300) ** (0.5 * self.p)


@CONTROL_COSTS.register
@dataclass(frozen=True)
class PiecewiseCost:
    """psi(u) = |u|/p for |u| <= 1, |u|^p/p for |u| > 1 (continuous at |u| = 1)."""

    p: float = 2.0
    kind: ClassVar[str] = "piecewise"
    is_quadratic: ClassVar[bool] = False
    smooth: ClassVar[bool] = False  # kinks at u = 0 and |u| = 1

    @classmethod
    def from_spec(cls, spec: dict) -> "PiecewiseCost":
        return cls(read_p(spec))

    def to_spec(self) -> dict[str, Any]:
        return {"control_cost": self.kind, "p": self.p}

    def __call__(self, u: "torch.Tensor") -> "torch.Tensor":
        r = inner(u, u).clamp_min(1e-300).sqrt()
        return torch.where(r <= 1.0, r, r ** self.p) / self.p
