"""Polygon obstacles: any simple polygon in the plane, given by its vertices.

With s(y) the depth of a point inside the polygon (its distance to the boundary; <= 0 outside) and
rho the polygon's inradius (the largest depth), the penalty is

    L(y) = s (2 rho - s)  for s > 0,  0 outside,

the expression eq. (59) takes for a disc written with its depth (r^2 - |y - c|^2 = s (2r - s),
s = r - |y - c|): a regular polygon with many vertices gets the disc's penalty. It grows like 2 rho s
just inside the boundary, so the obstacle weight acts as it does for circles.

A convex polygon is the intersection of the half-planes alpha_k(y) = n_k . (y - v_k) >= 0 (n_k the inward
unit normal of edge k, v_k its first corner), and inside it s(y) = min_k alpha_k(y): the distance to the
nearest edge's line. Its penalty, at points and along segments, is then computed in closed form with its
gradient and Hessian (``convex_terms``, ``convex_segment_terms``, ``convex_hessians``); other polygons
take the distance to the edges themselves through automatic differentiation.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, check_keys, floats, points
from ..registry import OBSTACLES
from ..short_sums import inner
from .obstacles import (add_point_blocks, add_segment_blocks, by_trajectory, closed_form, deepest_along,
                        hinge, hinge_slopes)

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
    _normals: np.ndarray = field(init=False, repr=False, compare=False)  # (K, 2): inward unit normals n_k
    _offsets: np.ndarray = field(init=False, repr=False, compare=False)  # (K,): n_k . v_k

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inradius", inradius(self.vertices))
        edge = np.roll(self.vertices, -1, 0) - self.vertices
        turns = edge[:, 0] * np.roll(edge, -1, 0)[:, 1] - edge[:, 1] * np.roll(edge, -1, 0)[:, 0]
        x, y = self.vertices.T
        object.__setattr__(self, "_orientation", float(np.sign((x * np.roll(y, -1) - np.roll(x, -1) * y).sum())))
        object.__setattr__(self, "_convex", bool((turns * self._orientation >= 0).all()))
        normals = np.stack([-edge[:, 1], edge[:, 0]], 1) * self._orientation / np.linalg.norm(edge, axis=1, keepdims=True)
        object.__setattr__(self, "_normals", normals)
        object.__setattr__(self, "_offsets", (normals * self.vertices).sum(1))

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str) -> "Polygon":
        check_keys(spec, ("kind", "vertices"), where)
        if context.dim != 2:
            raise ProblemError(where, f"polygons live in the plane, but the positions have dimension "
                                      f"{context.dim}; use circles")
        v = points(spec.get("vertices"), f"{where}.vertices", 2, "give the corners as [[x, y], ...]")
        if len(v) < 3:
            raise ProblemError(f"{where}.vertices", f"needs at least 3 corners (got {len(v)})")
        same = np.flatnonzero((v == np.roll(v, -1, axis=0)).all(1))
        if len(same):
            k = int(same[0])
            raise ProblemError(f"{where}.vertices", f"corners {k} and {(k + 1) % len(v)} are the same point; "
                                                    "remove one of them")
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

    @functools.cached_property
    def lines(self) -> tuple["torch.Tensor", "torch.Tensor"]:
        """The inward unit normals n_k (K, 2) and n_k . v_k (K,) as float64 tensors (``half_planes``)."""
        return torch.as_tensor(self._normals), torch.as_tensor(self._offsets)

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
        (``hinge`` of the same expression with s signed, smoothed by ``smoothing``), s the distance to the
        nearest edge: any polygon (``penalty_of`` takes convex ones in closed form)."""
        a = torch.as_tensor(self.vertices, dtype=pos.dtype)
        gap = _edge_gaps(a, pos[..., :2])
        s = inner(gap, gap).min(-1).values.clamp_min(1e-300).sqrt()
        s = torch.where(_inside(a, torch.roll(a, -1, 0), pos[..., :2].detach()), s, -s)
        return hinge(s * (2 * self._inradius - s), smoothing)

    @staticmethod
    def penalty_of(polygons: list["Polygon"], pos: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
        """The penalty at every point of ``pos`` (..., D), summed over the polygons: convex ones in closed
        form (``convex_terms``, with its gradient through ``closed_form``), others by ``penalty``."""
        convex = [p for p in polygons if p._convex]
        total = sum((p.penalty(pos, smoothing) for p in polygons if not p._convex), pos.new_zeros(pos.shape[:-1]))
        if convex:
            total = total + closed_form(lambda q, gradient: convex_terms(convex, q, smoothing, gradient), pos)
        return total

    @staticmethod
    def segment_penalty_of(polygons: list["Polygon"], a: "torch.Tensor", b: "torch.Tensor",
                           smoothing: float = 0.0) -> "torch.Tensor":
        """The penalty of each segment [a, b] (..., D) at its deepest point, summed over the polygons:
        convex ones in closed form (``convex_segment_terms``), others by ``penalty_along`` at the deepest
        point ``deepest_along`` finds."""
        convex = [p for p in polygons if p._convex]
        total = a.new_zeros(a.shape[:-1])
        for p in polygons:
            if not p._convex:
                t = torch.as_tensor(deepest_along(p.depth, a.detach().numpy(), b.detach().numpy()), dtype=a.dtype)
                total = total + p.penalty_along(a, b, t, smoothing)
        if convex:
            total = total + closed_form(
                lambda p, q, gradient: convex_segment_terms(convex, p, q, smoothing, gradient), a, b)
        return total

    @staticmethod
    def hessians_of(polygons: list["Polygon"], pos: "torch.Tensor", smoothing: float = 0.0,
                    segments: bool = False) -> "torch.Tensor | None":
        """``convex_hessians`` when every polygon is convex, else None (automatic differentiation)."""
        if not all(p._convex for p in polygons):
            return None
        return convex_hessians(polygons, pos, smoothing, segments)

    def penalty_along(self, a: "torch.Tensor", b: "torch.Tensor", t: "torch.Tensor",
                      smoothing: float = 0.0) -> "torch.Tensor":
        """s (2 rho - s) with s = max over t of the depth of a + t (b - a), given the maximizer ``t``
        (any polygon; for convex ones ``convex_segment_terms`` computes the same in closed form).

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


def half_planes(polygon: Polygon, like: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """(n (K, 2), n_k . v_k (K,)) of a convex polygon in the dtype of ``like``: alpha_k(y) = y . n_k -
    n_k . v_k (made once per polygon)."""
    normals, offsets = polygon.lines
    return normals.to(like.dtype), offsets.to(like.dtype)


def line_distances(polygon: Polygon, y: "torch.Tensor") -> "torch.Tensor":
    """alpha_k(y) (..., K): the signed distances of the points y (..., D) to a convex polygon's edge lines
    (positive on the inner side; inside, the depth is their least)."""
    normals, offsets = half_planes(polygon, y)
    return y[..., :2] @ normals.T - offsets


@functools.cache
def _pairs(K: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """The index pairs k < l of K lines."""
    return tuple(torch.triu_indices(K, K, 1))


def convex_terms(polygons: list[Polygon], pos: "torch.Tensor", smoothing: float = 0.0, gradient: bool = True
                 ) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """(values, gradients) of the penalty of convex polygons at every point of ``pos`` (..., D), summed
    over them: h(s (2 rho - s)) with s = min_k alpha_k(y) (``hinge`` h; outside, s < 0 and the term is 0),
    and (with ``gradient``, else None) h'(.) (2 rho - 2 s) n_k for the nearest line k (s is linear there)."""
    value, grad = pos.new_zeros(pos.shape[:-1]), torch.zeros_like(pos) if gradient else None
    for polygon in polygons:
        s, nearest = line_distances(polygon, pos).min(-1)
        rise = 2.0 * polygon._inradius - s  # d(s (2 rho - s)) / ds is 2 (rho - s) = rise - s
        g = s * rise
        value = value + hinge(g, smoothing)
        if gradient:
            normals = half_planes(polygon, pos)[0]
            grad[..., :2] += (hinge_slopes(g, smoothing)[0] * (rise - s))[..., None] * normals[nearest]
    return value, grad


def deepest_on_lines(alpha: "torch.Tensor", beta: "torch.Tensor") -> "torch.Tensor":
    """The parameter t in [0, 1] of the deepest point of each segment in a convex polygon, given the
    distances alpha (..., K) of its start to the edges' lines and their rates beta along it: the depth
    min_k (alpha_k + beta_k t) is concave and piecewise linear, so its maximum lies at an end or where two
    lines cross, and it is found exactly among those candidates at once."""
    K = alpha.shape[-1]
    k, l = _pairs(K)
    denominator = beta[..., k] - beta[..., l]
    crossing = (alpha[..., l] - alpha[..., k]) / torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    ends = torch.stack([torch.zeros_like(alpha[..., 0]), torch.ones_like(alpha[..., 0])], -1)
    t = torch.cat([ends, crossing.clamp(0.0, 1.0)], -1)  # (..., C) candidates
    depth = (alpha[..., None, :] + t[..., :, None] * beta[..., None, :]).min(-1).values
    return t.gather(-1, depth.argmax(-1, keepdim=True)).squeeze(-1)


@dataclass
class _SegmentDepth:
    """The depth f of each segment's deepest point in a convex polygon and what its derivatives need:
    the nearest line i and the second nearest j there, their alpha and beta, whether the deepest point
    is their crossing (``tied``), its parameter t (the crossing's for tied segments) and the weights
    (w_i, w_j) with grad f = (1 - t) m by a and t m by b, m = w_i n_i + w_j n_j."""

    depth: "torch.Tensor"
    i: "torch.Tensor"
    j: "torch.Tensor"
    alpha: tuple["torch.Tensor", "torch.Tensor"]
    beta: tuple["torch.Tensor", "torch.Tensor"]
    tied: "torch.Tensor"
    t: "torch.Tensor"
    weights: tuple["torch.Tensor", "torch.Tensor"]

    def rows(self, keep: "torch.Tensor") -> "_SegmentDepth":
        """The segments selected by ``keep``."""
        return _SegmentDepth(*(tuple(x[keep] for x in v) if isinstance(v, tuple) else v[keep]
                               for v in (getattr(self, f.name) for f in dataclasses.fields(self))))


def segment_depth_on_lines(polygon: Polygon, a: "torch.Tensor", b: "torch.Tensor") -> _SegmentDepth:
    """The depth f of the deepest point of each segment [a, b] (..., D) in a convex polygon.

    At the deepest parameter t* (``deepest_on_lines``, held fixed: Danskin's theorem) f = alpha_i + beta_i t*
    for the nearest line i, linear in (a, b). Where the second nearest line j is as near (within
    ``KINK_TOLERANCE`` of the length) and the depth rises along one and falls along the other, the deepest
    point is their crossing and moves with it: f = (beta_i alpha_j - alpha_i beta_j) / (beta_i - beta_j),
    the crossing t_c = (alpha_j - alpha_i) / (beta_i - beta_j), whose gradient is that of a point at t_c
    with the normal w_i n_i + w_j n_j, w_i = -beta_j / (beta_i - beta_j), w_j = 1 - w_i. The depth is a
    plain expression in a and b (differentiable to any order)."""
    alpha = line_distances(polygon, a)
    beta = (b[..., :2] - a[..., :2]) @ half_planes(polygon, a)[0].T
    t = deepest_on_lines(alpha.detach(), beta.detach())
    along = alpha + beta * t[..., None]
    two = along.detach().topk(2, dim=-1, largest=False).indices
    (a_i, a_j), (b_i, b_j), (v_i, v_j) = (x.gather(-1, two).unbind(-1) for x in (alpha, beta, along))
    length = (b[..., :2] - a[..., :2]).detach().norm(dim=-1)
    tied = ((v_j - v_i).detach() <= KINK_TOLERANCE * length) & (b_i * b_j < 0).detach()
    span = torch.where(tied, b_i - b_j, torch.ones_like(b_i))
    crossing = (a_j - a_i) / span
    depth = torch.where(tied, a_i + b_i * crossing, v_i)
    w_j = torch.where(tied, b_i / span, torch.zeros_like(b_i)).detach()
    return _SegmentDepth(depth, two[..., 0], two[..., 1], (a_i, a_j), (b_i, b_j), tied,
                         torch.where(tied, crossing, t).detach(), (1.0 - w_j, w_j))


def convex_segment_terms(polygons: list[Polygon], a: "torch.Tensor", b: "torch.Tensor", smoothing: float = 0.0,
                         gradient: bool = True) -> tuple["torch.Tensor", "torch.Tensor | None", "torch.Tensor | None"]:
    """(values, gradients in a, in b) of the penalty of each segment [a, b] (..., D) at its deepest point
    in convex polygons, summed over them: h(f (2 rho - f)) with f from ``segment_depth_on_lines``, and
    (with ``gradient``, else None) h'(.) (2 rho - 2 f) grad f."""
    value = a.new_zeros(a.shape[:-1])
    grad_a, grad_b = (torch.zeros_like(a), torch.zeros_like(b)) if gradient else (None, None)
    for polygon in polygons:
        near = entering(polygon, a.detach(), b.detach())
        d = segment_depth_on_lines(polygon, a[near], b[near])
        rise = 2.0 * polygon._inradius - d.depth
        g = d.depth * rise
        value = value.index_put((near,), hinge(g, smoothing), accumulate=True)
        if gradient:
            normals = half_planes(polygon, a)[0]
            w = (hinge_slopes(g, smoothing)[0] * (rise - d.depth))[..., None] * (
                d.weights[0][..., None] * normals[d.i] + d.weights[1][..., None] * normals[d.j])
            grad_a[..., :2] += torch.zeros_like(a[..., :2]).index_put_((near,), (1.0 - d.t)[..., None] * w)
            grad_b[..., :2] += torch.zeros_like(b[..., :2]).index_put_((near,), d.t[..., None] * w)
    return value, grad_a, grad_b


def entering(polygon: Polygon, a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    """Which segments [a, b] (..., D) may enter a convex polygon: those with no line that both ends lie
    beyond (alpha_k < 0 at a and at b); the rest lie wholly outside, where the penalty and its derivatives
    vanish (the deepest point is sought only for the few that may enter)."""
    return (torch.maximum(line_distances(polygon, a), line_distances(polygon, b)) >= 0).all(-1)


def convex_hessians(polygons: list[Polygon], pos: "torch.Tensor", smoothing: float = 0.0,
                    segments: bool = False) -> "torch.Tensor":
    """Each trajectory's Hessian (N, M D, M D) of the penalty of convex polygons at the time points of
    ``pos`` (N, M, D) and, with ``segments``, along the segments between them, in closed form (unweighted).

    With phi = f (2 rho - f): Hess h(phi) = h''(phi) grad phi grad phi^T + h'(phi) Hess phi, grad phi =
    (2 rho - 2 f) grad f, Hess phi = (2 rho - 2 f) Hess f - 2 grad f grad f^T. At a point f = alpha_k is
    linear (Hess f = 0, grad f = n_k); along a segment f is linear in (a, b) at a fixed deepest point
    (grad f = ((1 - t) n_i, t n_i)), and at a crossing of lines i, j it is f = (beta_i alpha_j - alpha_i
    beta_j) / D, D = beta_i - beta_j, with Hess f = G^T F G: G the rows grad alpha_i = (n_i, 0),
    grad alpha_j = (n_j, 0), grad beta_i = (-n_i, n_i), grad beta_j = (-n_j, n_j), and F (in alpha_i,
    alpha_j, beta_i, beta_j) with D^2 F = [[0, 0, beta_j, -beta_i], [0, 0, -beta_j, beta_i], [beta_j,
    -beta_j, 2 beta_j t_c, -t_c (beta_i + beta_j)], [-beta_i, beta_i, -t_c (beta_i + beta_j), 2 beta_i t_c]].
    Only points and segments inside (phi > 0) contribute."""
    N, M, D = pos.shape
    H = pos.new_zeros(N, M, M, D, D)
    for polygon in polygons:
        normals = half_planes(polygon, pos)[0]
        rho = polygon._inradius
        s, nearest = line_distances(polygon, pos).min(-1)
        g = s * (2.0 * rho - s)
        n, j = torch.nonzero(g > 0, as_tuple=True)
        d1, d2 = hinge_slopes(g[n, j], smoothing)
        normal = normals[nearest[n, j]]
        scale = d2 * (2.0 * rho - 2.0 * s[n, j]) ** 2 - 2.0 * d1
        add_point_blocks(H, n, j, scale[:, None, None] * normal[:, :, None] * normal[:, None, :])
        if not segments or M < 2:
            continue
        n, j = torch.nonzero(entering(polygon, pos[:, :-1], pos[:, 1:]), as_tuple=True)
        d = segment_depth_on_lines(polygon, pos[n, j], pos[n, j + 1])
        g = d.depth * (2.0 * rho - d.depth)
        inside = g > 0
        n, j, g, d = n[inside], j[inside], g[inside], d.rows(inside)
        f, t, tied = d.depth, d.t[:, None], d.tied
        n_i, n_j = normals[d.i], normals[d.j]
        m = d.weights[0][:, None] * n_i + d.weights[1][:, None] * n_j
        grad_f = torch.cat([(1.0 - t) * m, t * m], -1)  # (pairs, 4)
        zero = torch.zeros_like(n_i)
        G = torch.stack([torch.cat([n_i, zero], -1), torch.cat([n_j, zero], -1),
                         torch.cat([-n_i, n_i], -1), torch.cat([-n_j, n_j], -1)], 1)  # (pairs, 4, 4)
        (b_i, b_j), t_c = d.beta, d.t
        span = torch.where(tied, b_i - b_j, torch.ones_like(b_i))
        cross = -t_c * (b_i + b_j)
        F = torch.stack([torch.stack(row, -1) for row in (
            (torch.zeros_like(b_i), torch.zeros_like(b_i), b_j, -b_i),
            (torch.zeros_like(b_i), torch.zeros_like(b_i), -b_j, b_i),
            (b_j, -b_j, 2.0 * b_j * t_c, cross),
            (-b_i, b_i, cross, 2.0 * b_i * t_c))], -2) * (tied.to(pos.dtype) / span**2)[:, None, None]
        hess_f = G.transpose(1, 2) @ F @ G
        d1, d2 = hinge_slopes(g, smoothing)
        rise = 2.0 * rho - 2.0 * f
        outer = grad_f[:, :, None] * grad_f[:, None, :]
        add_segment_blocks(H, n, j, (d2 * rise**2 - 2.0 * d1)[:, None, None] * outer
                           + (d1 * rise)[:, None, None] * hess_f)
    return by_trajectory(H)
