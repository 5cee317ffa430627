"""The uniform target on an annulus {r_0 <= |x - c| <= r_1} in the plane (r_0 = 0: a disc).

No elementary closed form exists, but the angular integral does: with rho = |y - c|,

    int_0^{2 pi} K_delta(y - c - r e_theta) d theta = (1/delta^2) exp(-(rho - r)^2 / (2 delta^2)) I0e(r rho / delta^2),

(I0e(x) = e^{-x} I_0(x), the scaled modified Bessel function), so

    (K_delta * m_1)(y) = 1/(pi (r_1^2 - r_0^2) delta^2) int_{r_0}^{r_1} r exp(-(rho - r)^2 / 2delta^2) I0e(r rho / delta^2) dr,
    C_{delta,m_1} = 2 pi / (pi (r_1^2 - r_0^2)) int_{r_0}^{r_1} (K_delta * m_1)(rho) rho d rho,

one-dimensional integrals of smooth functions, computed by composite Gauss-Legendre quadrature on
panels no wider than delta (``NODES`` nodes each): the integrand is a bump of width delta, which
16 nodes per delta resolve to rounding (checked against adaptive 2-D quadrature in the tests).

The particles read the profile rho -> (K_delta * m_1)(rho) from a piecewise Chebyshev interpolant of
that quadrature (``RadialProfile``, made once per inner, outer and delta): degree ``PROFILE_DEGREE`` on
panels of ``PROFILE_PANEL`` delta, where the profile, analytic on the scale delta, is resolved to
rounding; beyond ``PROFILE_REACH`` delta past the outer radius it is below exp(-PROFILE_REACH^2 / 2)
~ 1e-31 of its peak, and taken as 0. The quadrature at every particle (N times ~150 Bessel functions and
their derivatives) took 2.2 ms a value and gradient at N = 300, the interpolant 0.6 ms.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, check_keys, floats, number, vector
from ..registry import TARGETS
from ..short_sums import inner

NODES = 16  # Gauss-Legendre nodes per panel
#: The profile's interpolant: panels of PROFILE_PANEL delta, Chebyshev degree PROFILE_DEGREE, out to
#: PROFILE_REACH delta past the outer radius; the last PROFILES_KEPT profiles are kept.
PROFILE_PANEL, PROFILE_DEGREE, PROFILE_REACH, PROFILES_KEPT = 0.5, 16, 12.0, 16


@functools.cache
def legendre_rule() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1], ``NODES`` of them: computed once (an eigenvalue
    problem, a tenth of an annulus target's evaluation when made every time)."""
    return np.polynomial.legendre.leggauss(NODES)


def radial_rule(r0: float, r1: float, width: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of composite Gauss-Legendre quadrature on [r0, r1], panels <= ``width``."""
    panels = max(1, math.ceil((r1 - r0) / width))
    x, w = legendre_rule()
    edges = np.linspace(r0, r1, panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    nodes = (0.5 * (edges[:-1] + edges[1:]))[:, None] + half * x[None, :]
    return nodes.ravel(), (half * w[None, :]).ravel()


#: Quadrature terms at nodes r farther than ``QUADRATURE_REACH`` delta from rho are exactly 0 in float64
#: (exp(-(rho - r)^2 / 2 delta^2) underflows to 0 below exp(-745.2), past 38.6 delta). Where all rho
#: against all nodes would exceed ``QUADRATURE_ENTRIES`` entries, the sorted rho are summed in blocks
#: spanning at most ``QUADRATURE_SPAN`` delta (at most QUADRATURE_ENTRIES // 2,000 of them), each
#: against the nodes within reach only, so memory stays linear in outer / delta: whole, the profile's
#: table is ~544 (outer / delta)^2 entries, and an annulus 1,000 delta wide asked for 4.3 GB
#: (outer radius 1e6 failed to allocate at all). Smaller tables are summed whole, as before.
QUADRATURE_REACH, QUADRATURE_ENTRIES, QUADRATURE_SPAN = 40.0, 2**22, 20.0
#: An annulus' outer radius at most this many delta (``AnnulusTarget.check_delta``): its tables take time
#: linear in outer / delta (measured, inner = outer / 2: 2,000 delta 4.2 s, 10,000 delta 14 s).
MAX_WIDTH = 1e4


def radial_quadrature(rho: "torch.Tensor", inner_radius: float, outer_radius: float, delta: float) -> "torch.Tensor":
    """(K_delta * m_1) at distance ``rho`` (any shape) from the centre of the annulus
    inner_radius <= r <= outer_radius, by the composite Gauss-Legendre rule (module docstring)."""
    nodes, weights = radial_rule(inner_radius, outer_radius, delta)
    r = torch.as_tensor(nodes, dtype=rho.dtype)
    w = torch.as_tensor(weights, dtype=rho.dtype) * r
    scale = math.pi * (outer_radius**2 - inner_radius**2) * delta * delta

    def summed(at: "torch.Tensor", r: "torch.Tensor", w: "torch.Tensor") -> "torch.Tensor":
        at = at[..., None]
        inside = torch.exp(-((at - r) ** 2) / (2 * delta * delta)) * torch.special.i0e(r * at / (delta * delta))
        return (inside * w).sum(-1) / scale

    if rho.numel() * len(nodes) <= QUADRATURE_ENTRIES:
        return summed(rho, r, w)
    flat, order = torch.sort(rho.reshape(-1))
    values = torch.empty_like(flat)
    sorted_rho = flat.detach().numpy()
    rows = max(1, QUADRATURE_ENTRIES // 2000)
    start = 0
    while start < len(sorted_rho):
        stop = min(int(np.searchsorted(sorted_rho, sorted_rho[start] + QUADRATURE_SPAN * delta, "right")),
                   start + rows)
        lo, hi = np.searchsorted(nodes, [sorted_rho[start] - QUADRATURE_REACH * delta,
                                         sorted_rho[stop - 1] + QUADRATURE_REACH * delta])
        values[start:stop] = summed(flat[start:stop], r[lo:hi], w[lo:hi])
        start = stop
    out = torch.empty_like(flat)
    out[order] = values
    return out.reshape(rho.shape)


@dataclass(frozen=True)
class RadialProfile:
    """rho -> (K_delta * m_1)(rho) as a piecewise Chebyshev series: panel p covers [p w, (p + 1) w] with
    coefficients ``coefficients[p]`` in t = 2 (rho / w - p) - 1; 0 beyond the last panel."""

    width: float
    coefficients: "torch.Tensor"  # (panels, PROFILE_DEGREE + 1)

    @classmethod
    def interpolating(cls, inner_radius: float, outer_radius: float, delta: float) -> "RadialProfile":
        """The interpolant of ``radial_quadrature`` at the Chebyshev points of each panel."""
        width = PROFILE_PANEL * delta
        panels = math.ceil((outer_radius + PROFILE_REACH * delta) / width)
        x = np.polynomial.chebyshev.chebpts1(PROFILE_DEGREE + 1)
        rho = (np.arange(panels)[:, None] + 0.5 * (x[None, :] + 1.0)) * width
        values = radial_quadrature(torch.as_tensor(rho), inner_radius, outer_radius, delta).numpy()
        vandermonde = np.polynomial.chebyshev.chebvander(x, PROFILE_DEGREE)
        return cls(width, torch.as_tensor(np.linalg.solve(vandermonde, values.T).T))

    def __call__(self, rho: "torch.Tensor") -> "torch.Tensor":
        panels = self.coefficients.shape[0]
        scaled = (rho / self.width).clamp(max=float(panels))
        index = scaled.detach().floor().clamp(max=panels - 1)
        t = 2.0 * (scaled - index) - 1.0
        c = self.coefficients.to(rho.dtype)[index.long()]
        after, last = torch.zeros_like(t), torch.zeros_like(t)  # Clenshaw's b_{k+2}, b_{k+1}
        for k in range(PROFILE_DEGREE, 0, -1):
            after, last = last, c[..., k] + 2.0 * t * last - after
        value = c[..., 0] + t * last - after
        return torch.where(scaled < panels, value, torch.zeros_like(value))


@functools.lru_cache(maxsize=PROFILES_KEPT)
def radial_profile(inner_radius: float, outer_radius: float, delta: float) -> RadialProfile:
    """The ``RadialProfile`` of this annulus and delta, made on first use and kept (the last
    ``PROFILES_KEPT``)."""
    return RadialProfile.interpolating(inner_radius, outer_radius, delta)


@TARGETS.register
@dataclass(frozen=True)
class AnnulusTarget:
    """Uniform on the annulus r_inner <= |x - center| <= r_outer in 2-D (r_inner = 0: a disc)."""

    center: np.ndarray
    inner: float
    outer: float

    kind: ClassVar[str] = "annulus"
    keys: ClassVar[tuple[str, ...]] = ("kind", "center", "inner", "outer")
    given_by_points: ClassVar[bool] = False
    discrete: ClassVar[bool] = False
    empirical: ClassVar[None] = None

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str = "target") -> "AnnulusTarget":
        check_keys(spec, cls.keys, where)
        if context.state_dim != 2:
            raise ProblemError(where, f"an annulus lives in the plane, but the states have dimension "
                                      f"{context.state_dim}; use a gaussian or uniform target")
        center = vector(spec.get("center"), f"{where}.center", 2)
        inner = number(spec, "inner", f"{where}.inner", 0.0, minimum=0.0)
        outer = number(spec, "outer", f"{where}.outer", positive=True)
        if outer <= inner:
            raise ProblemError(f"{where}.outer", f"must be larger than inner = {inner:g}")
        return cls(center, inner, outer)

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": floats(self.center), "inner": self.inner, "outer": self.outer}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        return {"kind": cls.kind, "center": [1.0, 1.0], "inner": 0.3, "outer": 0.5}

    @property
    def dim(self) -> int:
        return 2

    @property
    def area(self) -> float:
        return math.pi * (self.outer**2 - self.inner**2)

    def mean(self) -> np.ndarray:
        return self.center.copy()

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        return self.center - self.outer, self.center + self.outer

    def smoothed(self, y: "torch.Tensor", delta: float) -> "torch.Tensor":
        diff = y - torch.as_tensor(self.center, dtype=y.dtype)
        # sqrt of a floor keeps the gradient finite at the centre (where the density is flat)
        rho = inner(diff, diff).clamp_min(1e-300).sqrt()
        return radial_profile(self.inner, self.outer, delta)(rho)

    def cross_term(self, y: "torch.Tensor", a: "torch.Tensor", delta: float) -> "torch.Tensor":
        return a @ self.smoothed(y, delta)

    def check_delta(self, delta: float, where: str = "target") -> None:
        """Refuse a ring more than ``MAX_WIDTH`` delta in outer radius: its radial tables (``RadialProfile``,
        ``constant``) hold ~16 nodes per delta, and each of their ~34 rows per delta sums ~1,300 of them."""
        if self.outer > MAX_WIDTH * delta:
            raise ProblemError(f"{where}.outer", f"{self.outer:g} is {self.outer / delta:.3g} times delta = "
                                                 f"{delta:.3g}, over {MAX_WIDTH:g}: its radial tables would take over "
                                                 "15 s (linear in outer / delta); use a larger delta or rescale the scene")

    def constant(self, delta: float) -> float:
        nodes, weights = radial_rule(self.inner, self.outer, delta)
        rho = torch.as_tensor(nodes, dtype=torch.float64)
        values = radial_quadrature(rho, self.inner, self.outer, delta)
        return float(2 * math.pi * (values * rho * torch.as_tensor(weights)).sum() / self.area)

    def support_size(self, n: int) -> int:
        return n

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Scrambled Sobol points mapped to the annulus area-uniformly (r^2 uniform, theta uniform)."""
        u = torch.quasirandom.SobolEngine(2, scramble=True, seed=seed).draw(n, dtype=torch.float64).numpy()
        r = np.sqrt(self.inner**2 + u[:, 0] * (self.outer**2 - self.inner**2))
        theta = 2 * np.pi * u[:, 1]
        return self.center + np.column_stack([r * np.cos(theta), r * np.sin(theta)]), np.full(n, 1.0 / n)
