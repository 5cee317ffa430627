"""Optimal controls and their Monte Carlo costs.

Full information (Cole-Hopf). With u(t, x) = -log E exp(-nG(x + W_{T-t})) the HJB equation
d_t u + (1/2) Lap u - (1/2)|grad u|^2 = 0, u(T) = nG holds and alpha*(t, x) = -grad u(t, x)
= E[-grad nG(x + sqrt(tau) Z) e^{-nG(.)}] / E[e^{-nG(.)}], tau = T - t; u(0, 0) = n V.
Quadratic case: alpha*(t, x) = -(I + tau Q)^{-1} (Q x - b 1).

Distributed (Foellmer drift / Schroedinger bridge from delta_0 to mu_i). With f_i = d mu_i / d N(0, T)
∝ exp(-Phi_i), alpha_i(t, x_i) = d/dx log E f_i(x_i + sqrt(tau) Z); its energy E int |alpha_i|^2/2
is H(mu_i | N(0, T)), so the cost is V_dstr. Gaussian mu_i = N(m, s_i): with p_i = 1/s_i - 1/T,
alpha_i(t, x) = (m / s_i - p_i x) / (1 + tau p_i).

Euler-Maruyama X_{k+1} = X_k + alpha(t_k, X_k) dt + dW_k has weak error O(dt) in the cost, so
``mc_cost`` runs dt and dt/2 on the same Brownian increments and returns the Richardson estimate
2 C(dt/2) - C(dt) (bias O(dt^2)) with a per-path CLT confidence interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.linalg as la
from numpy.typing import NDArray
from scipy.special import roots_hermitenorm

from ..lazy import torch
from .cavi import CaviResult
from .elimination import checked_order, edge_log_factors, eliminate
from .model import Model
from .quadratic import laplacian

Array = NDArray[np.float64]


class Drift(Protocol):
    def __call__(self, t: float, x: Array) -> Array: ...


def _gauss_hermite(q: int) -> tuple[Array, Array]:
    """Nodes z and log-weights for E f(Z), Z ~ N(0, 1)."""
    z, w = roots_hermitenorm(q)
    return z, np.log(w / w.sum())


@dataclass(frozen=True)
class GaussianFullInfoDrift:
    """alpha(t, x) = -(I + tau Q)^{-1} Q x + b / (1 + tau a) 1  (Q 1 = a 1), via Q = V diag(lam) V^T."""

    T: float
    a: float
    b: float
    lam: Array
    vecs: Array

    @classmethod
    def from_model(cls, model: Model) -> "GaussianFullInfoDrift":
        Q = model.U.a * np.eye(model.n) + model.K.kappa * laplacian(model).toarray()
        lam, vecs = la.eigh(Q)
        return cls(model.T, model.U.a, model.U.b, lam, vecs)

    def __call__(self, t: float, x: Array) -> Array:
        tau = self.T - t
        return -((x @ self.vecs) * (self.lam / (1 + tau * self.lam))) @ self.vecs.T + self.b / (1 + tau * self.a)


@dataclass(frozen=True)
class EliminationFullInfoDrift:
    """Cole-Hopf drift for any G on a graph that variable elimination can sum (``eliminable``: paths,
    trees, stars, rings, every graph of n <= 3):

        alpha*(t, x) = grad log h(t, x),  h(t, x) = int N(y; x, tau I) e^{-nG(y)} dy,
        so alpha*_i(t, x) = (E_post[y_i] - x_i) / tau,  post(y) ∝ N(y; x, tau I) e^{-nG(y)}.

    The integral factorizes over the graph (unary N(y_i; x_i, tau) e^{-U(y_i)}, pairwise
    e^{-W_ij K(y_i - y_j)}). Per path, y_i = x_i + sqrt(tau) (c_i + s_i z) on q Gauss-Hermite nodes z,
    centred and scaled to the Laplace approximation (curvature 1 + tau h_i, h_i = sup U'' + ||K''|| d_i,
    centre one Newton step from y = x), so the rule stays sharp as tau -> 0. ``elimination.eliminate``
    sums the q^n nodes player by player; the posterior marginals E_post[.] come from its autograd
    (d log Z / d log phi_i). Cost per call: (paths) x (n) x q^(width+1)."""

    model: Model
    q: int = 24
    chunk: int = 4000  # paths per elimination (memory: chunk x q^2 numbers per edge)
    order: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", checked_order(self.model.graph)[0])

    def __call__(self, t: float, x: Array) -> Array:
        m, tau = self.model, self.model.T - t
        if tau <= 0.0:
            return -m.n_grad(x)
        return np.concatenate([self._drift(tau, x[k:k + self.chunk]) for k in range(0, len(x), self.chunk)])

    def _drift(self, tau: float, x: Array) -> Array:
        m = self.model
        z, lw = _gauss_hermite(self.q)
        curv = 1.0 + tau * (m.U.hess_sup + m.K.hess_sup * m.degrees)
        s = 1.0 / np.sqrt(curv)
        c = -np.sqrt(tau) * m.n_grad(x) / curv
        zz = c[:, :, None] + s[:, None] * z  # (paths, n, q): the node of y_i is x_i + sqrt(tau) zz
        y = x[:, :, None] + np.sqrt(tau) * zz
        # log of (Gauss-Hermite weight) x (N(zz) / N(z) / s: the change of variables) x e^{-U(y)}
        log_unary = lw + (-0.5 * zz**2 + 0.5 * z**2 + np.log(s)[:, None]) - m.U.value(y)
        L = torch.from_numpy(np.ascontiguousarray(log_unary.transpose(1, 0, 2))).requires_grad_(True)
        eliminate(L, edge_log_factors(m, y.transpose(1, 0, 2)), self.order).sum().backward()
        marginals = L.grad.numpy().transpose(1, 0, 2)  # (paths, n, q), each row sums to 1
        return np.sum(marginals * zz, axis=2) / np.sqrt(tau)


@dataclass(frozen=True)
class GaussianDistributedDrift:
    """alpha_i(t, x) = (m / s_i - p_i x) / (1 + tau p_i), p_i = 1/s_i - 1/T."""

    T: float
    mean: Array
    var: Array

    def __call__(self, t: float, x: Array) -> Array:
        tau = self.T - t
        p = 1.0 / self.var - 1.0 / self.T
        return (self.mean / self.var - p * x) / (1 + tau * p)


def _hermite_basis(x0: float, h: float, m: int, y: Array) -> tuple[Array, Array, Array]:
    """Where the points y fall on the grid x0 + h k (k = 0..m-1) and the cubic Hermite basis there:
    (cell index k, basis (4, *y.shape) for p_k, p'_k, p_{k+1}, p'_{k+1}, and its derivative in y)."""
    s = (y - x0) / h
    k = np.clip(np.floor(s).astype(np.int64), 0, m - 2)
    u = s - k
    u2, u3 = u * u, u * u * u
    basis = np.stack([2 * u3 - 3 * u2 + 1, (u3 - 2 * u2 + u) * h, -2 * u3 + 3 * u2, (u3 - u2) * h])
    slope = np.stack([(6 * u2 - 6 * u) / h, 3 * u2 - 4 * u + 1, (-6 * u2 + 6 * u) / h, 3 * u2 - 2 * u])
    return k, basis, slope


def _hermite(values: Array, slopes: Array, x0: float, h: float, y: Array) -> tuple[Array, Array]:
    """Cubic Hermite interpolation of row i of (values, slopes) on the grid x0 + h k at y[..., i];
    returns the interpolant and its derivative."""
    k, basis, slope = _hermite_basis(x0, h, values.shape[1], y)
    i = np.broadcast_to(np.arange(values.shape[0]), y.shape)
    nodes = np.stack([values[i, k], slopes[i, k], values[i, k + 1], slopes[i, k + 1]])
    return np.sum(basis * nodes, axis=0), np.sum(slope * nodes, axis=0)


def _hermite_rows(values: Array, slopes: Array, x0: float, h: float, y: Array) -> tuple[Array, Array]:
    """``_hermite`` of every row at the same points y: (interpolant, derivative), each (rows, *y.shape)
    (the cells and the basis are found once for all rows)."""
    k, basis, slope = _hermite_basis(x0, h, values.shape[1], y)
    nodes = np.stack([values[:, k], slopes[:, k], values[:, k + 1], slopes[:, k + 1]])
    return np.einsum("j...,jr...->r...", basis, nodes), np.einsum("j...,jr...->r...", slope, nodes)


@dataclass(frozen=True)
class GridDistributedDrift:
    """Foellmer drift toward grid marginals mu_i ∝ N(0, T) e^{-Phi_i}. At time t the drift
    alpha_i = -E[Phi_i'(x + sqrt(tau) Z) e^{-Phi_i(.)}] / E[e^{-Phi_i(.)}] is tabulated on the CAVI
    grid (Gauss-Hermite with q nodes in Z, Phi_i by cubic Hermite interpolation of Phi_i, Phi_i'),
    then interpolated at the players' positions (cubic Hermite, slopes by 2nd-order differences)."""

    x: Array
    Phi: Array
    dPhi: Array
    T: float
    q: int = 40

    @classmethod
    def from_cavi(cls, model: Model, res: CaviResult, q: int = 40) -> "GridDistributedDrift":
        x = res.grid.x
        dK = model.K.grad(x[:, None] - x[None, :])
        dPhi = model.U.grad(x) + model.graph.W @ (res.P @ dK.T)
        return cls(x, res.Phi, np.asarray(dPhi), model.T, q)

    def table(self, t: float) -> Array:
        """alpha_i(t, x_k) for all players i and grid points x_k, shape (n, m)."""
        z, lw = _gauss_hermite(self.q)
        h = float(self.x[1] - self.x[0])
        y = self.x[:, None] + np.sqrt(self.T - t) * z  # (m, q): the same nodes for every player
        val, der = _hermite_rows(self.Phi, self.dPhi, float(self.x[0]), h, y)  # (n, m, q)
        logw = lw - val
        w = np.exp(logw - logw.max(axis=2, keepdims=True))
        return -np.sum(w * der, axis=2) / np.sum(w, axis=2)

    def __call__(self, t: float, x: Array) -> Array:
        h = float(self.x[1] - self.x[0])
        A = self.table(t)
        val, _ = _hermite(A, np.gradient(A, h, axis=1, edge_order=2), float(self.x[0]), h, x)
        return val


@dataclass(frozen=True)
class CostEstimate:
    mean: float
    se: float
    raw_fine: float
    raw_coarse: float

    @property
    def ci95(self) -> tuple[float, float]:
        return self.mean - 1.96 * self.se, self.mean + 1.96 * self.se


def _euler_cost(model: Model, drift: Drift, dW: Array, t0: float, dt: float, x: Array) -> tuple[Array, Array]:
    """One Euler step; returns (new x, per-path energy (1/(2n)) |alpha|^2 dt)."""
    a = drift(t0, x)
    return x + a * dt + dW, 0.5 * np.sum(a * a, axis=1) * dt / model.n


def mc_cost(model: Model, drift: Drift, steps: int = 64, paths: int = 20000, seed: int = 0) -> CostEstimate:
    """Per-path cost G(X_T) + (1/(2n)) sum_i sum_k |alpha_i|^2 dt for dt = T/steps and T/(2 steps)
    on coupled increments; Richardson 2 C_fine - C_coarse, its mean and standard error."""
    rng = np.random.default_rng(seed)
    n, T = model.n, model.T
    dt = T / steps
    xc = np.zeros((paths, n))
    xf = np.zeros((paths, n))
    cc = np.zeros(paths)
    cf = np.zeros(paths)
    for k in range(steps):
        d1 = rng.standard_normal((paths, n)) * np.sqrt(dt / 2)
        d2 = rng.standard_normal((paths, n)) * np.sqrt(dt / 2)
        xc, e = _euler_cost(model, drift, d1 + d2, k * dt, dt, xc)
        cc += e
        xf, e = _euler_cost(model, drift, d1, k * dt, dt / 2, xf)
        cf += e
        xf, e = _euler_cost(model, drift, d2, (k + 0.5) * dt, dt / 2, xf)
        cf += e
    cc += model.n_cost(xc) / n
    cf += model.n_cost(xf) / n
    rich = 2 * cf - cc
    return CostEstimate(float(rich.mean()), float(rich.std(ddof=1) / np.sqrt(paths)), float(cf.mean()), float(cc.mean()))


def simulate_paths(model: Model, drift: Drift, steps: int = 100, paths: int = 20, seed: int = 0) -> tuple[Array, Array]:
    """Euler-Maruyama sample paths: times (steps+1,) and X of shape (steps+1, paths, n)."""
    rng = np.random.default_rng(seed)
    dt = model.T / steps
    dW = rng.standard_normal((steps, paths, model.n)) * np.sqrt(dt)
    X = np.zeros((steps + 1, paths, model.n))
    for k in range(steps):
        X[k + 1] = X[k] + drift(k * dt, X[k]) * dt + dW[k]
    return np.linspace(0.0, model.T, steps + 1), X
