"""Releases: particles that give up their place in the target for a cheaper path (terminal states).

A local minimum reached from an optimal-transport start holds every particle in the well of the target
mass it was sent to: with delta small the nonlocal energy (eq. 53) rises within a kernel width of a
particle's place, while what its control energy would save by stopping short grows only over the
whole way back. With a weak penalty (large eps) giving a place up pays: particle i moved from y_i
back toward its rest state y_i* (the terminal state of zero control: its source under velocity control)
to y' changes the objective by

    dE_i = KE_i(y') - KE_i(y_i)
           + (2a [r(y') - r(y_i) - a (K(y' - y_i) - K(0))] - 2a [s(y') - s(y_i)]) / eps,

with a = 1/N, r(z) = a sum_j K(z - y_j) (the particles' mollified density) and s = K * m_1 (the
target's), K = K_delta (eq. 54). Holes left by neighbouring particles overlap (the target's spacing is
below delta), so releases are taken one at a time, greedily: the most negative dE_i over the candidates
y' = y_i + f (y_i* - y_i), f in ``FRACTIONS``, is applied and r updated by the moved particle's
kernel alone (O(N) per release) until no release lowers E. The robust method offers the OT start
onto particles to releases before its first local solve, and the states after every round of local
solve (reassigned first; ``optimizers.moved_on``). Measured from the robust solve's minimum,
uniform sources to N Gaussian samples, eps = 0.1: N = 500, 23 and 30 releases, after a local solve
2.3007 -> 2.2193 and 2.5058 -> 2.3745; N = 1,000, 56 releases, 2.4660 -> 2.3509 (L-BFGS from the
paper's start: 2.2701, 2.5479, 2.4930). At eps = 0.01 a release would have to save more than the
whole way costs and none is taken.
"""
from __future__ import annotations

from .kernels import gaussian_normalizer, gaussian_row_sums
from .kernels.dense import floored_exp_
from .lazy import torch
from .reduced import ReducedObjective

#: Where a released particle may stop: these fractions of the way from its place back to its rest state.
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
#: A release must lower the objective by more than this fraction of it (below, rounding noise).
LEAST_GAIN = 1e-12


def released(objective: ReducedObjective, Y: "torch.Tensor") -> "torch.Tensor | None":
    """The terminal states ``Y`` (N, D) after the greedy releases of the module docstring, or None when
    no release lowers the objective."""
    p = objective.problem
    Y = Y.detach().clone()
    N, D = Y.shape
    a, delta = 1.0 / N, p.delta
    weights = torch.full((N,), a, dtype=Y.dtype)
    fractions = torch.tensor(FRACTIONS, dtype=Y.dtype)
    with torch.no_grad():
        candidates = Y[None] + fractions[:, None, None] * (objective.rest_states() - Y)[None]  # (F, N, D)
        flat = candidates.reshape(-1, D)
        c = gaussian_normalizer(delta, D)

        def kernel(u: "torch.Tensor") -> "torch.Tensor":
            return c * floored_exp_(-(u * u).sum(-1) / (2.0 * delta * delta))
        own = kernel(candidates - Y[None]) - c  # K(y' - y_i) - K(0)
        fixed = (torch.stack([objective.particle_kinetic(f) for f in candidates]) - objective.particle_kinetic(Y)
                 - 2.0 * a * (p.target.smoothed(flat, delta).reshape(candidates.shape[:2])
                              - p.target.smoothed(Y, delta)[None]) / p.eps - 2.0 * a * a * own / p.eps)
        r_candidates = gaussian_row_sums(flat, Y, weights, delta, normalized=True).reshape(candidates.shape[:2])
        r_now = gaussian_row_sums(Y, Y, weights, delta, normalized=True)
        free = torch.ones(N, dtype=torch.bool)
        before = float(objective(Y))
        scale = LEAST_GAIN * abs(before)
        moves = 0
        while True:
            gain = torch.where(free[None], fixed + 2.0 * a * (r_candidates - r_now[None]) / p.eps, torch.inf)
            best, index = gain.reshape(-1).min(0)
            if not float(best) < -scale:
                break
            k, i = divmod(int(index), N)
            old, new = Y[i].clone(), candidates[k, i].clone()
            r_candidates += a * (kernel(candidates - new) - kernel(candidates - old))
            r_now += a * (kernel(Y - new) - kernel(Y - old))
            Y[i], free[i] = new, False
            moves += 1
        # the greedy's prices are sums of kernels: taken only when the objective itself agrees (a release
        # priced by wrong sums, the cells' 4-D keys once, raised it, and the rounds took one after another)
        if moves and not float(objective(Y)) < before - scale:
            return None
    return Y if moves else None
