"""Convex one-dimensional potentials U (confinement) and K (even interaction).

The running cost of the guiding example is

    G(x) = (1/n) sum_i U(x_i) + (1/n) sum_{i<j} W_ij K(x_i - x_j),

so only U, U', U'', K, K', K'' and the suprema ||U''||_inf, ||K''||_inf are needed.
Every potential is a frozen dataclass (picklable) with vectorized numpy methods.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def _log_cosh(z: Array) -> Array:
    """log cosh z = |z| + log1p(exp(-2|z|)) - log 2, overflow-free."""
    az = np.abs(z)
    return az + np.log1p(np.exp(-2.0 * az)) - np.log(2.0)


@dataclass(frozen=True)
class QuadraticU:
    """U(x) = a x^2 / 2 - b x  (convex iff a >= 0); U'' = a."""

    a: float
    b: float = 0.0

    def value(self, x: Array) -> Array:
        return 0.5 * self.a * x * x - self.b * x

    def grad(self, x: Array) -> Array:
        return self.a * x - self.b

    def hess(self, x: Array) -> Array:
        return np.full_like(x, self.a, dtype=np.float64)

    @property
    def hess_sup(self) -> float:
        return abs(self.a)

    @property
    def hess_inf(self) -> float:
        return self.a


@dataclass(frozen=True)
class LogCoshU:
    """U(x) = a x^2 / 2 + c log cosh(x - s) - b x; U'' = a + c sech^2(x - s) in [a, a + c]."""

    a: float
    c: float
    s: float = 0.0
    b: float = 0.0

    def value(self, x: Array) -> Array:
        return 0.5 * self.a * x * x + self.c * _log_cosh(x - self.s) - self.b * x

    def grad(self, x: Array) -> Array:
        return self.a * x + self.c * np.tanh(x - self.s) - self.b

    def hess(self, x: Array) -> Array:
        return self.a + self.c / np.cosh(x - self.s) ** 2

    @property
    def hess_sup(self) -> float:
        return max(abs(self.a), abs(self.a + self.c))

    @property
    def hess_inf(self) -> float:
        return min(self.a, self.a + self.c)


@dataclass(frozen=True)
class QuadraticK:
    """K(z) = kappa z^2 / 2; K'' = kappa."""

    kappa: float
    drift_kind = "linear"  # -K'(z) = -kappa z: the pairwise drift of the uncontrolled particle system

    def value(self, z: Array) -> Array:
        return 0.5 * self.kappa * z * z

    def grad(self, z: Array) -> Array:
        return self.kappa * z

    def hess(self, z: Array) -> Array:
        return np.full_like(z, self.kappa, dtype=np.float64)

    @property
    def hess_sup(self) -> float:
        return abs(self.kappa)


@dataclass(frozen=True)
class LogCoshK:
    """K(z) = kappa log cosh z; K'' = kappa sech^2 z, so ||K''||_inf = kappa (attained at z = 0)."""

    kappa: float
    drift_kind = "tanh"  # -K'(z) = -kappa tanh z

    def value(self, z: Array) -> Array:
        return self.kappa * _log_cosh(z)

    def grad(self, z: Array) -> Array:
        return self.kappa * np.tanh(z)

    def hess(self, z: Array) -> Array:
        return self.kappa / np.cosh(z) ** 2

    @property
    def hess_sup(self) -> float:
        return abs(self.kappa)


Confinement = QuadraticU | LogCoshU
Interaction = QuadraticK | LogCoshK


def is_quadratic(U: Confinement, K: Interaction) -> bool:
    """True when every value has a closed form (Gaussian case)."""
    return isinstance(U, QuadraticU) and isinstance(K, QuadraticK)
