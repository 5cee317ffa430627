"""Trust-region Newton's method on the reduced objective, for any N, and in full trajectories when every
term but the nonlocal one is a sum over particles (``TrajectorySystem``).

Each iteration minimizes the quadratic model m(p) = g.p + p.H p / 2 over the trust region |p|_M <= radius,
in the metric M = |B| of the Hessian's D x D diagonal blocks B with their eigenvalues replaced by their
absolute values (so every particle's step is measured against its own curvature):

* small problems (at most ``DENSE_VARS`` unknowns): exactly (``exact_step``, Moré-Sorensen with
  Cholesky factorizations of H + mu M: ``DenseSystem``; in full trajectories through the Schur
  complement on the terminal states: ``TrajectorySystem``). In the terminal states above
  ``ADAPTIVE_MIN_VARS`` unknowns only the first step solves for the region's radius; later steps take
  p = -(H + mu M)^{-1} g with the shift mu itself adapted to the last step's rho (Levenberg-Marquardt,
  ``shifted_step``): one factorization per step instead of about five;
* larger ones: by preconditioned conjugate gradients (Steihaug-Toint), H p from ``Curvature`` (the
  kernels' Hessian-vector products), preconditioner P = M^{-1}; CG stops at the model's minimizer to
  the forcing tolerance min(1/2, sqrt|g|_P) |g|_P (superlinear convergence near a minimum), at the
  boundary, or along a direction of negative curvature (then it follows it to the boundary).

Every step is also capped so that no particle moves farther than ``cap`` (delta: longer jumps skip
over the structure the kernel senses, section 4.7). The step is taken when the objective falls by
at least 1e-4 of the model's prediction; the radius grows after good steps on the boundary and
shrinks after poor ones. In full trajectories with obstacles each particle's step also stops where
it would enter an obstacle (``entering_fractions``): the model, blind outside an obstacle, would
count on the entry costing nothing.

Stopping rule (``status = "converged"`` only when it truly holds): the gradient is below ``gtol`` per
particle (N max |dE/dy|), or the model predicts a decrease below the objective's rounding (relative to
|E| and the sums it is computed from, ``rounding_scale``), or (large problems and full trajectories)
the last step was an interior Newton step that the objective confirmed and the model predicts less
than ``rtol |E|`` of further decrease (the Newton decrement), or (more than ``PLATEAU_MIN_VARS``
terminal unknowns, and in full trajectories (structured Newton) at any size) the plateau: the last
``PLATEAU_WINDOW`` iterations lowered E by at most
``plateau |E|`` (``OptimizerSpec.plateau``) while no particle moved farther than ``PLATEAU_MOVE``
times the cap. Past the first descent the landscape of many particles is glassy (section 4.7):
N = 1,000 samples fell 2.6e-5 (relative) in 25 iterations, then 1.5e-5 in 380 more (48 s); the plateau
ends such crawls, the robust method's reassignments then take the larger gains
(``optimizers._rounds``). Small reduced problems, where Newton's quadratic convergence makes the last
digits cheap, are solved to ``gtol``. Otherwise the run ends by its limits, or as ``stalled`` when no
step can be found while the decrement is still above that level. Where the plateau applies, dense
systems are factored in single precision (``DenseSystem``): the digits it would refine are not sought.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Callable, Iterator

import numpy as np

from .costs.obstacles import hinge
from .lazy import LazyModule, torch
from .problem import OptimizerSpec, Problem
from .objective import Objective
from .reduced import ReducedObjective
from .steps import Step, per_particle_grad_norm

blockwise = LazyModule("solver.blockwise")  # numba: compiled on first use

#: At most this many CG iterations per Newton step (each is one Hessian-vector product).
MAX_CG = 250
#: Up to this many unknowns (N D) of the terminal states the model is minimized with dense
#: factorizations, above by CG. Measured (2 cores, uniform sources, samples of a Gaussian; seconds to
#: converge, dense against CG, objectives within the glassy spread, +-5e-6 relative, either way), with
#: the products' pairs listed once per Newton step (``Cells.self_curvature``): samples N = 600
#: 1.5-1.9 / 1.3-2.0 (seeds 1-3), N = 650 2.2 / 2.1, N = 700-720 2.2-2.8 / 1.8-2.3, N = 800 3.3-3.5 /
#: 2.3-2.6; Gaussian continuum N = 800 8.4 / 6.5. (Before the pairs were listed, CG's products cost
#: twice as much and dense won up to N D = 1,600; with the cells planned per product and the factor
#: copied for every solve, up to 2,500.)
DENSE_VARS = 1200
#: From this many unknowns the dense factorizations are float32's with one float64 refinement
#: (``DenseSystem``'s ``single``) also in solves to ``gtol``, as they are under the plateau rule: the
#: factorization is most of an exact step there (2-D N = 450, 900 unknowns: 254 Cholesky factorizations,
#: 2.25 of 3.7 s), and float32's takes half the time from N D = 600 up (1.3 / 2.6 ms at 600, 4.7 / 8.5 ms
#: at 900, one thread). Measured over 18 solves of 500-1,000 unknowns (1-D, 2-D, 3-D samples; eps 1e-5
#: to 0.1, delta 0.005 to 0.2, M 5 and 20, p = 3): 5-46 % faster, most by 20-25 % (2-D N = 450
#: 3.70 -> 2.89 s, 3-D N = 330 4.48 -> 3.34 s), on the same objectives to 10 digits but two whose
#: paths parted (2-D N = 300, eps = 1e-3: +6.6e-9 relative, eps = 1e-5: -6.3e-8). Below, float64: the
#: factorization costs little and the paper's small presets keep their paths (Fig. 2 samples: 450
#: unknowns).
SINGLE_VARS = 500
#: Up to this many terminal unknowns obstacle problems are solved by Newton in full trajectories
#: (``TrajectorySystem``: each step ~5 factorizations of the (N D) x (N D) Schur complement). Measured
#: before adaptive shifts: N = 500 in 2-D 0.09 s per iteration (the swarm_500 preset converges in 42 s).
STRUCTURED_VARS = 1200
#: N x V x V tensors (V a particle's variables) a structured Newton solve holds at its peak: the blocks
#: B_i and their sum with the nonlocal diagonal, the metric and preconditioner blocks, the factors of M and
#: of B + mu M (the last point's are freed before a new point's are built). Measured from peak resident
#: memory on the default scene with a disc (N = 49): 19 at M = 200, 21 at M = 400 (5.6 GB); 15 at M = 400
#: once the last point's system was freed first.
TRAJECTORY_COPIES = 24
#: The most memory the structured system may take; an obstacle problem whose system would need more is
#: solved by L-BFGS (``optimizers._structured``). At 2 GiB: N = 49 up to M = 240, N = 600 up to M = 69.
STRUCTURED_MEMORY = 2 * 2**30
#: Radius updates: grow by GROW after a step that the objective confirmed (rho > GOOD) on the boundary,
#: shrink by SHRINK after a poor one (rho < POOR) or a rejected one.
GROW, SHRINK, GOOD, POOR = 2.0, 0.25, 0.75, 0.25
#: The hard case of the exact step: H + mu M counts as singular when the step is still too short at a
#: shift mu within this fraction of mu above one where H + mu M is not positive definite: the region's
#: minimizer p + t u then changes the model by at most (mu - mu*) radius^2 / 2, a hundredth of the
#: shift's own share mu radius^2 / 2. The null direction u is found by INVERSE_ITERATIONS steps of
#: inverse iteration.
HARD_CASE, INVERSE_ITERATIONS = 1e-2, 4
#: Exact steps after the first: p = -(H + mu M)^{-1} g with the shift mu adapted to how well the model
#: predicted the last step (Levenberg-Marquardt's rule, Nielsen 1999), one factorization per step where
#: solving for the region's radius (Moré-Sorensen) took ~5. Measured on N = 300 samples: the first local
#: solve from the OT start 74 -> 61 iterations, 3.2 -> 0.9 s. A shift below NEWTON_SHIFT times the
#: system's scale counts as a plain Newton step (not on a region's boundary); none is below SHIFT_FLOOR
#: times it; above STALLED_SHIFT times it no step is left to find.
NEWTON_SHIFT, SHIFT_FLOOR, STALLED_SHIFT = 1e-8, 1e-12, 1e14
#: At most this many factorizations looking for a positive definite H + mu M (4^60 ~ 1e36: far past
#: STALLED_SHIFT from any start at or above 1e-8 of the scale).
SHIFT_TRIES = 60
#: Up to this many unknowns every exact step solves for the region's radius: a factorization costs
#: microseconds there, and the region's steps found lower minima on the paper's small presets (Fig. 1:
#: 1.9794232 against 1.9796221 with adaptive shifts, from the check start).
ADAPTIVE_MIN_VARS = 200
#: A CG run keeps its iterates (``CGPath``) up to this many bytes (about 200 CG iterations at N = 10,000
#: in 2-D, 20 at N = 10^5).
KEPT_BYTES = 2**26
#: Relative floor of the preconditioner's eigenvalues (against the largest block eigenvalue).
PRECONDITIONER_FLOOR = 1e-10
#: The plateau rule looks at the objective's decrease over this many iterations, on problems of more
#: than PLATEAU_MIN_VARS terminal unknowns (N D); smaller ones are solved to ``gtol``, where the last
#: digits cost a fraction of a second (Fig. 2 samples, 450 unknowns: 2.1120744 in 0.2 s against 2.1120967
#: stopped by the plateau; Fig. 9's terminal errors (65) are those of the minimizers only there).
PLATEAU_WINDOW, PLATEAU_MIN_VARS = 10, 1000
#: ... and only once no particle moved farther than this fraction of the cap (delta) in the window: from
#: a far start the steps are long (the cap) and gain little relative to a huge objective (N = 600 from
#: the sources: 1-4 % per 10 iterations with moves of 0.7-1 cap), while on a plateau they are short
#: (N = 1,000: at most 0.11 cap).
PLATEAU_MOVE = 0.25
#: Relative size of float64 rounding in a sum of O(1) terms: predicted decreases below it are noise.
ROUNDING = 4e-16


def rounding_scale(objective: "ReducedObjective | Objective") -> float:
    """What the objective's rounding is relative to besides |E|: the nonlocal energy's target term
    C / eps (NE = (S - 2 X + C) / eps is a difference of sums that large; where it cancels to zero,
    e.g. particles resting on their targets with nothing to pay, |E| is itself rounding noise and no
    predicted decrease falls below ROUNDING |E|). 0 for an objective without that term (a stand-in of
    the tests)."""
    full = objective.full if isinstance(objective, ReducedObjective) else objective
    constant = getattr(full, "constant", None)
    return abs(float(constant)) / full.problem.eps if constant is not None else 0.0


def plateau_tolerance(objective: "ReducedObjective | Objective", spec: OptimizerSpec) -> float:
    """The relative decrease over ``PLATEAU_WINDOW`` iterations below which a local solve of
    ``objective`` has converged: ``spec.plateau`` above ``PLATEAU_MIN_VARS`` terminal unknowns, else 0."""
    p = objective.problem
    return spec.plateau if p.N * p.dynamics.state_dim > PLATEAU_MIN_VARS else 0.0


class Window:
    """The objective after each of the last ``size`` iterations and before them, and the longest move of a
    particle in each of those iterations: the memory of the plateau rule (and of L-BFGS's ``rtol``)."""

    def __init__(self, f: float, size: int) -> None:
        self.values, self.moves = deque([f], maxlen=size + 1), deque(maxlen=size)

    def add(self, f: float, move: float) -> None:
        self.values.append(f)
        self.moves.append(move)

    @property
    def full(self) -> bool:
        return len(self.values) == self.values.maxlen

    def gained(self) -> float:
        """How much the objective fell over the window."""
        return self.values[0] - self.values[-1]

    def plateau(self, tolerance: float, cap: float) -> bool:
        """The plateau rule: over a full window the objective fell by at most ``tolerance`` |E| while no
        particle moved farther than ``PLATEAU_MOVE`` times ``cap``."""
        return (self.full and max(self.moves) <= PLATEAU_MOVE * cap
                and self.gained() <= tolerance * abs(self.values[-1]))


def block_metric(blocks: "torch.Tensor", floor: float) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(|B|^{-1}, |B|) for each D x D block B, |B| with the eigenvalues of B replaced by their absolute
    values, floored at ``floor`` times an upper bound of the largest (the largest Frobenius norm of a
    block): a positive definite preconditioner and its metric, from the diagonal blocks of an indefinite
    Hessian.

    Most blocks are positive definite (the control energy's curvature dominates; the obstacle penalty,
    concave inside, makes a few indefinite), and for those whose smallest eigenvalue provably lies above
    the floor (1 / |B^{-1}|_F >= floor max |B|_F) |B| = B: they take a Cholesky factorization and its
    inverse, only the others an eigendecomposition (150 blocks of 22 x 22: 1.1 against 6.0 ms)."""
    B = 0.5 * (blocks + blocks.transpose(1, 2))
    lowest = floor * float(torch.linalg.matrix_norm(B).max())
    L, info = torch.linalg.cholesky_ex(B)
    factored = info == 0
    # a failed block's partial factor can hold a zero pivot, which cholesky_inverse refuses: a singular
    # block, e.g. a particle's under the piecewise cost, whose |u|/p has the Hessian (I - u u^T/|u|^2)
    # / (p |u|), no curvature along u. Such blocks take the eigendecomposition below; their factor is I
    L = torch.where(factored[:, None, None], L, torch.eye(B.shape[1], dtype=B.dtype))
    inverse = torch.cholesky_inverse(L)
    plain = factored & (torch.linalg.matrix_norm(inverse) * lowest <= 1.0)
    metric, preconditioner = B.clone(), inverse
    rest = (~plain).nonzero()[:, 0]
    if rest.numel():
        lam, Q = torch.linalg.eigh(B[rest])
        lam = lam.abs().clamp_min(lowest)

        def f(values: "torch.Tensor") -> "torch.Tensor":
            return torch.einsum("nij,nj,nkj->nik", Q, values, Q)
        preconditioner[rest], metric[rest] = f(1.0 / lam), f(lam)
    return preconditioner, metric


class DenseSystem:
    """The Newton system H + mu M of a dense Hessian H ((N D) x (N D)) and a block-diagonal metric M.
    With ``single``, H + mu M is factored in float32 (half the time of float64's Cholesky) and every
    solve refined once against the float64 system (x += (H + mu M)^{-1} (v - (H + mu M) x))."""

    #: The shift below which H + mu M is known not to be positive definite: none known.
    floor = 0.0

    def __init__(self, H: "torch.Tensor", M: "torch.Tensor", single: bool = False) -> None:
        self.H, self.M, self.single = H, M, single
        # the largest absolute row sum (H is symmetric): rows are contiguous, so summed in place, where
        # H.abs().sum(0) wrote a copy of H and summed across rows (1.8 against 6.1 ms at N D = 2,000)
        self.scale = float(torch.linalg.vector_norm(H, 1, dim=1).max()) / max(float(M.abs().sum(2).max()), 1e-300)
        # the factorizations of one system overwrite one buffer (a fresh N D x N D matrix per shift
        # cost a quarter of the Cholesky's own time in page faults); a factor lives until the next one
        self._work = torch.empty_like(H, dtype=torch.float32 if single else H.dtype)
        self._info = torch.empty((), dtype=torch.int32)

    def product(self, v: "torch.Tensor") -> "torch.Tensor":
        return (self.H @ v.reshape(-1)).reshape(v.shape)

    def factor(self, mu: float) -> Callable[["torch.Tensor"], "torch.Tensor"] | None:
        """v -> (H + mu M)^{-1} v (Cholesky), or None when H + mu M is not positive definite. The
        returned solve is valid until the next call.

        H + mu M is written row by row into the buffer and factored through its transposed view, the
        same symmetric matrix stored column by column as LAPACK stores it: then the factorization works
        in place and each solve is two triangular solves on the factor. Factored as stored (row by row),
        every factorization and every solve copied the whole matrix into column order first (N D = 2,000
        in float32: 27 against 21 ms per factorization, 5.4 against 0.4 ms per solve)."""
        N, D = self.M.shape[:2]
        rows = self._work.copy_(self.H)
        rows.view(N, D, N, D).diagonal(dim1=0, dim2=2).add_(self.M.permute(1, 2, 0).to(rows.dtype), alpha=mu)
        L = rows.mT
        torch.linalg.cholesky_ex(L, out=(L, self._info))
        if int(self._info) != 0:
            return None

        def solve(v: "torch.Tensor") -> "torch.Tensor":
            w = torch.linalg.solve_triangular(L, v.reshape(-1, 1).to(L.dtype), upper=False)
            return torch.linalg.solve_triangular(L.mT, w, upper=True).to(v.dtype).reshape(v.shape)
        if not self.single:
            return solve

        def refined(v: "torch.Tensor") -> "torch.Tensor":
            x = solve(v)
            return x + solve(v - self.product(x) - mu * _apply(self.M, x.reshape(N, D)).reshape(v.shape))
        return refined


def exact_step(system: "DenseSystem | TrajectorySystem", g: "torch.Tensor", M: "torch.Tensor", radius: float,
               guess: float = 0.0) -> tuple["torch.Tensor", bool, float]:
    """The minimizer of g.p + p.H p / 2 over |p|_M <= radius (``M`` the per-particle blocks of the
    metric, ``system`` factors H + mu M), and whether it lies on the boundary: p = -(H + mu M)^{-1} g
    with mu >= 0 such that H + mu M is positive definite and mu (|p|_M - radius) = 0, mu found by
    Newton's method on 1/|p(mu)|_M = 1/radius (Moré and Sorensen; d|p|^2/dmu = -2 Mp.(H + mu M)^{-1} Mp;
    negative curvature pushes the step to the boundary, so saddle points repel), starting from ``guess``
    (the last iteration's mu: consecutive steps need similar shifts). Returns (p, on the boundary, mu);
    (0, True, inf) when no shift tried made H + mu M positive definite (H not finite)."""
    rhs = -g
    # the solution's shift lies in (low, high): below low H + mu M is not positive definite or the step
    # is too long, above high the step is too short; up to ``singular`` it is not positive definite
    # (at least up to the system's ``floor``, where a particle's own block is; the first shift tried is
    # then the last iteration's, or just above the floor, where the hard case is recognized at once)
    floor = system.floor
    low, high, singular = floor, math.inf, floor if floor > 0 else -math.inf
    mu = 0.0 if floor == 0 else max(guess, floor * (1.0 + 0.5 * HARD_CASE))
    p = None
    for k in range(60):
        solve = system.factor(mu)
        if solve is None:  # not positive definite: more shift
            low = singular = mu
            new = 0.5 * (low + high) if math.isfinite(high) else max(2.0 * mu, mu + 1e-3 * system.scale,
                                                                     1e-12 * system.scale)
        else:
            p = solve(rhs)
            Mp = _apply(M, p)
            length = math.sqrt(max(_dot(p, Mp), 0.0))
            if mu == 0.0 and length <= radius:
                return p, False, 0.0
            if abs(length - radius) <= 0.1 * radius:  # the region's size is a heuristic: 10 % is plenty
                return p, True, mu
            if length < radius:
                high = mu
                if mu - singular <= HARD_CASE * mu:
                    return _hard_case(system, g, M, radius, p, solve), True, mu
            else:
                low = mu
            new = mu + (length / radius - 1.0) * length * length / max(_dot(Mp, solve(Mp)), 1e-300)
            if not low < new < high:  # Newton left the bracket: bisect it
                new = 0.5 * (low + high) if math.isfinite(high) else 2.0 * mu
        mu = guess if k == 0 and low < guess < high else new
    if p is None:  # no shift made H + mu M positive definite (H not finite, say): no step, no shift left
        return torch.zeros_like(g), True, math.inf
    return p, True, mu


def shifted_step(system: "DenseSystem | TrajectorySystem", g: "torch.Tensor", mu: float
                 ) -> tuple["torch.Tensor", float]:
    """(p, mu): p = -(H + mu M)^{-1} g at the given shift, raised fourfold (to at least 1e-8 of the
    system's scale) until H + mu M is positive definite, so p is a descent step on the model; after
    ``SHIFT_TRIES`` raises (H not finite, say) no step: (0, inf), which the run reports as stalled."""
    for _ in range(SHIFT_TRIES):
        solve = system.factor(mu)
        if solve is not None:
            return solve(-g), mu
        mu = max(4.0 * mu, 1e-8 * system.scale)
    return torch.zeros_like(g), math.inf


def _hard_case(system: "DenseSystem | TrajectorySystem", g: "torch.Tensor", M: "torch.Tensor", radius: float,
               p: "torch.Tensor", solve: Callable[["torch.Tensor"], "torch.Tensor"]) -> "torch.Tensor":
    """Moré and Sorensen's hard case: H + mu M is nearly singular (mu just above -lambda_min, the
    smallest eigenvalue of H in the metric M) and p = -(H + mu M)^{-1} g still lies inside the region,
    because g is nearly orthogonal to the eigenvector u of lambda_min. Then p + tau u with
    |p + tau u|_M = radius, the sign of tau giving the lower model value, is the region's minimizer (to
    the accuracy of mu): without it the steps stay short and the iteration crawls along the negative
    curvature. u by inverse iteration with the factorization at hand. p itself is kept when neither
    completion lowers the model: the case is also entered where H + mu M is far from singular
    (``TrajectorySystem`` counts a shift as too small while a particle's own block is indefinite), and
    there u can have positive curvature and p + tau u lie uphill."""
    u = torch.randn(p.shape, generator=torch.Generator().manual_seed(0), dtype=p.dtype)
    for _ in range(INVERSE_ITERATIONS):
        u = solve(_apply(M, u))
        u = u / math.sqrt(max(_dot(u, _apply(M, u)), 1e-300))
    b, c = 2.0 * _dot(p, _apply(M, u)), _dot(p, _apply(M, p)) - radius * radius
    root = math.sqrt(max(b * b - 4.0 * c, 0.0))

    def model(v: "torch.Tensor") -> float:
        return _dot(g, v) + 0.5 * _dot(v, system.product(v))
    return min((p, p + 0.5 * (-b + root) * u, p + 0.5 * (-b - root) * u), key=model)


def trajectory_system_bytes(N: int, V: int) -> int:
    """Peak memory of ``TrajectorySystem`` and the blocks it is built from: ``TRAJECTORY_COPIES`` N x V x V
    tensors of float64."""
    return TRAJECTORY_COPIES * 8 * N * V * V


def structured_system_bytes(problem: Problem) -> int:
    """The bytes of ``problem``'s structured Newton system where one can be used (every term but the
    nonlocal one summed over particles, at most ``STRUCTURED_VARS`` terminal unknowns, within
    ``STRUCTURED_MEMORY``), else 0: what ``optimizers._structured`` requires first and what the memory
    budget counts."""
    N, D = problem.N, problem.dynamics.state_dim
    V = math.prod(problem.dynamics.variable_shape(N, problem.M)[1:])
    need = trajectory_system_bytes(N, V)
    return need if problem.separable and N * D <= STRUCTURED_VARS and need <= STRUCTURED_MEMORY else 0


def trajectory_diagonal(blocks: "torch.Tensor", J: "torch.Tensor", H_ne: "torch.Tensor") -> "torch.Tensor":
    """The V x V diagonal blocks B_i + J^T H_NE[i, i] J of ``TrajectorySystem``'s Hessian."""
    idx = torch.arange(blocks.shape[0])
    return blocks + torch.einsum("dv,nde,ew->nvw", J, H_ne[idx, :, idx, :], J)


class TrajectorySystem:
    """The Newton system of eq. (50) in full trajectories when every term but the nonlocal one is a
    sum over particles (``Problem.separable``): H = blockdiag(B_i) + J^T H_NE J, with B_i (V x V) the
    Hessian of particle i's own terms (control energy, obstacle penalty, potential field), J (D x V) the
    shared map from a particle's variables to its terminal state and H_NE ((N D) x (N D)) the nonlocal
    energy's Hessian in the terminal states. H + mu M (M block-diagonal) is factored through the Schur
    complement on the terminal states: with A_i = B_i + mu M_i > 0 and T_i = (J A_i^{-1} J^T)^{-1},

        H + mu M > 0  <=>  blockdiag(T_i) + H_NE > 0,
        (H + mu M)^{-1} r = A^{-1} (r - J^T H_NE q),  (blockdiag(T_i) + H_NE) q = blockdiag(T_i) J A^{-1} r,

    so a factorization costs N Choleskys of V x V and one of (N D) x (N D), not one of (N V) x (N V).
    A shift that leaves some A_i indefinite counts as too small (conservative: H + mu M may already be
    positive definite there, through J^T H_NE J; the larger shift still gives a descent step). The least
    shift that does not, ``floor``, is computed once per Hessian (one batched eigenvalue problem of
    the pencils (B_i, M_i), ~2 ms at N = 150, V = 22), so that the shift search (``exact_step``) does not
    probe below it: with obstacles some particle's block is indefinite at almost every step (the
    penalty is concave inside), and probing upward from 0 took ~12 factorizations per step, 3 in 4 of
    them failing on a block (a random disc scene: 7,709 for 628 steps; from the floor 811, 16.1 -> 14.1 s)."""

    def __init__(self, blocks: "torch.Tensor", J: "torch.Tensor", H_ne: "torch.Tensor", M: "torch.Tensor") -> None:
        self.B, self.J, self.M = blocks, J, M
        N, D = H_ne.shape[:2]
        self.H_ne = H_ne.reshape(N * D, N * D)
        # below this shift some A_i = B_i + mu M_i is indefinite: -lambda_min of the pencils (B_i, M_i),
        # the eigenvalues of L_i^-1 B_i L_i^-T with M_i = L_i L_i^T (0, none known, if a metric block
        # does not factor: the search then probes from 0 as without it)
        L, info = torch.linalg.cholesky_ex(M)
        self.floor = 0.0
        # only a block B_i that is not positive definite has a pencil with a negative eigenvalue: the
        # eigenvalue problems are solved for those alone (most blocks are definite)
        indefinite = (torch.linalg.cholesky_ex(blocks)[1] != 0).nonzero()[:, 0]
        if not bool((info != 0).any()) and indefinite.numel():
            half = torch.linalg.solve_triangular(L[indefinite], blocks[indefinite], upper=False)
            pencil = torch.linalg.solve_triangular(L[indefinite], half.transpose(1, 2), upper=False)
            lowest = float(torch.linalg.eigvalsh(0.5 * (pencil + pencil.transpose(1, 2)))[:, 0].min())
            self.floor = max(0.0, -lowest) if math.isfinite(lowest) else 0.0
        self.scale = float(blocks.abs().sum(2).max() + self.H_ne.abs().sum(1).max() * float(J.abs().sum(1).max()) ** 2
                           ) / max(float(M.abs().sum(2).max()), 1e-300)

    def product(self, v: "torch.Tensor") -> "torch.Tensor":
        """H v for v of shape (N, V)."""
        q = (v @ self.J.T).reshape(-1)
        return torch.einsum("nvw,nw->nv", self.B, v) + (self.H_ne @ q).reshape(v.shape[0], -1) @ self.J

    def factor(self, mu: float) -> Callable[["torch.Tensor"], "torch.Tensor"] | None:
        """v -> (H + mu M)^{-1} v, or None when H + mu M is not positive definite."""
        N, D = self.B.shape[0], self.J.shape[0]
        L, info = torch.linalg.cholesky_ex(self.B + mu * self.M)
        if bool((info != 0).any()):
            return None
        AJ = torch.cholesky_solve(self.J.T.expand(N, -1, -1), L)  # A_i^{-1} J^T: (N, V, D)
        T = torch.linalg.inv(self.J @ AJ)  # (N, D, D)
        K = self.H_ne.clone()
        K.view(N, D, N, D).diagonal(dim1=0, dim2=2).add_(T.permute(1, 2, 0))  # as DenseSystem adds mu M
        LK, info = torch.linalg.cholesky_ex(K)
        if int(info) != 0:
            return None

        def solve(r: "torch.Tensor") -> "torch.Tensor":
            Ar = torch.cholesky_solve(r[..., None], L)[..., 0]  # A^{-1} r: (N, V)
            a = torch.einsum("nde,ne->nd", T, Ar @ self.J.T)
            q = torch.cholesky_solve(a.reshape(-1, 1), LK)
            w = (self.H_ne @ q).reshape(N, D)
            return Ar - torch.einsum("nvd,nd->nv", AJ, w)
        return solve


#: ``entering_fractions`` stops a point this far into the smoothing band (as a fraction of it), found by
#: this many bisections of the particle's step.
ENTERING_BAND, ENTERING_BISECTIONS = 1e-2, 30


def entering_fractions(objective: Objective, x: "torch.Tensor", p: "torch.Tensor") -> "torch.Tensor | None":
    """For each particle, the fraction a_i in [0, 1] of its step p_i (rows of the full-trajectory variables
    x) it can take before a time point or segment that lies outside every obstacle (penalty 0) at x
    enters one deeper than ``ENTERING_BAND`` of the penalty's smoothing band (``hinge``); None when no
    particle enters. Outside an obstacle the penalty's Hessian is zero, so Newton's model does not see
    an obstacle a step would cross into: such steps were rejected with rho down to -25 (the penalty rose
    20-30 times the whole predicted decrease) and the radius shrank 4x to 64x before steps grew back, a
    sawtooth of a dozen iterations per contact. A point stopped just inside the band is not free at the
    next iteration: the model then has the band's curvature. Positions are affine in each particle's
    own variables (every dynamics), so a fraction of its step moves its positions by that fraction of
    their whole displacement."""
    with torch.no_grad():
        start = objective.positions(x)
        moved = objective.positions(x + p) - start

        def terms(rows: "torch.Tensor", a: "torch.Tensor") -> "torch.Tensor":
            return torch.cat(objective.obstacle_terms(start[rows] + a[:, None, None] * moved[rows]), 1)
        free = torch.cat(objective.obstacle_terms(start), 1) <= 0.0
        tau = objective.obstacle_smoothing
        level = objective.problem.obstacles.weight * hinge(torch.tensor(ENTERING_BAND * tau), tau)

        def entered(rows: "torch.Tensor", a: "torch.Tensor") -> "torch.Tensor":
            return ((terms(rows, a) > level) & free[rows]).any(1)
        rows = entered(torch.arange(x.shape[0]), torch.ones(x.shape[0], dtype=x.dtype)).nonzero()[:, 0]
        if rows.numel() == 0:
            return None
        low, high = torch.zeros(rows.numel(), dtype=x.dtype), torch.ones(rows.numel(), dtype=x.dtype)
        for _ in range(ENTERING_BISECTIONS):
            mid = 0.5 * (low + high)
            into = entered(rows, mid)
            high, low = torch.where(into, mid, high), torch.where(into, low, mid)
        fractions = torch.ones(x.shape[0], dtype=x.dtype)
        fractions[rows] = low
        return fractions


def _dot(a: "torch.Tensor", b: "torch.Tensor") -> float:
    return float((a * b).sum())


def _to_boundary(p: np.ndarray, d: np.ndarray, M: np.ndarray, radius: float) -> float:
    """tau >= 0 with |p + tau d|_M = radius (CG's numpy arrays)."""
    pm, dm = blockwise.products(M, p), blockwise.products(M, d)
    a, b, c = blockwise.dot(d, dm), 2 * blockwise.dot(p, dm), blockwise.dot(p, pm) - radius * radius
    return (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a) if a > 0 else 0.0


class CGPath:
    """The iterates of one Steihaug-Toint CG run on g.p + p.H p / 2 (preconditioner P, metric M) and
    the region's step they give for any radius up to the run's own.

    CG's iterates p_0 = 0, p_1, ... do not depend on the radius; only where the run stops does (the
    first iterate outside |p|_M <= radius, a direction of negative curvature, or convergence). So for
    a smaller radius r the step is the point where this same path first leaves |p|_M <= r: p_k + tau d_k
    with |p_k + tau d_k|_M = r on the first segment whose end lies outside (or along the direction of
    negative curvature), else the run's last iterate. A step that the objective rejects is retried at
    a quarter of the radius from the same point (same g, P, M), so the retry reads its step off the
    kept path, bitwise what a new run would return, without new Hessian-vector products (N = 3,000
    samples: about one step in five is rejected, after 30-90 products). The segments are kept up to
    ``KEPT_BYTES``; past that a radius the kept part does not reach gets None (run CG again)."""

    def __init__(self, M: np.ndarray) -> None:
        self.M = M
        self.segments: list[tuple[np.ndarray, np.ndarray, float]] = []  # (p_k, d_k, |p_k+1|_M)
        self.complete = True  # whether every segment up to the run's end is kept
        self.last: np.ndarray | None = None  # the run's last iterate, when it ended inside the region

    def keep(self, p: np.ndarray, d: np.ndarray, end_length: float) -> None:
        """Keep the segment from p along d (end_length: |p + alpha d|_M at CG's next iterate; inf for
        a direction of negative curvature, which every region's step follows to its boundary)."""
        if (len(self.segments) + 1) * 2 * d.nbytes > KEPT_BYTES:
            self.complete = False
        if self.complete:
            self.segments.append((p, d, end_length))

    def step(self, radius: float) -> "tuple[torch.Tensor, bool] | None":
        """The region's step for ``radius`` (at most the run's) and whether it lies on the boundary;
        None when the kept segments do not reach that far."""
        for p, d, end_length in self.segments:
            if end_length >= radius:
                return torch.from_numpy(p + _to_boundary(p, d, self.M, radius) * d), True
        if not self.complete or self.last is None:
            return None
        return torch.from_numpy(self.last), False


def steihaug(hv, g: "torch.Tensor", P: "torch.Tensor", M: "torch.Tensor", radius: float,
             forcing: float) -> tuple["torch.Tensor", bool, int, CGPath]:
    """Approximate minimizer p of g.p + p.H p / 2 with |p|_M <= radius; returns (p, on the boundary,
    Hessian-vector products used, the run's ``CGPath`` for retries at smaller radii). ``hv`` takes and
    gives tensors; the iteration itself runs on their numpy views (float64), where a vector operation
    on N = 1,000 particles costs about 1 us against 3-5 us as a tensor operation. Measured per CG
    iteration in one process (2-D samples at the OT start; with ``allocator.keep_freed_memory``, as
    the entry points run): N = 1,000 0.21 -> 0.17 ms (the product itself 0.10 ms), N = 3,000 0.47 ->
    0.41 ms, N = 10,000 1.58 -> 1.38 ms; steps agree to ~1e-11 (the dots add in another order)."""
    P, M = (np.ascontiguousarray(t.detach().numpy()) for t in (P, M))
    path = CGPath(M)
    r = np.array(g.detach().numpy(), dtype=np.float64)
    p = np.zeros_like(r)
    z = blockwise.products(P, r)
    rz = blockwise.dot(r, z)
    tol = forcing * math.sqrt(max(rz, 0.0))
    d = -z
    for k in range(1, MAX_CG + 1):
        Hd = hv(torch.from_numpy(d)).numpy()
        dHd = blockwise.dot(d, Hd)
        if dHd <= 0:  # negative curvature: follow it to the boundary
            path.keep(p, d, math.inf)
            return torch.from_numpy(p + _to_boundary(p, d, M, radius) * d), True, k, path
        alpha = rz / dHd
        trial = p + alpha * d
        length = math.sqrt(max(blockwise.dot(trial, blockwise.products(M, trial)), 0.0))
        path.keep(p, d, length)
        if length >= radius:
            return torch.from_numpy(p + _to_boundary(p, d, M, radius) * d), True, k, path
        p = trial
        r = r + alpha * Hd
        z = blockwise.products(P, r)
        rz_new = blockwise.dot(r, z)
        if math.sqrt(max(rz_new, 0.0)) <= tol:
            path.last = p
            return torch.from_numpy(p), False, k, path
        d = -z + (rz_new / rz) * d
        rz = rz_new
    path.last = p
    return torch.from_numpy(p), False, MAX_CG, path


def trust_region(objective: "ReducedObjective | Objective", x0: "torch.Tensor", spec: OptimizerSpec, cap: float,
                 phase: str = "newton-cg", iterations: int = 0, evaluations: int = 0,
                 parts: Callable[["torch.Tensor"], tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]] | None = None
                 ) -> Iterator[Step]:
    """Trust-region Newton from x0 (see the module docstring); yields a ``Step`` per iteration
    (``evaluations`` counts gradients and Hessian-vector products). In the terminal states of a
    ``ReducedObjective`` by default; in full trajectories (x0 of shape (N, ...), V numbers per particle)
    when ``parts(x)`` gives the Hessian's structure there, (B, J, H_NE) of ``TrajectorySystem``: exact
    steps, stopped by the Newton decrement."""
    shape = x0.shape
    N = shape[0]
    x = x0.detach().clone().reshape(N, -1)

    def evaluate(v: "torch.Tensor") -> tuple[dict[str, float], "torch.Tensor"]:
        e, grad = objective.value_and_grad(v.reshape(shape))
        return e, grad.reshape(N, -1)

    energies, g = evaluate(x)
    evaluations += 1
    f = energies["objective"]
    radius = None
    shift, raise_by = 0.0, 2.0  # exact steps: the shift mu of H + mu M, and its factor after a rejection
    it = 0
    exact = parts is not None or x.numel() <= DENSE_VARS
    to_gtol = parts is None and exact  # small reduced problems: the last digits cost little
    adaptive = to_gtol and x.numel() > ADAPTIVE_MIN_VARS  # there, after the first step, the shift adapts
    moved = True  # whether x changed since the Hessian was computed (a rejected step keeps it)
    path: CGPath | None = None  # the last CG run's iterates (CG steps)
    # in full trajectories (obstacle problems) the plateau applies at any size: the smoothed penalty's
    # landscape is glassy at any N (contacts come and go) and Newton crawls. Their solves used to end
    # early on a false reading of the rounding stop (``_hard_case`` returned uphill steps, whose negative
    # predicted decrease passed for rounding noise at gradient norms 0.05-5); with that mended and no
    # plateau the three-disc scene with whole-path avoidance went from 2 s to its 60 s limit, and so did
    # a random disc scene. With it, over 23 disc and polygon scenes (Fig. 4, the obstacle benchmark's
    # three discs with and without segments, the gap and mixture presets, the default scene with a disc,
    # 400 particles past a disc, a polygon wall, 14 random scenes): 181 -> 139 s in all, the polygon wall
    # converged in 32 s at 9.84450 (it had reached its 60 s limit at 9.87115), the other endpoints in the
    # glassy spread (relative -3.1e-4 .. +1.4e-4: 12 lower, 8 higher, 3 equal; Fig. 4 16.0968834 ->
    # 16.0968819)
    plateau = spec.plateau if parts is not None else plateau_tolerance(objective, spec)
    summed = rounding_scale(objective)  # the objective's rounding is relative to |E| + this
    window = Window(f, PLATEAU_WINDOW)
    obstacles = parts is not None and objective.problem.obstacles is not None  # steps stop at their edges
    while True:
        it += 1
        if moved and parts is not None:
            newton = P = M = B = None  # the last point's system: freed before the new one is built (N V x V each)
            B, J, H_ne = parts(x)
            P, M = block_metric(trajectory_diagonal(B, J, H_ne), PRECONDITIONER_FLOOR)
            newton = TrajectorySystem(B, J, H_ne, M)
        elif moved and exact:
            H = objective.hessian(x)
            P, M = block_metric(H.reshape(N, -1, N, x.shape[1])[torch.arange(N), :, torch.arange(N), :],
                                      PRECONDITIONER_FLOOR)
            newton = DenseSystem(H, M, single=plateau > 0 or x.numel() >= SINGLE_VARS)
        elif moved:
            curvature = objective.curvature(x)
            P, M = block_metric(curvature.blocks, PRECONDITIONER_FLOOR)
        gnorm_P = _length(g, P)
        if radius is None:
            radius = gnorm_P  # the M-length of the first preconditioned gradient step
        if exact:
            if adaptive and it > 1:
                p, shift = shifted_step(newton, g, shift)
                boundary = shift > NEWTON_SHIFT * newton.scale
            else:  # the region's exact step (on adaptive runs the first, which sets the first shift)
                p, boundary, shift = exact_step(newton, g, M, radius, shift)
            products = 1

            def model(v: "torch.Tensor") -> float:
                return _dot(g, v) + 0.5 * _dot(v, newton.product(v))
        else:
            kept = None if moved else path.step(radius)  # a retry from the same point: the path is kept
            if kept is None:
                p, boundary, products, path = steihaug(curvature, g, P, M, radius, min(0.5, math.sqrt(gnorm_P)))
            else:
                (p, boundary), products = kept, 0

            def model(v: "torch.Tensor") -> float:
                return _dot(g, v) + 0.5 * _dot(v, curvature(v))
        longest = float(p.norm(dim=1).max())
        if longest > cap:
            p, boundary = p * (cap / longest), True
        left = -model(p)  # what the model has left to gain within the region
        predicted = left
        if obstacles:
            fractions = entering_fractions(objective, x.reshape(shape), p.reshape(shape))
            if fractions is not None:
                # each particle stops at the edge; where that loses the model's descent (another's
                # move relied on the stopped one's), the whole step stops at the first edge instead
                clipped, uniform = p * fractions[:, None], p * float(fractions.min())
                p, boundary = (clipped if model(clipped) <= model(uniform) else uniform), True
                predicted = -model(p)
        e_new, g_new = evaluate(x + p)
        evaluations += products + 2
        rho = (f - e_new["objective"]) / predicted if predicted > 0 else -1.0
        accepted = math.isfinite(e_new["objective"]) and rho > 1e-4
        moved = accepted
        step = float(p.norm(dim=1).max()) if accepted else 0.0
        if accepted:
            x, g, energies, f = x + p, g_new, e_new, e_new["objective"]
        if adaptive:  # Nielsen's rule: lower the shift after a good step, raise it ever faster after rejections
            shift = max(shift, SHIFT_FLOOR * newton.scale)
            if accepted:
                shift, raise_by = shift * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 2.0
            else:
                shift, raise_by = shift * raise_by, 2.0 * raise_by
        elif accepted:
            if rho > GOOD and boundary:
                # CG's region grows from the step taken, radius <- max(radius, GROW |p|_M), so that after
                # steps cut to the cap it stays near their length: grown 2x per capped step (to 1e32 at
                # N = 10,000), CG ran up to 100+ Hessian-vector products (~20 ms each there) to the
                # region's edge for a step the cap then cut back (N = 10,000 continuum: 2.9118305 after
                # 90 s; now 2.9114441, and it converges). Exact steps cost the same for any radius and,
                # within a larger region, point along Newton's step, which the cap then shortens: their
                # region grows from the radius (Fig. 1: 1.9794232, against 1.9796221 from the step).
                radius = GROW * radius if exact else max(radius, GROW * _length(p, M))
            elif rho < POOR:
                radius *= SHRINK
        else:
            radius = SHRINK * min(radius, _length(p, M))
        gnorm = per_particle_grad_norm(g.reshape(shape))
        window.add(f, step)
        status = None
        if not math.isfinite(f):
            status = "diverged"
        elif gnorm <= spec.gtol:
            status = "converged"
        elif left <= ROUNDING * (abs(f) + summed):  # what is left to gain is rounding noise
            status = "converged"
        elif not to_gtol and accepted and not boundary and predicted <= spec.rtol * abs(f):
            status = "converged"  # the Newton decrement
        elif accepted and window.plateau(plateau, cap):
            status = "converged"  # the plateau
        if status is None and (shift > STALLED_SHIFT * newton.scale if adaptive else radius < 1e-14 * cap):
            status = "stalled"
        yield Step(x.reshape(shape), energies, gnorm, step, iterations + it, evaluations, phase, status=status)
        if status:
            return


def _length(v: "torch.Tensor", blocks: "torch.Tensor") -> float:
    """|v| in the block-diagonal metric ``blocks``: sqrt(v . B v)."""
    return math.sqrt(max(_dot(v, _apply(blocks, v)), 0.0))


def _apply(blocks: "torch.Tensor", v: "torch.Tensor") -> "torch.Tensor":
    return blockwise.block_products(blocks, v)
