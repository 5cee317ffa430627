"""V by annealed importance sampling (Neal 2001) with a delta-method error bar.

Z = int e^{-nG} d gamma = int f_1,  f_1(x) = e^{-nG(x)} N(0, T I)(x),  n V = -log Z.
Start from q = N(mean, T I) (mean: the CAVI mean-field means). Since nG is convex the Gibbs measure
has covariance <= T I (Brascamp-Lieb), so f_1 / q is bounded and the weights have finite variance;
the narrower mean-field variances var would not guarantee this. Anneal along
log f_beta = (1 - beta) log q + beta log f_1 and move with MALA preconditioned by
var_beta = 1 / ((1 - beta)/T + beta/var) (Metropolis-adjusted, so each kernel leaves f_beta
invariant and the weights are unbiased for Z). With N particles and
normalized weights w,  log Z_hat = log mean(w),  se(log Z_hat) ~ sd(w) / (mean(w) sqrt(N)),
V = -log Z_hat / n with standard error se / n.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import logsumexp

from .model import Model

Array = NDArray[np.float64]


@dataclass(frozen=True)
class AisResult:
    V: float
    V_se: float
    ess: float
    acceptance: float


def ais_value(model: Model, mean: Array, var: Array, particles: int = 2000, temperatures: int = 200,
              mala_steps: int = 1, step: float | None = None, seed: int = 0) -> AisResult:
    """Annealed importance sampling estimate of V with its standard error."""
    rng = np.random.default_rng(seed)
    n, T = model.n, model.T
    sd_q = np.sqrt(T)
    eps = step if step is not None else 1.0 * n ** (-1.0 / 6.0)

    def log_q(x: Array) -> Array:
        return -0.5 * np.sum((x - mean) ** 2, axis=1) / T - 0.5 * n * np.log(2 * np.pi * T)

    def grad_log_q(x: Array) -> Array:
        return -(x - mean) / T

    def log_f1(x: Array) -> Array:
        return -model.n_cost(x) - 0.5 * np.sum(x * x, axis=1) / T - 0.5 * n * np.log(2 * np.pi * T)

    def grad_log_f1(x: Array) -> Array:
        return -model.n_grad(x) - x / T

    def log_f(x: Array, beta: float) -> Array:
        return (1 - beta) * log_q(x) + beta * log_f1(x)

    def grad_log_f(x: Array, beta: float) -> Array:
        return (1 - beta) * grad_log_q(x) + beta * grad_log_f1(x)

    def log_prop(x_to: Array, x_from: Array, g_from: Array, v: Array) -> Array:
        mu = x_from + 0.5 * eps**2 * v * g_from
        return -0.5 * np.sum((x_to - mu) ** 2 / (eps**2 * v), axis=1)

    betas = np.linspace(0.0, 1.0, temperatures + 1) ** 4
    x = mean + sd_q * rng.standard_normal((particles, n))
    lw = np.zeros(particles)
    accepted = 0
    for b0, b1 in zip(betas[:-1], betas[1:]):
        lw += (b1 - b0) * (log_f1(x) - log_q(x))
        v = 1.0 / ((1 - b1) / T + b1 / var)
        for _ in range(mala_steps):
            g = grad_log_f(x, b1)
            y = x + 0.5 * eps**2 * v * g + eps * np.sqrt(v) * rng.standard_normal(x.shape)
            gy = grad_log_f(y, b1)
            log_a = log_f(y, b1) - log_f(x, b1) + log_prop(x, y, gy, v) - log_prop(y, x, g, v)
            acc = np.log(rng.random(particles)) < log_a
            x[acc] = y[acc]
            accepted += int(acc.sum())
    log_Z = logsumexp(lw) - np.log(particles)
    w = np.exp(lw - lw.max())
    se = float(w.std(ddof=1) / (w.mean() * np.sqrt(particles)))
    ess = float(w.sum() ** 2 / np.sum(w * w))
    return AisResult(float(-log_Z / n), se / n, ess, accepted / (particles * temperatures * mala_steps))
