"""Obstacles: shapes kept out of by the penalty of eq. (59), L_N(y) = c_Omega sum_k L_k(y).

For a disc, L_k(y) = max(r_k^2 - |y - c_k|^2, 0) (eq. 59). Written with the depth s = r - |y - c| of a
point inside, r^2 - |y - c|^2 = s (2r - s); other shapes use the same expression with their own depth
(signed distance to the boundary, > 0 inside) and a length of their own in place of r.

A shape class (registered in ``OBSTACLES``) has ``kind``, ``from_spec`` / ``to_spec``, its penalty
``penalty_of(shapes, pos)`` (torch, unweighted) and ``depth(pos)`` (numpy), the same along segments
(``segment_penalty_of(shapes, a, b)``: the penalty of each segment's deepest point, and
``segment_depth(a, b)``), optionally each trajectory's Hessian of both in closed form
(``hessians_of(shapes, positions, smoothing, segments)``, or None: automatic differentiation), and what
the explorer needs to draw, place, move and resize it: ``outline()``, ``placed_at(center, size)``, ``center``, ``size``,
``moved_to(center)``, ``resized(size)``, ``contains(point)``. ``Obstacles`` holds the shapes of a
problem and the weight c_Omega.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ..errors import ProblemError
from ..kernels import twice_differentiable
from ..lazy import torch
from ..reading import Context, array, check_keys, floats, mapping, number
from ..registry import OBSTACLES
from ..short_sums import inner, total


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

    @property
    def inradius(self) -> float:
        """The largest depth inside: the penalty peaks at inradius^2 (at the centre)."""
        return self.radius

    def moved_to(self, center: np.ndarray) -> "Circle":
        c = self.center.copy()
        c[: len(center)] = center
        return dataclasses.replace(self, center=c)

    def resized(self, size: float) -> "Circle":
        return dataclasses.replace(self, radius=float(size))

    def penalty(self, pos: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
        return penalty_sum([self], pos, smoothing)

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
    def penalty_of(circles: list["Circle"], pos: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
        """``penalty_sum``; its gradient in closed form (``disc_terms``, ``closed_form``) except inside
        ``second_order()``."""
        return closed_form(lambda q, gradient: disc_terms(circles, q, smoothing, gradient), pos)

    @staticmethod
    def segment_penalty_of(circles: list["Circle"], a: "torch.Tensor", b: "torch.Tensor",
                           smoothing: float = 0.0) -> "torch.Tensor":
        """Eq. (59) at the point of each segment [a, b] closest to each centre (its deepest point, exactly),
        summed over the circles; the gradient in closed form (``disc_segment_terms``) except inside
        ``second_order()``, where it is this plain expression."""
        return closed_form(lambda p, q, gradient: disc_segment_terms(circles, p, q, smoothing, gradient), a, b)

    @staticmethod
    def hessians_of(circles: list["Circle"], pos: "torch.Tensor", smoothing: float = 0.0,
                    segments: bool = False) -> "torch.Tensor":
        return circle_hessians(circles, pos, smoothing, segments)

    def segment_depth(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The depth of the deepest point of each segment [a, b] (exact: its point closest to the centre)."""
        return self.depth(closest_point(a, b, self.center))


def closest_point(a: Any, b: Any, c: Any) -> Any:
    """The point of each segment [a, b] (..., D) closest to c (on the first len(c) coordinates); numpy
    arrays or torch tensors alike."""
    d = c.shape[0]
    ab = b[..., :d] - a[..., :d]
    t = (((c - a[..., :d]) * ab).sum(-1) / (ab * ab).sum(-1).clip(1e-300, None)).clip(0.0, 1.0)
    return a[..., :d] + t[..., None] * ab


#: ``deepest_along`` samples a segment at this many intervals, then narrows the best one's neighbourhood
#: by golden sections (to 0.618^36 of it: 1e-8 of the segment, far below any tolerance that matters).
ALONG_SAMPLES, GOLDEN_STEPS = 16, 36


def deepest_along(depth: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The parameter t in [0, 1] of the deepest point a + t (b - a) of each segment [a, b] (..., D).

    The best of ``ALONG_SAMPLES`` + 1 evenly spaced points, refined by golden-section search between its
    neighbours. For a convex shape the signed depth is concave along a line, so this is the exact
    maximizer (to the search's resolution); for other shapes the best local one near the best sample.
    Depth is 1-Lipschitz, so a segment of length l whose samples all lie deeper outside than
    l / (2 ALONG_SAMPLES) cannot enter the shape: only the others are refined."""
    samples = np.linspace(0.0, 1.0, ALONG_SAMPLES + 1)
    ab = b - a
    values = depth(a[..., None, :] + samples[:, None] * ab[..., None, :])  # (..., S)
    best = values.argmax(-1)
    t = samples[best]
    near = values.max(-1) > -np.linalg.norm(ab, axis=-1) / (2 * ALONG_SAMPLES)
    if not near.any():
        return t
    a, ab, best = a[near], ab[near], best[near]
    lo, hi = samples[np.maximum(best - 1, 0)], samples[np.minimum(best + 1, ALONG_SAMPLES)]

    def at(u: np.ndarray) -> np.ndarray:
        return depth(a + u[..., None] * ab)

    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = at(x1), at(x2)
    for _ in range(GOLDEN_STEPS):
        left = f1 >= f2  # the maximum lies in [lo, x2]: x1 becomes x2, a new x1 is probed
        hi, lo = np.where(left, x2, hi), np.where(left, lo, x1)
        fresh = np.where(left, hi - ratio * (hi - lo), lo + ratio * (hi - lo))
        f_fresh = at(fresh)
        x1, x2 = np.where(left, fresh, x2), np.where(left, x1, fresh)
        f1, f2 = np.where(left, f_fresh, f2), np.where(left, f1, f_fresh)
    mid = 0.5 * (lo + hi)
    t[near] = np.where(values[near].max(-1) >= at(mid), samples[best], mid)
    return t


def hinge(g: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
    """max(g, 0), the kink of eq. (59) at an obstacle's edge; with ``smoothing`` tau > 0 its Huber
    smoothing g^2 / (2 tau) on [0, tau], g - tau / 2 beyond: once differentiable, below max(g, 0) by at
    most tau / 2. Local optimizers crawl along a kink; the fast solver works on the smoothed penalty
    (``optimizers.robust``) and reports the exact one."""
    inside = g.clamp_min(0.0)
    if smoothing <= 0.0:
        return inside
    return torch.where(inside < smoothing, inside * inside / (2 * smoothing), inside - smoothing / 2)


def hinge_slopes(g: "torch.Tensor", smoothing: float = 0.0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(h'(g), h''(g)) of ``hinge`` h: 0 and 0 below 0; g / tau and 1 / tau on [0, tau); 1 and 0 beyond
    (without smoothing: 1 and 0 above 0)."""
    if smoothing <= 0.0:
        return (g > 0).to(g.dtype), torch.zeros_like(g)
    inside = g.clamp_min(0.0)
    band = inside < smoothing
    return torch.where(band, inside / smoothing, torch.ones_like(g)), ((g > 0) & band).to(g.dtype) / smoothing


def circle_hessians(circles: list[Circle], pos: "torch.Tensor", smoothing: float = 0.0,
                    segments: bool = False) -> "torch.Tensor":
    """Each trajectory's Hessian (N, M D, M D) of sum_j sum_k h(r_k^2 - |y_j - c_k|^2) (``penalty_sum``,
    at the time points of ``pos``, (N, M, D)) plus, with ``segments``, of the same at the point of each
    segment [y_j, y_j+1] closest to c_k (``segment_penalty_of``), in closed form (unweighted).

    With g = r^2 - D and D the squared distance to the centre, Hess h(g) = h''(g) grad D grad D^T -
    h'(g) Hess D. At a point, D = |y - c|^2: grad D = 2 (y - c), Hess D = 2 I. Along a segment
    [a, b], u = b - a, t = clip((c - a).u / |u|^2, 0, 1), e = a + t u - c, D = |e|^2: grad D =
    2 P^T e with P = [(1 - t) I, t I] (t's own change does not count: Danskin), and Hess D =
    2 P^T P - 2 z z^T / |u|^2 with z = ((1 - t) u - e, t u + e) when 0 < t < 1 (from dt, by
    differentiating e.u = 0), 2 P^T P at a clipped end. Only pairs inside a disc (g > 0) contribute;
    they are found first and summed alone. Circles act on the first len(c) coordinates."""
    N, M, D = pos.shape
    H = pos.new_zeros(N, M, M, D, D)  # (particle, time, time, coordinate, coordinate)
    for dim, centres, r2 in _groups(circles, pos):
        eye = torch.eye(dim, dtype=pos.dtype)
        diff = pos[..., None, :dim] - centres  # (N, M, K, dim)
        g = r2 - inner(diff, diff)
        n, j, k = torch.nonzero(g > 0, as_tuple=True)
        diff = diff[n, j, k]  # (pairs, dim)
        d1, d2 = hinge_slopes(g[n, j, k], smoothing)
        add_point_blocks(H, n, j, 4.0 * d2[:, None, None] * diff[:, :, None] * diff[:, None, :]
                         - 2.0 * d1[:, None, None] * eye)
        if not segments or M < 2:
            continue
        u, uu, raw, t, e = _segment_geometry(pos[:, :-1, :dim], pos[:, 1:, :dim], centres)
        g = r2 - inner(e, e)
        n, j, k = torch.nonzero(g > 0, as_tuple=True)
        u, uu, raw, t, e = u[n, j, 0], uu[n, j, 0], raw[n, j, k], t[n, j, k], e[n, j, k]  # (pairs, ...)
        d1, d2 = hinge_slopes(g[n, j, k], smoothing)
        grad = torch.cat([2.0 * (1.0 - t) * e, 2.0 * t * e], -1)  # (pairs, 2 dim)
        z = torch.cat([(1.0 - t) * u - e, t * u + e], -1)
        weights = torch.cat([(1.0 - t).expand_as(e), t.expand_as(e)], -1)
        PtP = weights[:, :, None] * weights[:, None, :] * eye.repeat(2, 2)
        interior = ((raw > 0) & (raw < 1)).to(pos.dtype) / uu
        hess_D = 2.0 * PtP - 2.0 * interior[:, None, None] * z[:, :, None] * z[:, None, :]
        add_segment_blocks(H, n, j, d2[:, None, None] * grad[:, :, None] * grad[:, None, :] - d1[:, None, None] * hess_D)
    return by_trajectory(H)


def add_point_blocks(H: "torch.Tensor", n: "torch.Tensor", j: "torch.Tensor", blocks: "torch.Tensor") -> None:
    """H[n, j, j] += blocks (pairs, dim, dim) on the first dim coordinates, in place: the Hessians of
    terms of single points y_nj, in H (N, M, M, D, D) (particle, time, time, coordinate, coordinate)."""
    dim = blocks.shape[-1]
    H[..., :dim, :dim].index_put_((n, j, j), blocks, accumulate=True)


def add_segment_blocks(H: "torch.Tensor", n: "torch.Tensor", j: "torch.Tensor", blocks: "torch.Tensor") -> None:
    """The Hessians (pairs, 2 dim, 2 dim) of terms of segments [y_nj, y_n,j+1] (in the order (a, b), on
    the first dim coordinates) added to the four blocks of H (N, M, M, D, D) they touch, in place."""
    dim = blocks.shape[-1] // 2
    ends = (j, j + 1)
    for r in range(2):
        for c in range(2):
            H[..., :dim, :dim].index_put_((n, ends[r], ends[c]), blocks[:, r * dim:(r + 1) * dim, c * dim:(c + 1) * dim],
                                          accumulate=True)


def by_trajectory(H: "torch.Tensor") -> "torch.Tensor":
    """(N, M, M, D, D) -> each trajectory's Hessian (N, M D, M D), time-major."""
    N, M, _, D, _ = H.shape
    return H.permute(0, 1, 3, 2, 4).reshape(N, M * D, M * D)


def _segment_geometry(a: "torch.Tensor", b: "torch.Tensor", centres: "torch.Tensor") -> tuple["torch.Tensor", ...]:
    """For segments [a, b] (..., dim) and centres (K, dim): u = b - a (..., 1, dim), |u|^2 (..., 1),
    the parameter of the point nearest each centre unclipped (raw, (..., K)) and clipped to [0, 1]
    (t, (..., K, 1)), and e = a + t u - c (..., K, dim)."""
    start = a[..., None, :]
    u = b[..., None, :] - start
    uu = inner(u, u).clip(1e-300, None)
    raw = inner(centres - start, u) / uu
    t = raw.clip(0.0, 1.0)[..., None]
    return u, uu, raw, t, start + t * u - centres


def _groups(circles: list[Circle], like: "torch.Tensor"):
    """(dim, centres (K, dim), r^2 (K,)) for the circles of each centre dimension."""
    for dim in sorted({len(c.center) for c in circles}):
        group = [c for c in circles if len(c.center) == dim]
        yield (dim, torch.as_tensor(np.stack([c.center for c in group]), dtype=like.dtype),
               torch.as_tensor([c.radius for c in group], dtype=like.dtype) ** 2)


def disc_terms(circles: list[Circle], pos: "torch.Tensor", smoothing: float = 0.0, gradient: bool = True
               ) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """(values, gradients) of the disc penalty at every point of ``pos`` (..., D): h(r^2 - |y - c|^2)
    summed over the circles, and (with ``gradient``, else None) its gradient -2 h'(g) (y - c) summed
    likewise. Circles of equal centre dimension are vectorized together."""
    value, grad = pos.new_zeros(pos.shape[:-1]), torch.zeros_like(pos) if gradient else None
    for dim, centres, r2 in _groups(circles, pos):
        diff = pos[..., None, :dim] - centres
        g = r2 - inner(diff, diff)
        value = value + total(hinge(g, smoothing))
        if gradient:
            grad[..., :dim] -= 2.0 * total(hinge_slopes(g, smoothing)[0][..., None] * diff, -2)
    return value, grad


def disc_segment_terms(circles: list[Circle], a: "torch.Tensor", b: "torch.Tensor", smoothing: float = 0.0,
                       gradient: bool = True) -> tuple["torch.Tensor", "torch.Tensor | None", "torch.Tensor | None"]:
    """(values, gradients in a, in b) of ``segment_penalty_of`` for every segment [a, b] (..., D): at the
    point q = a + t (b - a) closest to the centre, d/da = (1 - t) dh/dq and d/db = t dh/dq (t's own
    change does not count: q is the minimizer over t, or an end); without ``gradient`` the values
    alone (then a plain expression, differentiable to any order)."""
    value = a.new_zeros(a.shape[:-1])
    grad_a, grad_b = (torch.zeros_like(a), torch.zeros_like(b)) if gradient else (None, None)
    for dim, centres, r2 in _groups(circles, a):
        _, _, _, t, e = _segment_geometry(a[..., :dim], b[..., :dim], centres)
        g = r2 - inner(e, e)
        value = value + total(hinge(g, smoothing))
        if gradient:
            w = -2.0 * hinge_slopes(g, smoothing)[0][..., None] * e  # dh/dq
            grad_a[..., :dim] += total((1.0 - t) * w, -2)
            grad_b[..., :dim] += total(t * w, -2)
    return value, grad_a, grad_b


def closed_form(terms: Callable[..., tuple["torch.Tensor | None", ...]], *inputs: "torch.Tensor") -> "torch.Tensor":
    """The values of ``terms(*inputs, gradient)`` -> (values (...), gradient by each input (..., D) or
    None), a sum of terms each of one point or segment: when an input requires a gradient (outside
    ``second_order()``) through an autograd Function whose backward multiplies the closed-form gradients
    (computed with the values, in one pass); otherwise the plain values (``gradient=False``: an
    expression automatic differentiation can differentiate to any order). Through automatic
    differentiation the penalties' many small operations cost about twice as much."""
    if any(x.requires_grad for x in inputs) and not twice_differentiable():
        return _closed_form_function().apply(terms, *inputs)
    return terms(*inputs, gradient=False)[0]


@functools.cache
def _closed_form_function() -> type:
    """``closed_form``'s autograd Function (built on first use, after torch is loaded)."""

    class ClosedForm(torch.autograd.Function):
        @staticmethod
        def forward(ctx, terms, *inputs):  # type: ignore[override]
            value, *gradients = terms(*inputs, gradient=True)
            ctx.save_for_backward(*gradients)
            return value

        @staticmethod
        def backward(ctx, out):  # type: ignore[override]
            return (None, *(out[..., None] * g for g in ctx.saved_tensors))

    return ClosedForm


def penalty_sum(circles: list[Circle], pos: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
    """sum_k max(r_k^2 - |y - c_k|^2, 0) at every point of ``pos`` (..., D) (``hinge``, smoothed by
    ``smoothing``): ``disc_terms``' values, a plain expression differentiable to any order."""
    return disc_terms(circles, pos, smoothing, gradient=False)[0]


@dataclass(frozen=True)
class Obstacles:
    """The obstacles of a problem: L_N(y) = c_Omega sum_k L_k(y) (eq. 59), c_Omega = ``weight``
    (``weight_spec`` "auto" means 1/(h eps), section 4.5). With ``segments`` (the problem's
    ``obstacle_segments``) every segment between consecutive time points is penalized too, at its
    deepest point, so that the piecewise-linear trajectories drawn and exported stay outside as well."""

    shapes: tuple[Any, ...]
    weight: float
    weight_spec: Any = "auto"
    segments: bool = False

    @classmethod
    def from_spec(cls, items: Any, weight: Any, context: Context, segments: Any = False) -> "Obstacles | None":
        """``obstacles`` (a list of shapes; the kind defaults to "circle"), ``obstacle_weight`` and
        ``obstacle_segments``."""
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
        if not isinstance(segments, bool):
            raise ProblemError("obstacle_segments", f"must be true or false (got {segments!r})")
        return cls(tuple(shapes), value, weight, segments)

    def to_spec(self) -> dict[str, Any]:
        return {"obstacles": [s.to_spec() for s in self.shapes], "obstacle_weight": self.weight_spec,
                "obstacle_segments": self.segments}

    @property
    def smooth(self) -> bool:
        return all(s.smooth for s in self.shapes)

    def __call__(self, y: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
        """L_N at every point of y (..., D), summed over the obstacles (``hinge`` smoothed by
        ``smoothing``: 0 is eq. 59 itself)."""
        total = y.new_zeros(y.shape[:-1])
        for kind in dict.fromkeys(type(s) for s in self.shapes):
            total = total + kind.penalty_of([s for s in self.shapes if type(s) is kind], y, smoothing)
        return self.weight * total

    def segment_penalty(self, a: "torch.Tensor", b: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor":
        """The penalty of every segment [a, b] (..., D) at its deepest point, summed over the obstacles."""
        total = a.new_zeros(a.shape[:-1])
        for kind in dict.fromkeys(type(s) for s in self.shapes):
            total = total + kind.segment_penalty_of([s for s in self.shapes if type(s) is kind], a, b, smoothing)
        return self.weight * total

    def hessians(self, positions: "torch.Tensor", smoothing: float = 0.0) -> "torch.Tensor | None":
        """Each trajectory's Hessian (N, M D, M D) of the weighted penalty at the time points of
        ``positions`` (N, M, D) and, with ``segments``, along the segments between them, in closed form
        (a shape kind's ``hessians_of``); None when a kind of shape present has none, or none for these
        shapes (non-convex polygons): automatic differentiation then gives it."""
        total = None
        for kind in dict.fromkeys(type(s) for s in self.shapes):
            part = (kind.hessians_of([s for s in self.shapes if type(s) is kind], positions, smoothing, self.segments)
                    if hasattr(kind, "hessians_of") else None)
            if part is None:
                return None  # before the other kinds' Hessians are made (a Newton step would discard them)
            total = part if total is None else total + part
        return self.weight * total

    def smoothing(self, fraction: float) -> float:
        """A ``hinge`` smoothing of ``fraction`` times the smallest shape's peak penalty, its inradius
        squared (the penalty's argument r^2 - |y - c|^2, s (2 rho - s) for a polygon, has units of a length
        squared and peaks at rho^2). For a disc that is its radius squared; a polygon's size (centre to
        farthest corner) can be far larger than its inradius: relative to size^2, the polygon wall of the
        obstacle scenes (0.5 x 2, size 1.03, inradius 0.25) had the continuation's widest band (30 times
        this smoothing) wider than the penalty's peak, so on it the paths crossed the wall, and the
        narrower bands ended in worse minima than the start (9.9068 and 9.9137 against 9.8670)."""
        return fraction * min(s.inradius for s in self.shapes) ** 2

    def depth(self, y: np.ndarray) -> np.ndarray:
        """How far each point lies inside the deepest obstacle (<= 0 outside all of them)."""
        return np.max([s.depth(np.asarray(y)) for s in self.shapes], axis=0)

    def segment_depths(self, positions: np.ndarray) -> np.ndarray:
        """How deep each segment between consecutive time points of the trajectories (N, M, d) reaches
        into the deepest obstacle, (N, M - 1) (<= 0: outside all)."""
        a, b = positions[:, :-1], positions[:, 1:]
        return np.max([s.segment_depth(a, b) for s in self.shapes], axis=0)

    def path_depth(self, positions: np.ndarray) -> float:
        """The deepest point of the piecewise-linear trajectories (N, M, d) inside any obstacle."""
        return float(self.segment_depths(positions).max())
