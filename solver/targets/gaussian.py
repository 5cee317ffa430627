"""Gaussian and Gaussian-mixture targets m_1 = sum_c w_c N(mean_c, cov_c), in closed form:

    (K_delta * m_1)(y) = sum_c w_c N(y; mean_c, cov_c + delta^2 I),
    C_{delta,m_1} = sum_{c,c'} w_c w_c' N(mean_c - mean_c'; 0, cov_c + cov_c' + delta^2 I).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ProblemError
from ..lazy import torch
from ..reading import Context, check_keys, covariance, floats, number, vector
from ..registry import TARGETS
from .particles import normalized

#: The bounding box reaches this many standard deviations around each component's mean.
BOX_SDS = 2.5


def covariance_factor(cov: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
    """(L, log det cov) with cov = L L^T (Cholesky), what ``gaussian_density`` needs of cov."""
    L = torch.linalg.cholesky(cov)
    return L, 2.0 * torch.log(torch.diagonal(L)).sum()


def gaussian_density(y: "torch.Tensor", mean: "torch.Tensor", cov: "torch.Tensor | None" = None,
                     factor: tuple["torch.Tensor", "torch.Tensor"] | None = None) -> "torch.Tensor":
    """N(y; mean, cov) for each row of y; ``factor``: cov's ``covariance_factor``, when already made."""
    L, logdet = covariance_factor(cov) if factor is None else factor
    diff = (y - mean).T
    sol = torch.linalg.solve_triangular(L, diff, upper=False)
    D = y.shape[1]
    return torch.exp(-0.5 * (sol * sol).sum(0) - 0.5 * logdet - 0.5 * D * math.log(2 * math.pi))


def _component(spec: dict, where: str, context: Context) -> tuple[np.ndarray, np.ndarray]:
    """A component's mean and covariance on the terminal state (``context.state_dim`` coordinates)."""
    dim, names = context.state_dim, context.state_coordinates
    return (vector(spec.get("mean"), f"{where}.mean", dim, names),
            covariance(spec.get("cov"), f"{where}.cov", dim, names))


@TARGETS.register
@dataclass(frozen=True)
class GaussianMixtureTarget:
    """A mixture of Gaussians sum_c w_c N(mean_c, cov_c): exact K_delta * m_1 and C."""

    weights: np.ndarray  # (C,), summing to 1
    means: np.ndarray  # (C, D)
    covs: np.ndarray  # (C, D, D)

    kind: ClassVar[str] = "mixture"
    keys: ClassVar[tuple[str, ...]] = ("kind", "components")
    given_by_points: ClassVar[bool] = False  # the file lists the target's points (drawn and edited)
    discrete: ClassVar[bool] = False
    empirical: ClassVar[None] = None

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str = "target") -> "GaussianMixtureTarget":
        check_keys(spec, cls.keys, where)
        comps = spec.get("components")
        if not isinstance(comps, list) or not comps:
            raise ProblemError(f"{where}.components", "must list at least one {weight, mean, cov}")
        means, covs, ws = [], [], []
        for c, comp in enumerate(comps):
            at = f"{where}.components[{c}]"
            if not isinstance(comp, dict):
                raise ProblemError(at, "must be an object {\"weight\": w, \"mean\": [..], \"cov\": ..}")
            check_keys(comp, ("weight", "mean", "cov"), at)
            m, S = _component(comp, at, context)
            means.append(m), covs.append(S)
            ws.append(number(comp, "weight", f"{at}.weight", positive=True))
        return cls(normalized(np.asarray(ws)), np.stack(means), np.stack(covs))

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "components": [
            {"weight": float(w), "mean": floats(m), "cov": floats(S)}
            for w, m, S in zip(self.weights, self.means, self.covs)]}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        first, second = [1.0] * dim, [1.0] * dim
        first[-1], second[-1] = 0.6, 1.4
        return {"kind": cls.kind, "components": [{"weight": 0.5, "mean": first, "cov": 0.01},
                                                 {"weight": 0.5, "mean": second, "cov": 0.01}]}

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def mean(self) -> np.ndarray:
        return self.weights @ self.means

    def bounding_box(self) -> tuple[np.ndarray, np.ndarray]:
        sds = np.sqrt(np.stack([np.diag(S) for S in self.covs]))
        return (self.means - BOX_SDS * sds).min(0), (self.means + BOX_SDS * sds).max(0)

    def smoothed(self, y: "torch.Tensor", delta: float) -> "torch.Tensor":
        out = torch.zeros(y.shape[0], dtype=y.dtype)
        for w, m, factor in self._smoothed_components(delta, y.dtype):
            out = out + w * gaussian_density(y, m, factor=factor)
        return out

    def _smoothed_components(self, delta: float, dtype: "torch.dtype"
                             ) -> list[tuple[float, "torch.Tensor", tuple]]:
        """(w_c, mean_c, ``covariance_factor`` of cov_c + delta^2 I) for each component, made once per
        delta and kept (the last delta's): factoring them at every evaluation took half of ``smoothed``'s
        time (three components at N = 100: 185 -> 83 us a call; the values are bitwise the same)."""
        key = (delta, dtype)
        kept = self.__dict__.get("_factors")  # the dataclass is frozen; its __dict__ holds this cache
        if kept is None or kept[0] != key:
            eye = torch.eye(self.dim, dtype=dtype)
            components = [(float(w), torch.as_tensor(m, dtype=dtype),
                           covariance_factor(torch.as_tensor(S, dtype=dtype) + delta**2 * eye))
                          for w, m, S in zip(self.weights, self.means, self.covs)]
            kept = (key, components)
            self.__dict__["_factors"] = kept
        return kept[1]

    def cross_term(self, y: "torch.Tensor", a: "torch.Tensor", delta: float) -> "torch.Tensor":
        return a @ self.smoothed(y, delta)

    def constant(self, delta: float) -> float:
        eye = torch.eye(self.dim, dtype=torch.float64)
        zero = torch.zeros(self.dim, dtype=torch.float64)
        total = 0.0
        for wc, mc, Sc in zip(self.weights, self.means, self.covs):
            for wd, md, Sd in zip(self.weights, self.means, self.covs):
                cov = torch.as_tensor(Sc + Sd) + delta**2 * eye
                diff = torch.as_tensor(mc - md)[None, :]
                total += float(wc * wd) * float(gaussian_density(diff, zero, cov)[0])
        return total

    def support_size(self, n: int) -> int:
        return n

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


@TARGETS.register
@dataclass(frozen=True)
class GaussianTarget(GaussianMixtureTarget):
    """A Gaussian N(mean, cov) (``cov`` a matrix, or a number s for s I): exact K_delta * m_1 and C."""

    kind: ClassVar[str] = "gaussian"
    keys: ClassVar[tuple[str, ...]] = ("kind", "mean", "cov")

    @classmethod
    def from_spec(cls, spec: dict, context: Context, where: str = "target") -> "GaussianTarget":
        check_keys(spec, cls.keys, where)
        m, S = _component(spec, where, context)
        return cls(np.ones(1), m[None], S[None])

    def to_spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean": floats(self.means[0]), "cov": floats(self.covs[0])}

    @classmethod
    def example_spec(cls, dim: int) -> dict[str, Any]:
        return {"kind": cls.kind, "mean": [1.0] * dim, "cov": 0.02}
