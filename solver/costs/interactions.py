"""Pairwise interactions (``INTERACTIONS``): L_N(y_i) = (1/N) sum_k W(y_i - y_k) at each time point."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..kernels import gaussian_self_hessian, gaussian_self_sums
from ..lazy import torch
from ..reading import Context, check_keys, number
from ..registry import INTERACTIONS


@INTERACTIONS.register
@dataclass(frozen=True)
class GaussianInteraction:
    """W(z) = strength exp(-|z|^2 / (2 width^2)); strength > 0 spreads particles (congestion)."""

    strength: float
    width: float
    dim: int
    kind: ClassVar[str] = "gaussian"
    smooth: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str) -> "GaussianInteraction":
        check_keys(spec, ("kind", "strength", "width"), where)
        return cls(number(spec, "strength", f"{where}.strength"),
                   number(spec, "width", f"{where}.width", positive=True), context.dim)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "strength": self.strength, "width": self.width}

    def mean_field(self, y: "torch.Tensor") -> "torch.Tensor":
        """sum_j (1/N^2) sum_{i,k} W(y_ij - y_kj) over the time points j of y (N, M, D)."""
        n = y.shape[0]
        a = torch.full((n,), 1.0 / n, dtype=y.dtype)
        return self.strength * gaussian_self_sums(y[..., : self.dim], a, self.width)

    def hessian(self, y: "torch.Tensor") -> "torch.Tensor":
        """(N, dim, N, dim): the Hessian of (1/N^2) sum_{i,k} W(y_i - y_k) for one time point's positions
        y (N, >= dim), in closed form (``kernels.gaussian_self_hessian``)."""
        n = y.shape[0]
        a = torch.full((n,), 1.0 / n, dtype=y.dtype)
        return gaussian_self_hessian(y[:, : self.dim], a, self.width, self.strength)


@INTERACTIONS.register
@dataclass(frozen=True)
class QuadraticInteraction:
    """W(z) = (strength/2) |z|^2; strength > 0 pulls particles together (aggregation).

    (1/N^2) sum_{i,k} |y_i - y_k|^2 / 2 = mean|y|^2 - |mean y|^2, so the sum costs O(N).
    """

    strength: float
    dim: int
    kind: ClassVar[str] = "quadratic"
    #: O(N) to evaluate: its Hessian comes from Hessian-vector products (``optimizers.coupled_hessian``)
    hessian: ClassVar[None] = None
    smooth: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str) -> "QuadraticInteraction":
        check_keys(spec, ("kind", "strength"), where)
        return cls(number(spec, "strength", f"{where}.strength"), context.dim)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "strength": self.strength}

    def mean_field(self, y: "torch.Tensor") -> "torch.Tensor":
        pos = y[..., : self.dim]
        return self.strength * ((pos * pos).sum(-1).mean(0) - (pos.mean(0) ** 2).sum(-1)).sum()
