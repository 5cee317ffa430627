"""V_det: open-loop controls alpha_i(t). Then X_T = m + W_T with m_i = int_0^T alpha_i, the cheapest
way to reach the mean m costs |m|^2/(2T) (constant alpha = m/T), so

    n V_det = inf_m  sum_i E U(m_i + sqrt(T) Z) + sum_{i<j} W_ij E K(m_i - m_j + sqrt(2T) Z) + |m|^2/(2T),

a smooth strictly convex problem (Z ~ N(0, 1); the Gaussian expectations by a trapezoid rule in z,
spectrally accurate for analytic integrands), solved by L-BFGS with the exact gradient.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from .model import Model

Array = NDArray[np.float64]

_Z = np.linspace(-12.0, 12.0, 961)
_WZ = np.exp(-0.5 * _Z**2)
_WZ /= _WZ.sum()


def value_det(model: Model) -> tuple[float, Array]:
    """(V_det, optimal means m)."""
    T, n, E = model.T, model.n, model.edges
    i, j, w = E[:, 0].astype(np.int64), E[:, 1].astype(np.int64), E[:, 2]
    zu, zk = np.sqrt(T) * _Z, np.sqrt(2 * T) * _Z

    def f(m: Array) -> tuple[float, Array]:
        xu = m[:, None] + zu
        dz = (m[i] - m[j])[:, None] + zk
        val = model.U.value(xu) @ _WZ
        gu = model.U.grad(xu) @ _WZ
        kv = model.K.value(dz) @ _WZ
        kg = w * (model.K.grad(dz) @ _WZ)
        g = gu + m / T + np.bincount(i, kg, n) - np.bincount(j, kg, n)
        return float(val.sum() + w @ kv + m @ m / (2 * T)), g

    res = minimize(f, np.zeros(n), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 10000})
    return float(res.fun / n), res.x
