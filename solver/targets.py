"""Terminal targets m_1 and their mollified forms.

The nonlocal energy (eq. 53, with the constant of Theorem 1.x restored) is

    NE = (1/eps) || k_delta * mu_1 - k_delta * m_1 ||^2_{L^2}
       = (1/eps) [ sum_ik a_i a_k K_delta(y_i - y_k) - 2 sum_i a_i (K_delta * m_1)(y_i) + C_{delta,m_1} ],

because k_delta * k_delta = K_delta for the Gaussian pair of eq. (54) (k_delta = K_{delta/sqrt 2}).
Each target supplies ``smoothed(y, delta)`` = (K_delta * m_1)(y) and ``constant(delta)`` =
C_{delta,m_1} = int int K_delta(x - y) dm_1(x) dm_1(y), in closed form where one exists (particles,
Gaussian, Gaussian mixture, box) and by quadrature on grid cells otherwise (gridded density).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .kernels import gaussian_normalizer, mollifier_pair_sum


def _gaussian_density(y: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """N(y; mean, cov) for each row of y."""
    L = torch.linalg.cholesky(cov)
    diff = (y - mean).T
    sol = torch.linalg.solve_triangular(L, diff, upper=False)
    logdet = 2.0 * torch.log(torch.diagonal(L)).sum()
    D = y.shape[1]
    return torch.exp(-0.5 * (sol * sol).sum(0) - 0.5 * logdet - 0.5 * D * math.log(2 * math.pi))


def _as_tensor(a, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)


@dataclass(frozen=True)
class ParticleTarget:
    """Empirical target m_1 = sum_k b_k delta_{w_k} (eq. 55 when b_k = 1/N)."""

    points: np.ndarray
    weights: np.ndarray

    kind = "particles"

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def mean(self) -> np.ndarray:
        return self.weights @ self.points

    def cross_term(self, y: torch.Tensor, a: torch.Tensor, delta: float) -> torch.Tensor:
        """sum_i a_i (K_delta * m_1)(y_i) = sum_ik a_i b_k K_delta(y_i - w_k)."""
        w = _as_tensor(self.points, y.dtype)
        b = _as_tensor(self.weights, y.dtype)
        return mollifier_pair_sum(y, w, a, b, delta)

    def constant(self, delta: float) -> float:
        w = _as_tensor(self.points)
        b = _as_tensor(self.weights)
        return float(mollifier_pair_sum(w, w, b, b, delta))

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Points and weights standing for m_1 in an exact OT assignment (the target itself)."""
        return self.points, self.weights


@dataclass(frozen=True)
class GaussianMixtureTarget:
    """m_1 = sum_c w_c N(mean_c, cov_c); a single Gaussian is the one-component case.

    Closed forms: (K_delta * m_1)(y) = sum_c w_c N(y; mean_c, cov_c + delta^2 I) and
    C_{delta,m_1} = sum_{c,c'} w_c w_c' N(mean_c - mean_c'; 0, cov_c + cov_c' + delta^2 I).
    """

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    kind: str = "mixture"

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def mean(self) -> np.ndarray:
        return self.weights @ self.means

    def smoothed(self, y: torch.Tensor, delta: float) -> torch.Tensor:
        eye = torch.eye(self.dim, dtype=y.dtype)
        out = torch.zeros(y.shape[0], dtype=y.dtype)
        for w, m, S in zip(self.weights, self.means, self.covs):
            out = out + float(w) * _gaussian_density(y, _as_tensor(m, y.dtype),
                                                      _as_tensor(S, y.dtype) + delta**2 * eye)
        return out

    def cross_term(self, y: torch.Tensor, a: torch.Tensor, delta: float) -> torch.Tensor:
        return a @ self.smoothed(y, delta)

    def constant(self, delta: float) -> float:
        eye = torch.eye(self.dim, dtype=torch.float64)
        total = 0.0
        for wc, mc, Sc in zip(self.weights, self.means, self.covs):
            for wd, md, Sd in zip(self.weights, self.means, self.covs):
                cov = _as_tensor(Sc) + _as_tensor(Sd) + delta**2 * eye
                diff = _as_tensor(mc - md)[None, :]
                total += float(wc * wd) * float(_gaussian_density(diff, torch.zeros(self.dim,
                                                                                   dtype=torch.float64), cov)[0])
        return total

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """n well-spread points of m_1: scrambled Sobol points pushed through each component's
        Gaussian quantile map (counts per component proportional to its weight)."""
        counts = np.floor(self.weights * n).astype(int)
        counts[np.argmax(self.weights)] += n - counts.sum()
        chunks = []
        for c, (m, S) in enumerate(zip(self.means, self.covs)):
            if counts[c] == 0:
                continue
            u = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=seed + c).draw(
                int(counts[c]), dtype=torch.float64)
            g = torch.special.ndtri(u.clamp(1e-12, 1 - 1e-12))
            chunks.append(m + g.numpy() @ np.linalg.cholesky(S).T)
        pts = np.concatenate(chunks, axis=0)
        return pts, np.full(len(pts), 1.0 / len(pts))


@dataclass(frozen=True)
class UniformBoxTarget:
    """m_1 uniform on the box prod_d [low_d, high_d].

    (K_delta * m_1)(y) = prod_d [Phi((high_d - y_d)/delta) - Phi((low_d - y_d)/delta)] / (high_d - low_d)
    C_{delta,m_1} = prod_d c(L_d) / L_d^2 with L_d = high_d - low_d and
    c(L) = int_0^L int_0^L phi_delta(x - y) dx dy = 2 [L (Phi(L/delta) - 1/2) - delta (1 - e^{-L^2/2delta^2}) / sqrt(2 pi)].
    """

    low: np.ndarray
    high: np.ndarray
    kind = "uniform"

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    def mean(self) -> np.ndarray:
        return 0.5 * (self.low + self.high)

    def smoothed(self, y: torch.Tensor, delta: float) -> torch.Tensor:
        lo, hi = _as_tensor(self.low, y.dtype), _as_tensor(self.high, y.dtype)
        per_dim = (torch.special.ndtr((hi - y) / delta) - torch.special.ndtr((lo - y) / delta)) / (hi - lo)
        return per_dim.prod(1)

    def cross_term(self, y: torch.Tensor, a: torch.Tensor, delta: float) -> torch.Tensor:
        return a @ self.smoothed(y, delta)

    def constant(self, delta: float) -> float:
        out = 1.0
        for L in self.high - self.low:
            Phi = 0.5 * (1.0 + math.erf(L / (delta * math.sqrt(2.0))))
            c = 2.0 * (L * (Phi - 0.5) - delta * (1.0 - math.exp(-L * L / (2 * delta * delta)))
                       / math.sqrt(2 * math.pi))
            out *= c / (L * L)
        return out

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if self.dim == 1:  # exact quantiles: the midpoints of n equal cells
            pts = self.low + (np.arange(n)[:, None] + 0.5) / n * (self.high - self.low)
        else:
            u = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=seed).draw(
                n, dtype=torch.float64).numpy()
            pts = self.low + u * (self.high - self.low)
        return pts, np.full(n, 1.0 / n)


@dataclass(frozen=True)
class GridDensityTarget:
    """m_1 given by nonnegative values on a regular grid of cells over [low, high] (e.g. an image).

    ``values`` has one axis per dimension, ordered (x_{d-1}, ..., x_0) as in an image (rows are the
    second coordinate). The measure is approximated by quadrature: a point mass at each cell centre
    carrying the normalized cell mass, so K_delta * m_1 and C are pair sums over the cells; the error is
    small when the cell size is well below delta.
    """

    low: np.ndarray
    high: np.ndarray
    values: np.ndarray
    kind = "grid"
    _cells: ParticleTarget = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        d = self.low.shape[0]
        shape = self.values.shape[::-1]  # (n_0, n_1, ...) cells along x_0, x_1, ...
        axes = [self.low[k] + (np.arange(shape[k]) + 0.5) * (self.high[k] - self.low[k]) / shape[k]
                for k in range(d)]
        mesh = np.meshgrid(*axes, indexing="ij")
        pts = np.stack([m.ravel() for m in mesh], axis=1)
        mass = np.transpose(self.values, axes=tuple(range(d))[::-1]).ravel().astype(np.float64)
        keep = mass > 0
        object.__setattr__(self, "_cells", ParticleTarget(pts[keep], mass[keep] / mass[keep].sum()))

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    @property
    def cells(self) -> ParticleTarget:
        return self._cells

    def mean(self) -> np.ndarray:
        return self._cells.mean()

    def cross_term(self, y: torch.Tensor, a: torch.Tensor, delta: float) -> torch.Tensor:
        return self._cells.cross_term(y, a, delta)

    def constant(self, delta: float) -> float:
        return self._cells.constant(delta)

    def quantization(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        return self._cells.points, self._cells.weights


Target = ParticleTarget | GaussianMixtureTarget | UniformBoxTarget | GridDensityTarget


def smoothed_density(target: Target, y: np.ndarray, delta: float) -> np.ndarray:
    """(K_delta * m_1) at the rows of y, for plotting a continuum target as an image."""
    yt = torch.as_tensor(y, dtype=torch.float64)
    if isinstance(target, (ParticleTarget, GridDensityTarget)):
        cells = target if isinstance(target, ParticleTarget) else target.cells
        w = torch.as_tensor(cells.points)
        b = torch.as_tensor(cells.weights)
        d2 = torch.cdist(yt, w) ** 2
        return (gaussian_normalizer(delta, yt.shape[1]) * torch.exp(-d2 / (2 * delta**2)) @ b).numpy()
    return target.smoothed(yt, delta).numpy()
