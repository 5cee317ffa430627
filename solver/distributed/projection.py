"""Independent projection of a non-exchangeable particle system (slides: "The independent projection").

    dX^i = [b0(X^i) + sum_k J_ik b(X^i, X^k)] dt + dW^i                      (n-particle system)
    dY^i = [b0(Y^i) + sum_k J_ik E b(Y^i, Y^k)] dt + dW^i,  Y^k independent   (independent projection)

X_0 = Y_0 = 0. X is simulated as N independent realizations of the n-particle system; Y as one cloud
of N particles per coordinate, E b(y, Y^k) being the average over cloud k (exact through the cloud
mean for linear b; for nonlinear b through the cloud's linear-binned histogram on a grid convolved
with b). When J has row sums 1 every Y^i is a copy of the McKean-Vlasov SDE
dY = [b0(Y) + E b(Y, Y')] dt + dW, simulated as a single cloud. The drift uses J as given (no
symmetrization). Closeness is the average over i of W2^2(Law X^i_t, Law Y^i_t) by the quantile
formula with the O(1/N) sampling bias removed by Richardson extrapolation in N.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class PairDrift:
    """b0(x) = -a x + c and b(x, y) = -kappa (x - y) (kind "linear") or -kappa tanh(x - y) ("tanh")."""

    a: float = 1.0
    c: float = 0.0
    kappa: float = 1.0
    kind: str = "linear"

    def b0(self, x: Array) -> Array:
        return -self.a * x + self.c

    def b(self, z: Array) -> Array:
        """b as a function of z = x - y."""
        return -self.kappa * (z if self.kind == "linear" else np.tanh(z))


@dataclass(frozen=True)
class ProjectionResult:
    times: Array
    X: Array  # (records, N, n) realizations of the particle system
    Y: Array  # (records, N, n) independent-projection clouds
    w2: Array  # (records,) debiased mean_i W2^2(X^i_t, Y^i_t)
    w2_raw: Array  # (records,) plain quantile estimate
    mv: Array | None  # (records, N) McKean-Vlasov cloud when rows of J sum to 1


def w2_squared_1d(x: Array, y: Array) -> Array:
    """Quantile formula for equal sample sizes along axis 0: mean_k (x_(k) - y_(k))^2, per column."""
    return np.mean((np.sort(x, axis=0) - np.sort(y, axis=0)) ** 2, axis=0)


def w2_debiased(x: Array, y: Array) -> Array:
    """Richardson in the sample size: E W2^2(empirical N) ~ W2^2 + c / N, so
    2 W(N) - mean(W(first halves), W(second halves)) removes the c / N term."""
    h = x.shape[0] // 2
    full = w2_squared_1d(x[: 2 * h], y[: 2 * h])
    half = 0.5 * (w2_squared_1d(x[:h], y[:h]) + w2_squared_1d(x[h:2 * h], y[h:2 * h]))
    return 2 * full - half


def _particle_drift(J: sp.csr_matrix, f: PairDrift, x: Array) -> Array:
    """b0(x_i) + sum_k J_ik b(x_i - x_k) for every row (realization) of x."""
    if f.kind == "linear":
        d = np.asarray(J.sum(axis=1)).ravel()
        return f.b0(x) - f.kappa * (x * d - (J @ x.T).T)
    C = J.tocoo()
    contrib = C.data * f.b(x[:, C.row] - x[:, C.col])
    out = np.zeros_like(x)
    np.add.at(out.T, C.row, contrib.T)
    return f.b0(x) + out


def _cloud_drift(J: sp.csr_matrix, f: PairDrift, y: Array, bins: int = 256) -> Array:
    """b0(y) + sum_k J_ik E b(y - Y^k) for clouds y of shape (N, n) (column k = cloud k)."""
    if f.kind == "linear":
        d = np.asarray(J.sum(axis=1)).ravel()
        return f.b0(y) - f.kappa * (y * d - J @ y.mean(axis=0))
    lo, hi = y.min() - 1e-9, y.max() + 1e-9
    g = np.linspace(lo, hi, bins)
    h = g[1] - g[0]
    s = (y - lo) / h
    k = np.clip(np.floor(s).astype(np.int64), 0, bins - 2)
    u = s - k
    N, n = y.shape
    P = np.zeros((n, bins))
    cols = np.broadcast_to(np.arange(n), y.shape)
    np.add.at(P, (cols, k), (1 - u) / N)
    np.add.at(P, (cols, k + 1), u / N)
    B = P @ f.b(g[:, None] - g[None, :]).T  # B[k, grid] = E b(grid - Y^k)
    D = np.asarray(J @ B)
    val = D[cols, k] * (1 - u) + D[cols, k + 1] * u
    return f.b0(y) + val


def independent_projection(J: sp.csr_matrix, f: PairDrift, T: float = 1.0, steps: int = 100,
                           samples: int = 4000, records: int = 11, seed: int = 0) -> ProjectionResult:
    """Euler-Maruyama for X (samples realizations), Y (samples per cloud) and, if rows of J sum to 1,
    the McKean-Vlasov cloud; W2^2 recorded at `records` equally spaced times."""
    J = sp.csr_matrix(J, dtype=np.float64)
    n = J.shape[0]
    rng = np.random.default_rng(seed)
    dt = T / steps
    row_sums_one = bool(np.allclose(np.asarray(J.sum(axis=1)).ravel(), 1.0))
    one = sp.csr_matrix(np.ones((1, 1)))
    x = np.zeros((samples, n))
    y = np.zeros((samples, n))
    z = np.zeros((samples, 1))
    rec = set(np.linspace(0, steps, records).round().astype(int).tolist())
    times, Xs, Ys, Zs = [], [], [], []
    for k in range(steps + 1):
        if k in rec:
            times.append(k * dt)
            Xs.append(x.copy())
            Ys.append(y.copy())
            Zs.append(z[:, 0].copy())
        if k == steps:
            break
        x = x + _particle_drift(J, f, x) * dt + rng.standard_normal(x.shape) * np.sqrt(dt)
        y = y + _cloud_drift(J, f, y) * dt + rng.standard_normal(y.shape) * np.sqrt(dt)
        if row_sums_one:
            z = z + _cloud_drift(one, f, z) * dt + rng.standard_normal(z.shape) * np.sqrt(dt)
    X, Y = np.array(Xs), np.array(Ys)
    w2 = np.array([w2_debiased(a, b).mean() for a, b in zip(X, Y)])
    raw = np.array([w2_squared_1d(a, b).mean() for a, b in zip(X, Y)])
    return ProjectionResult(np.array(times), X, Y, w2, raw, np.array(Zs) if row_sums_one else None)


def gaussian_w2_linear(J: sp.csr_matrix, f: PairDrift, T: float = 1.0, steps: int = 100) -> float:
    """Exact mean_i W2^2(X^i_T, Y^i_T) of the Euler scheme for linear b: both are Gaussian with the
    same means, Sigma_{k+1} = (I + dt A) Sigma (I + dt A)^T + dt I, A = -a I - kappa (diag(J 1) - J),
    v_{k+1} = (1 - dt (a + kappa d_i))^2 v + dt, and W2^2 = (sqrt(Sigma_ii) - sqrt(v_i))^2."""
    Jd = sp.csr_matrix(J).toarray()
    n = Jd.shape[0]
    d = Jd.sum(axis=1)
    dt = T / steps
    M = np.eye(n) + dt * (-f.a * np.eye(n) - f.kappa * (np.diag(d) - Jd))
    S = np.zeros((n, n))
    v = np.zeros(n)
    r = (1 - dt * (f.a + f.kappa * d)) ** 2
    for _ in range(steps):
        S = M @ S @ M.T + dt * np.eye(n)
        v = r * v + dt
    return float(np.mean((np.sqrt(np.diag(S)) - np.sqrt(v)) ** 2))
