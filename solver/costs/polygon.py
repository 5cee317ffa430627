"""Polygon obstacles: any simple polygon in the plane, given by its vertices.

With s(y) the depth of a point inside the polygon (its distance to the boundary; <= 0 outside) and
rho the polygon's inradius (the largest depth), the penalty is

    L(y) = s (2 rho - s)  for s > 0,  0 outside,

the expression eq. (59) takes for a disc written with its depth (r^2 - |y - c|^2 = s (2r - s),
s = r - |y - c|): a regular polygon with many vertices gets the disc's penalty. It grows like 2 rho s
just inside the boundary, so the obstacle weight acts as it does for circles.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, check_keys, floats, points
from ..registry import OBSTACLES
from ..short_sums import inner
from .obstacles import deepest_along, hinge

#: The inradius is found on grids of this many points a side, each refined around the best point.
INRADIUS_GRID, INRADIUS_ROUNDS = 64, 10
#: Two edges count as equally near a segment's deepest point when their distances differ by less than
#: this fraction of the segment's length (``deepest_along`` locates the point far more finely).
KINK_TOLERANCE = 1e-6


def crossing_edges(vertices: np.ndarray) -> tuple[int, int] | None:
    """The first pair (i, j) of edges i -> i+1 and j -> j+1 that are not neighbours and touch, or None
    (all pairs at once: signs of the orientation determinants)."""
    a, b = vertices, np.roll(vertices, -1, axis=0)

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])

    P, Q, R, S = a[:, None], b[:, None], a[None, :], b[None, :]
    touch = (orient(R, S, P) * orient(R, S, Q) <= 0) & (orient(P, Q, R) * orient(P, Q, S) <= 0)
    K = len(vertices)
    i, j = np.triu_indices(K, k=2)
    neighbours = (j + 1) % K == i
    hits = np.flatnonzero(touch[i, j] & ~neighbours)
    return (int(i[hits[0]]), int(j[hits[0]])) if len(hits) else None


def signed_depth(vertices: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Distance to the polygon's boundary, positive inside and negative outside (numpy, (..., 2))."""
    a, b = vertices, np.roll(vertices, -1, axis=0)
    p = pos[..., None, :2]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    distance = np.sqrt((((p - a) - t[..., None] * ab) ** 2).sum(-1).min(-1))
    return np.where(_inside(a, b, pos[..., :2]), distance, -distance)


def _edge_gaps(vertices: "torch.Tensor", q: "torch.Tensor") -> "torch.Tensor":
    """The vectors (..., K, 2) from each edge's nearest point to the points q (..., 2)."""
    edge = torch.roll(vertices, -1, 0) - vertices
    p = q[..., None, :]
    u = (inner(p - vertices, edge) / inner(edge, edge)).clamp(0.0, 1.0)
    return (p - vertices) - u[..., None] * edge


def _inside(a: Any, b: Any, pos: Any) -> Any:
    """Even-odd rule (a ray to +x crosses the boundary an odd number of times); numpy or torch."""
    x, y = pos[..., None, 0], pos[..., None, 1]
    straddles = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    crossings = straddles & (x < x_cross)
    return crossings.sum(-1) % 2 == 1


def inradius(vertices: np.ndarray) -> float:
    """The largest depth of a point inside the polygon (grid search, refined around the best point)."""
    low, high = vertices.min(0), vertices.max(0)
    best, value = 0.5 * (low + high), -np.inf
    half = 0.5 * (high - low)
    for _ in range(INRADIUS_ROUNDS):
        axes = [np.linspace(best[k] - half[k], best[k] + half[k], INRADIUS_GRID) for k in range(2)]
        grid = np.stack(np.meshgrid(*axes), -1).reshape(-1, 2)
        depth = signed_depth(vertices, grid)
        if depth.max() > value:
            value, best = float(depth.max()), grid[depth.argmax()]
        half = half * 4.0 / INRADIUS_GRID
    return value


@OBSTACLES.register
@dataclass(frozen=True)
class Polygon:
    """A simple polygon given by its vertices (walls, boxes, any outline): eq. (59) written with its depth."""

    vertices: np.ndarray  # (K, 2)
    kind: ClassVar[str] = "polygon"
    smooth: ClassVar[bool] = False  # a kink at the edge, as for discs
    _inradius: float = field(init=False, repr=False, compare=False)
    _orientation: float = field(init=False, repr=False, compare=False)  # +1 counter-clockwise, -1 clockwise
    _convex: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inradius", inradius(self.vertices))
        edge = np.roll(self.vertices, -1, 0) - self.vertices
        turns = edge[:, 0] * np.roll(edge, -1, 0)[:, 1] - edge[:, 1] * np.roll(edge, -1, 0)[:, 0]
        x, y = self.vertices.T
        object.__setattr__(self, "_orientation", float(np.sign((x * np.roll(y, -1) - np.roll(x, -1) * y).sum())))
        object.__setattr__(self, "_convex", bool((turns * self._orientation >= 0).all()))

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str) -> "Polygon":
        check_keys(spec, ("kind", "vertices"), where)
        if context.dim != 2:
            raise ProblemError(where, f"polygons live in the plane, but the positions have dimension "
                                      f"{context.dim}; use circles")
        v = points(spec.get("vertices"), f"{where}.vertices", 2, "give the corners as [[x, y], ...]")
        if len(v) < 3:
            raise ProblemError(f"{where}.vertices", f"needs at least 3 corners (got {len(v)})")
        crossing = crossing_edges(v)
        area = 0.5 * abs(float(np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])))
        if area <= 1e-12 * float(np.ptp(v, axis=0).max()) ** 2:
            raise ProblemError(f"{where}.vertices", "enclose no area; give the corners of a polygon in order")
        if crossing is not None:
            raise ProblemError(f"{where}.vertices", f"edges {crossing[0]} and {crossing[1]} cross; list the "
                                                    "corners in order around the polygon")
        return cls(v)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "vertices": floats(self.vertices)}

    @classmethod
    def placed_at(cls, center: np.ndarray, size: float) -> "Polygon":
        """A square centred at ``center`` whose corners lie at distance ``size`` from it."""
        corners = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]) / np.sqrt(2.0)
        return cls(np.asarray(center, dtype=float)[:2] + size * corners)

    @property
    def center(self) -> np.ndarray:
        """The centroid of the polygon's area."""
        x, y = self.vertices[:, 0], self.vertices[:, 1]
        cross = x * np.roll(y, -1) - np.roll(x, -1) * y
        area = 0.5 * cross.sum()
        return np.array([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()]) / (6 * area)

    @property
    def inradius(self) -> float:
        """The largest depth inside: the penalty s (2 rho - s) peaks at inradius^2."""
        return self._inradius

    @property
    def size(self) -> float:
        """The distance from the centre to the farthest corner."""
        return float(np.linalg.norm(self.vertices - self.center, axis=1).max())

    def moved_to(self, center: np.ndarray) -> "Polygon":
        return dataclasses.replace(self, vertices=self.vertices + (np.asarray(center, dtype=float)[:2] - self.center))

    def resized(self, size: float) -> "Polygon":
        c = self.center
        return dataclasses.replace(self, vertices=c + (self.vertices - c) * (float(size) / self.size))

    def depth(self, pos: np.ndarray) -> np.ndarray:
        return signed_depth(self.vertices, np.asarray(pos, dtype=float))

    def contains(self, point: np.ndarray) -> bool:
        return bool(self.depth(np.asarray(point, dtype=float)) >= 0)

    def outline(self) -> np.ndarray:
        return self.vertices.copy()

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(0), self.vertices.max(0)

    def penalty(self, pos: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
        """s (2 rho - s) at every point of ``pos`` (..., D) whose first two coordinates lie inside
        (``hinge`` of the same expression with s signed, smoothed by ``smoothing``)."""
        a = torch.as_tensor(self.vertices, dtype=pos.dtype)
        gap = _edge_gaps(a, pos[..., :2])
        s = inner(gap, gap).min(-1).values.clamp_min(1e-300).sqrt()
        s = torch.where(_inside(a, torch.roll(a, -1, 0), pos[..., :2].detach()), s, -s)
        return hinge(s * (2 * self._inradius - s), smoothing)

    @staticmethod
    def penalty_of(polygons: list["Polygon"], pos: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
        return sum(p.penalty(pos, smoothing) for p in polygons)

    @staticmethod
    def segment_penalty_of(polygons: list["Polygon"], a: "torch.Tensor", b: "torch.Tensor",
                           smoothing: float = 0.0) -> "torch.Tensor":
        """The penalty of each segment [a, b] (..., D) at its deepest point (``deepest``)."""
        total = a.new_zeros(a.shape[:-1])
        for p in polygons:
            total = total + p.penalty_along(a, b, p.deepest(a.detach(), b.detach()), smoothing)
        return total

    def deepest(self, a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
        """The parameter t of each segment's deepest point inside. Convex: inside, the depth is the least
        distance to the edges' lines, min_k (alpha_k + beta_k t), whose maximum over [0, 1] lies at an end
        or where two lines' distances cross, so it is found exactly among those candidates at once.
        Otherwise ``deepest_along``'s search."""
        if not self._convex:
            return torch.as_tensor(deepest_along(self.depth, a.numpy(), b.numpy()), dtype=a.dtype)
        A = torch.as_tensor(self.vertices, dtype=a.dtype)
        edge = torch.roll(A, -1, 0) - A
        inward = torch.stack([-edge[:, 1], edge[:, 0]], 1) * self._orientation / edge.norm(dim=1, keepdim=True)
        alpha = inner(a[..., None, :2] - A, inward)  # (..., K): distances of a to the lines
        beta = inner((b - a)[..., None, :2], inward)
        k, l = torch.triu_indices(len(A), len(A), 1)
        denominator = beta[..., k] - beta[..., l]
        crossing = (alpha[..., l] - alpha[..., k]) / torch.where(denominator == 0, torch.ones_like(denominator),
                                                                   denominator)
        ends = torch.stack([torch.zeros_like(alpha[..., 0]), torch.ones_like(alpha[..., 0])], -1)
        t = torch.cat([ends, crossing.clamp(0.0, 1.0)], -1)  # (..., C) candidates
        depth = (alpha[..., None, :] + t[..., :, None] * beta[..., None, :]).min(-1).values
        return t.gather(-1, depth.argmax(-1, keepdim=True)).squeeze(-1)

    def penalty_along(self, a: "torch.Tensor", b: "torch.Tensor", t: "torch.Tensor",
                      smoothing: float = 0.0) -> "torch.Tensor":
        """s (2 rho - s) with s = max over t of the depth of a + t (b - a), given the maximizer ``t``.

        The value is the depth at ``t``. Its gradient: where one edge is nearest, Danskin's theorem
        (the gradient at the fixed maximizer). Where two edges i, j are equally near and the depth rises
        along one and falls along the other (slopes s_i, s_j in t), the maximum sits on their crossing
        and moves with it: d_i + s_i (d_j - d_i) / (s_i - s_j), equal to d_i in value, has the gradient
        of the crossing (the implicit function theorem)."""
        A = torch.as_tensor(self.vertices, dtype=a.dtype)
        ab = b[..., :2] - a[..., :2]
        q = a[..., :2] + t[..., None] * ab
        gap = _edge_gaps(A, q)
        dist = inner(gap, gap).clamp_min(1e-300).sqrt()
        slope = inner(gap, ab[..., None, :]) / dist  # d dist / dt
        two = dist.detach().topk(2, dim=-1, largest=False).indices
        (d_i, d_j), (s_i, s_j) = (x.gather(-1, two).unbind(-1) for x in (dist, slope))
        tied = ((d_j - d_i).detach() <= KINK_TOLERANCE * ab.detach().norm(dim=-1)) & (s_i * s_j < 0).detach()
        shift = torch.where(tied, (d_j - d_i) / torch.where(tied, s_i - s_j, torch.ones_like(s_i)),
                            torch.zeros_like(d_i))
        depth = d_i + s_i * shift
        depth = torch.where(_inside(A, torch.roll(A, -1, 0), q.detach()), depth, -depth)
        return hinge(depth * (2 * self._inradius - depth), smoothing)

    def segment_depth(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The depth of each segment's deepest point (``deepest_along``)."""
        t = deepest_along(self.depth, a, b)
        return self.depth(a + t[..., None] * (b - a))
