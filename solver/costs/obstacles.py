"""Obstacles: shapes kept out of by the penalty of eq. (59), L_N(y) = c_Omega sum_k L_k(y).

For a disc, L_k(y) = max(r_k^2 - |y - c_k|^2, 0) (eq. 59). Written with the depth s = r - |y - c| of a
point inside, r^2 - |y - c|^2 = s (2r - s); other shapes use the same expression with their own depth
(signed distance to the boundary, > 0 inside) and a length of their own in place of r.

A shape class (registered in ``OBSTACLES``) has ``kind``, ``from_spec`` / ``to_spec``, its penalty
``penalty(pos)`` (torch, unweighted) and ``depth(pos)`` (numpy), and what the explorer needs to draw,
place, move and resize it: ``outline()``, ``placed_at(center, size)``, ``center``, ``size``,
``moved_to(center)``, ``resized(size)``, ``contains(point)``. ``Obstacles`` holds the shapes of a
problem and the weight c_Omega.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, array, check_keys, floats, mapping, number
from ..registry import OBSTACLES


@OBSTACLES.register
@dataclass(frozen=True)
class Circle:
    """A disc (a ball in higher dimensions) of the given centre and radius: eq. (59)."""

    center: np.ndarray
    radius: float

    kind: ClassVar[str] = "circle"
    smooth: ClassVar[bool] = False  # the penalty has a kink at the edge

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str) -> "Circle":
        check_keys(spec, ("kind", "center", "radius"), where)
        c = array(spec.get("center"), f"{where}.center", 1, "give the centre as [x, y]")
        if c.shape[0] > context.dim:
            raise ProblemError(f"{where}.center", f"has more than {context.dim} coordinates")
        return cls(c, number(spec, "radius", f"{where}.radius", positive=True))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": floats(self.center), "radius": self.radius}

    @classmethod
    def placed_at(cls, center: np.ndarray, size: float) -> "Circle":
        return cls(np.asarray(center, dtype=float), float(size))

    @property
    def size(self) -> float:
        return self.radius

    def moved_to(self, center: np.ndarray) -> "Circle":
        c = self.center.copy()
        c[: len(center)] = center
        return dataclasses.replace(self, center=c)

    def resized(self, size: float) -> "Circle":
        return dataclasses.replace(self, radius=float(size))

    def penalty(self, pos: "torch.Tensor") -> "torch.Tensor":
        return penalty_sum([self], pos)

    def depth(self, pos: np.ndarray) -> np.ndarray:
        return self.radius - np.linalg.norm(pos[..., : len(self.center)] - self.center, axis=-1)

    def contains(self, point: np.ndarray) -> bool:
        return bool(self.depth(np.asarray(point, dtype=float)) >= 0)

    def outline(self, n: int = 48) -> np.ndarray:
        theta = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        return self.center[:2] + self.radius * np.column_stack([np.cos(theta), np.sin(theta)])

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.center - self.radius, self.center + self.radius

    @staticmethod
    def penalty_of(circles: list["Circle"], pos: "torch.Tensor") -> "torch.Tensor":
        return penalty_sum(circles, pos)


def penalty_sum(circles: list[Circle], pos: "torch.Tensor") -> "torch.Tensor":
    """sum_k max(r_k^2 - |y - c_k|^2, 0) at every point of ``pos`` (..., D), circles of equal
    centre dimension vectorized together."""
    total = pos.new_zeros(pos.shape[:-1])
    for dim in sorted({len(c.center) for c in circles}):
        group = [c for c in circles if len(c.center) == dim]
        centers = torch.as_tensor(np.stack([c.center for c in group]), dtype=pos.dtype)
        r2 = torch.as_tensor([c.radius for c in group], dtype=pos.dtype) ** 2
        d2 = ((pos[..., None, :dim] - centers) ** 2).sum(-1)
        total = total + (r2 - d2).clamp_min(0.0).sum(-1)
    return total


@dataclass(frozen=True)
class Obstacles:
    """The obstacles of a problem: L_N(y) = c_Omega sum_k L_k(y) (eq. 59), c_Omega = ``weight``
    (``weight_spec`` "auto" means 1/(h eps), section 4.5)."""

    shapes: tuple[Any, ...]
    weight: float
    weight_spec: Any = "auto"

    @classmethod
    def from_spec(cls, items: Any, weight: Any, context: Context) -> "Obstacles | None":
        """``obstacles`` (a list of shapes; the kind defaults to "circle") and ``obstacle_weight``."""
        if not items:
            return None
        if not isinstance(items, list):
            raise ProblemError("obstacles", "must be a list such as [{\"center\": [1, 1], \"radius\": 0.2}]")
        shapes = []
        for k, item in enumerate(items):
            where = f"obstacles[{k}]"
            item = mapping(item, where, '{"center": [1, 1], "radius": 0.2}')
            shapes.append(OBSTACLES[OBSTACLES.kind_of(item, where)].from_spec(item, context, where))
        if weight == "auto":
            value = 1.0 / (context.h * context.eps)
        else:
            value = number({"obstacle_weight": weight}, "obstacle_weight", "obstacle_weight", positive=True)
            weight = value
        return cls(tuple(shapes), value, weight)

    def to_spec(self) -> dict[str, Any]:
        return {"obstacles": [s.to_spec() for s in self.shapes], "obstacle_weight": self.weight_spec}

    @property
    def smooth(self) -> bool:
        return all(s.smooth for s in self.shapes)

    def __call__(self, y: "torch.Tensor") -> "torch.Tensor":
        """L_N at every point of y (..., D), summed over the obstacles."""
        total = y.new_zeros(y.shape[:-1])
        for kind in dict.fromkeys(type(s) for s in self.shapes):
            total = total + kind.penalty_of([s for s in self.shapes if type(s) is kind], y)
        return self.weight * total

    def depth(self, y: np.ndarray) -> np.ndarray:
        """How far each point lies inside the deepest obstacle (<= 0 outside all of them)."""
        return np.max([s.depth(np.asarray(y)) for s in self.shapes], axis=0)
