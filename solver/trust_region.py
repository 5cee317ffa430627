"""Trust-region Newton's method on the reduced objective, for any N.

Each iteration minimizes the quadratic model m(p) = g.p + p.H p / 2 over the trust region |p|_M <= radius,
in the metric M = |B| of the Hessian's D x D diagonal blocks B with their eigenvalues replaced by their
absolute values (so every particle's step is measured against its own curvature):

* small problems (at most ``DENSE_VARS`` unknowns): exactly (``exact_step``, Moré-Sorensen with
  Cholesky factorizations of H + mu M);
* larger ones: by preconditioned conjugate gradients (Steihaug-Toint), H p from ``Curvature`` (the
  kernels' Hessian-vector products), preconditioner P = M^{-1}; CG stops at the model's minimizer to
  the forcing tolerance min(1/2, sqrt|g|_P) |g|_P (superlinear convergence near a minimum), at the
  boundary, or along a direction of negative curvature (then it follows it to the boundary). Every step is also capped so that no particle moves farther than ``cap`` (delta: longer jumps
skip over the structure the kernel senses, section 4.7). The step is taken when the objective falls by
at least 1e-4 of the model's prediction; the radius grows after good steps on the boundary and
shrinks after poor ones.

Stopping rule (``status = "converged"`` only when it truly holds): the gradient is below ``gtol`` per
particle (N max |dE/dy|), or the model predicts a decrease below the objective's rounding, or (large
problems) the last step was an interior Newton step that the objective confirmed and the model
predicts less than ``rtol |E|`` of further decrease (the Newton decrement). Small problems, where
Newton's quadratic convergence makes the last digits cheap, are solved to ``gtol``.
Otherwise the run ends by its limits, or as ``stalled`` when no step can be found while the
decrement is still above that level.
"""
from __future__ import annotations

import math
from typing import Iterator

from .lazy import torch
from .problem import OptimizerSpec
from .reduced import ReducedObjective
from .steps import Step, per_particle_grad_norm

#: At most this many CG iterations per Newton step (each is one Hessian-vector product).
MAX_CG = 250
#: Up to this many unknowns (N D) the model is minimized exactly with dense factorizations. Measured
#: (2 cores): N = 500 in 2-D (1,000 unknowns) takes 0.09 s per dense iteration against 0.3-0.6 s for CG
#: (the swarm_500 preset converges in 42 s dense, reaches its 60 s limit with CG); at N = 1,000 dense
#: is slower per iteration than CG (0.52 s against 0.37 s).
DENSE_VARS = 1200
#: Radius updates: grow by GROW after a step that the objective confirmed (rho > GOOD) on the boundary,
#: shrink by SHRINK after a poor one (rho < POOR) or a rejected one.
GROW, SHRINK, GOOD, POOR = 2.0, 0.25, 0.75, 0.25
#: Relative floor of the preconditioner's eigenvalues (against the largest block eigenvalue).
PRECONDITIONER_FLOOR = 1e-10
#: Relative size of float64 rounding in a sum of O(1) terms: predicted decreases below it are noise.
ROUNDING = 4e-16


def block_metric(blocks: "torch.Tensor", floor: float) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """(|B|^{-1}, |B|, |B|^{-1/2}) for each D x D block B, |B| with the eigenvalues of B replaced by
    their absolute values (floored at ``floor`` times the largest): a positive definite preconditioner,
    its metric and the metric's inverse square root, from the diagonal blocks of an indefinite Hessian."""
    lam, Q = torch.linalg.eigh(0.5 * (blocks + blocks.transpose(1, 2)))
    lam = lam.abs().clamp_min(floor * float(lam.abs().max()))

    def f(values: "torch.Tensor") -> "torch.Tensor":
        return torch.einsum("nij,nj,nkj->nik", Q, values, Q)
    return f(1.0 / lam), f(lam), f(lam.rsqrt())


def exact_step(H: "torch.Tensor", g: "torch.Tensor", M: "torch.Tensor", radius: float,
               guess: float = 0.0) -> tuple["torch.Tensor", bool, float]:
    """The minimizer of g.p + p.H p / 2 over |p|_M <= radius (``M`` the D x D blocks of the metric), and
    whether it lies on the boundary: p = -(H + mu M)^{-1} g with mu >= 0 such that H + mu M is positive
    definite and mu (|p|_M - radius) = 0, mu found by Newton's method on 1/|p(mu)|_M = 1/radius
    (Moré and Sorensen; negative curvature pushes the step to the boundary, so saddle points repel),
    with Cholesky factorizations, starting from ``guess`` (the last iteration's mu: consecutive steps
    need similar shifts). Returns (p, on the boundary, mu)."""
    N, D = g.shape
    Md = _block_diagonal(M)
    rhs = -g.reshape(-1, 1)
    scale = float(H.abs().sum(0).max()) / max(float(M.abs().sum(1).max()), 1e-300)
    mu, low = 0.0, 0.0
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) == 0:
        p = torch.cholesky_solve(rhs, L)
        if math.sqrt(max(float(p.T @ (Md @ p)), 0.0)) <= radius:
            return p.reshape(N, D), False, 0.0
    mu = guess
    for _ in range(60):
        L, info = torch.linalg.cholesky_ex(H + mu * Md)
        if int(info) != 0:  # not positive definite: more shift
            low = mu
            mu = max(2.0 * mu, mu + 1e-3 * scale, 1e-12 * scale)
            continue
        p = torch.cholesky_solve(rhs, L)
        Mp = Md @ p
        length = math.sqrt(max(float(p.T @ Mp), 0.0))
        if mu == 0.0 and length <= radius:
            return p.reshape(N, D), False, 0.0
        if abs(length - radius) <= 0.1 * radius:  # the region's size is a heuristic: 10 % is plenty
            break
        w = torch.linalg.solve_triangular(L, Mp, upper=False)
        step = (length / radius - 1.0) * length * length / max(float((w * w).sum()), 1e-300)
        new = mu + step
        if new <= low:  # Newton left the positive definite range: bisect toward it
            new = 0.5 * (low + mu)
        if length < radius:
            new = max(new, low)
        mu = max(new, 0.0)
    return p.reshape(N, D), True, mu


def _block_diagonal(blocks: "torch.Tensor") -> "torch.Tensor":
    """The dense (N D) x (N D) matrix with the D x D ``blocks`` on its diagonal."""
    N, D, _ = blocks.shape
    out = torch.zeros(N, D, N, D, dtype=blocks.dtype)
    idx = torch.arange(N)
    out[idx, :, idx, :] = blocks
    return out.reshape(N * D, N * D)


def _dot(a: "torch.Tensor", b: "torch.Tensor") -> float:
    return float((a * b).sum())


def _to_boundary(p: "torch.Tensor", d: "torch.Tensor", M: "torch.Tensor", radius: float) -> float:
    """tau >= 0 with |p + tau d|_M = radius."""
    pm, dm = _apply(M, p), _apply(M, d)
    a, b, c = _dot(d, dm), 2 * _dot(p, dm), _dot(p, pm) - radius * radius
    return (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a) if a > 0 else 0.0


def steihaug(hv, g: "torch.Tensor", P: "torch.Tensor", M: "torch.Tensor", radius: float,
             forcing: float) -> tuple["torch.Tensor", bool, int]:
    """Approximate minimizer p of g.p + p.H p / 2 with |p|_M <= radius; returns (p, on the boundary,
    Hessian-vector products used)."""
    p = torch.zeros_like(g)
    r = g.clone()
    z = _apply(P, r)
    rz = _dot(r, z)
    tol = forcing * math.sqrt(max(rz, 0.0))
    d = -z
    for k in range(1, MAX_CG + 1):
        Hd = hv(d)
        dHd = _dot(d, Hd)
        if dHd <= 0:  # negative curvature: follow it to the boundary
            return p + _to_boundary(p, d, M, radius) * d, True, k
        alpha = rz / dHd
        trial = p + alpha * d
        if math.sqrt(max(_dot(trial, _apply(M, trial)), 0.0)) >= radius:
            return p + _to_boundary(p, d, M, radius) * d, True, k
        p = trial
        r = r + alpha * Hd
        z = _apply(P, r)
        rz_new = _dot(r, z)
        if math.sqrt(max(rz_new, 0.0)) <= tol:
            return p, False, k
        d = -z + (rz_new / rz) * d
        rz = rz_new
    return p, False, MAX_CG


def trust_region(objective: ReducedObjective, x0: "torch.Tensor", spec: OptimizerSpec, cap: float,
                 phase: str = "newton-cg", iterations: int = 0, evaluations: int = 0) -> Iterator[Step]:
    """Trust-region Newton-CG from x0 (see the module docstring); yields a ``Step`` per iteration
    (``evaluations`` counts gradients and Hessian-vector products)."""
    x = x0.detach().clone()
    energies, g = objective.value_and_grad(x)
    evaluations += 1
    f = energies["objective"]
    radius = None
    shift = 0.0
    it = 0
    dense = x.numel() <= DENSE_VARS
    moved = True  # whether x changed since the Hessian was computed (a rejected step keeps it)
    while True:
        it += 1
        if moved and dense:
            H = objective.hessian(x)
            N, D = x.shape
            P, M, root = block_metric(H.reshape(N, D, N, D)[torch.arange(N), :, torch.arange(N), :],
                                      PRECONDITIONER_FLOOR)
        elif moved:
            curvature = objective.curvature(x)
            P, M, root = block_metric(curvature.blocks, PRECONDITIONER_FLOOR)
        gnorm_P = math.sqrt(max(_dot(g, _apply(P, g)), 0.0))
        if radius is None:
            radius = gnorm_P  # the M-length of the first preconditioned gradient step
        if dense:
            p, boundary, shift = exact_step(H, g, M, radius, shift)
            products = 1

            def model(v: "torch.Tensor") -> float:
                return _dot(g, v) + 0.5 * float(v.reshape(-1) @ H @ v.reshape(-1))
        else:
            p, boundary, products = steihaug(curvature, g, P, M, radius, min(0.5, math.sqrt(gnorm_P)))

            def model(v: "torch.Tensor") -> float:
                return _dot(g, v) + 0.5 * _dot(v, curvature(v))
        longest = float(p.norm(dim=1).max())
        if longest > cap:
            p, boundary = p * (cap / longest), True
        predicted = -model(p)
        e_new, g_new = objective.value_and_grad(x + p)
        evaluations += products + 2
        rho = (f - e_new["objective"]) / predicted if predicted > 0 else -1.0
        accepted = math.isfinite(e_new["objective"]) and rho > 1e-4
        moved = accepted
        step = float(p.norm(dim=1).max()) if accepted else 0.0
        if accepted:
            x, g, energies, f = x + p, g_new, e_new, e_new["objective"]
            if rho > GOOD and boundary:
                radius *= GROW
            elif rho < POOR:
                radius *= SHRINK
        else:
            radius = SHRINK * min(radius, math.sqrt(max(_dot(p, _apply(M, p)), 0.0)))
        gnorm = per_particle_grad_norm(g)
        status = None
        if not math.isfinite(f):
            status = "diverged"
        elif gnorm <= spec.gtol:
            status = "converged"
        elif predicted <= ROUNDING * abs(f):  # what is left to gain is rounding noise
            status = "converged"
        elif not dense and accepted and not boundary and predicted <= spec.rtol * abs(f):
            status = "converged"  # the Newton decrement (small problems go on to gtol: it costs little)
        if status is None and radius < 1e-14 * cap:
            status = "stalled"
        yield Step(x, energies, gnorm, step, iterations + it, evaluations, phase, status=status)
        if status:
            return


def _apply(blocks: "torch.Tensor", v: "torch.Tensor") -> "torch.Tensor":
    return torch.einsum("nde,ne->nd", blocks, v)
