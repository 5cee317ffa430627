"""Empirical targets m_1 = sum_k b_k delta_{w_k} (eq. 55 when b_k = 1/N)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..kernels import gaussian_row_sums, mollifier_pair_sum
from ..lazy import torch
from ..reading import Context, array, check_keys, floats
from ..registry import TARGETS

#: Weights that sum to 1 within this are kept as given (normalizing again would change their last
#: bits, and a problem written out by ``to_spec`` must read back exactly).
NORMALIZED = 1e-12


def normalized(weights: np.ndarray) -> np.ndarray:
    """Weights divided by their sum, unless they already sum to 1 (to rounding)."""
    total = weights.sum()
    return weights if abs(total - 1.0) <= NORMALIZED else weights / total


@TARGETS.register
@dataclass(frozen=True)
class ParticleTarget:
    """Particles w_k with weights b_k: K_delta * m_1 and C are exact pair sums."""

    points: np.ndarray  # (K, D): full states (positions, then velocities under acceleration control)
    weights: np.ndarray  # (K,), summing to 1
    velocity_columns: int = 0  # trailing columns of ``points`` written as "velocities" in the file

    kind: ClassVar[str] = "particles"
    keys: ClassVar[tuple[str, ...]] = ("kind", "points", "weights", "velocities")
    given_by_points: ClassVar[bool] = True  # the file lists the target's points (drawn and edited)
    discrete: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str = "target") -> "ParticleTarget":
        check_keys(spec, cls.keys, where)
        states, velocity_columns = context.dynamics.read_states(spec, where)
        if states.shape[1] != context.state_dim:
            raise ProblemError(f"{where}.points", f"must have dimension {context.state_dim} like the "
                                                  f"source states (got {states.shape[1]})")
        w = spec.get("weights")
        if w is None:
            weights = np.full(len(states), 1.0 / len(states))
        else:
            weights = array(w, f"{where}.weights", 1, "give one nonnegative weight per target point")
            if weights.shape[0] != len(states) or weights.min() < 0 or weights.sum() <= 0:
                raise ProblemError(f"{where}.weights", "must be one nonnegative weight per point, not all zero")
            weights = normalized(weights)
        return cls(states, weights, velocity_columns)

    def to_spec(self) -> dict[str, Any]:
        d = self.points.shape[1] - self.velocity_columns
        out: dict[str, Any] = {"kind": self.kind, "points": floats(self.points[:, :d])}
        if self.velocity_columns:
            out["velocities"] = floats(self.points[:, d:])
        if not np.all(self.weights == 1.0 / len(self.weights)):
            out["weights"] = floats(self.weights)
        return out

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        return {"kind": cls.kind, "points": [[1.0] * dim]}

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def empirical(self) -> tuple[np.ndarray, np.ndarray]:
        return self.points, self.weights

    def mean(self) -> np.ndarray:
        return self.weights @ self.points

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.points.min(0), self.points.max(0)

    def smoothed(self, y: "torch.Tensor", delta: float) -> "torch.Tensor":
        w = torch.as_tensor(self.points, dtype=y.dtype)
        b = torch.as_tensor(self.weights, dtype=y.dtype)
        return gaussian_row_sums(y, w, b, delta, normalized=True)

    def tensors(self) -> tuple["torch.Tensor", "torch.Tensor"]:
        """The points and weights as torch tensors, made once (the kernels keep the points' sorted cells
        while this tensor lives)."""
        if "_tensors" not in self.__dict__:
            object.__setattr__(self, "_tensors", (torch.as_tensor(self.points, dtype=torch.float64),
                                                  torch.as_tensor(self.weights, dtype=torch.float64)))
        return self.__dict__["_tensors"]

    def cross_term(self, y: "torch.Tensor", a: "torch.Tensor", delta: float) -> "torch.Tensor":
        """sum_i a_i (K_delta * m_1)(y_i) = sum_ik a_i b_k K_delta(y_i - w_k)."""
        w, b = self.tensors()
        return mollifier_pair_sum(y, w, a, b, delta)

    def constant(self, delta: float) -> float:
        w = torch.as_tensor(self.points, dtype=torch.float64)
        b = torch.as_tensor(self.weights, dtype=torch.float64)
        return float(mollifier_pair_sum(w, w, b, b, delta))

    def support_size(self, n: int) -> int:
        return len(self.points)

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The target itself (an exact OT assignment needs no approximation)."""
        return self.points, self.weights
