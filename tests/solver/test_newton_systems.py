"""The pieces of trust-region Newton in full trajectories: the banded (colored) Hessian of each
particle's own terms, the Schur-complement factorization of the structured Newton system, and the exact
trust-region step (Moré-Sorensen), its hard case included. Each is checked against a dense computation
that knows the answer."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from solver import problem_from_dict, solve
from solver.kernels import second_order
from solver.objective import Objective
from solver.optimizers import _batched_hessian, _structured, hessian, own_hessians, separable_parts
from solver.trust_region import DenseSystem, TrajectorySystem, _hard_case, block_metric, exact_step

ROOT = Path(__file__).resolve().parents[2]

SCENE = {"source": {"points": [[0.0, 0.0], [0.1, 0.3], [-0.2, 0.1], [0.05, -0.2]]},
         "target": {"kind": "particles", "points": [[2.0, 0.1], [1.9, -0.2], [2.2, 0.3], [2.1, 0.0]]},
         "obstacles": [{"center": [1.0, 0.05], "radius": 0.3},
                       {"kind": "polygon", "vertices": [[0.5, 0.4], [0.8, 0.45], [0.7, 0.8]]}],
         "obstacle_segments": True, "eps": 0.05, "M": 9}


def scene(**changes) -> dict:
    return json.loads(json.dumps(dict(SCENE, **changes)))


CASES = {
    "velocity, segments": scene(),
    "velocity, W3 control cost": scene(p=3),
    "acceleration, segments": scene(dynamics={"kind": "acceleration"},
                                    source=dict(SCENE["source"], velocities=[[1.0, 0.0]] * 4),
                                    target={"kind": "particles", "points": SCENE["target"]["points"],
                                            "velocities": [[1.0, 0.0]] * 4}),
    "linear system": scene(dynamics={"kind": "linear", "A": [[0.0, 1.0], [0.0, 0.0]], "B": [[0.0], [1.0]]},
                           obstacles=None, obstacle_segments=False),
}


def random_point(objective: Objective, seed: int = 0) -> torch.Tensor:
    """Paths through the obstacles (so the penalty's curvature is in play), with a random wiggle."""
    g = torch.Generator().manual_seed(seed)
    return 0.6 + 0.4 * torch.randn(objective.variable_shape, generator=g, dtype=torch.float64)


def every_product(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """B_i from all V Hessian-vector products (a unit vector in every particle's block at once)."""
    N, V = x.shape[0], x.numel() // x.shape[0]

    def local(v: torch.Tensor) -> torch.Tensor:
        pos = objective.positions(v)
        return objective.kinetic(pos, v) + objective.obstacle(pos) + objective.potential_field(pos)
    tangents = torch.eye(V, dtype=x.dtype)[:, None, :].expand(V, N, V).reshape(V, *x.shape)
    blocks = _batched_hessian(local, x, tangents).reshape(V, N, V).permute(1, 2, 0)
    return 0.5 * (blocks + blocks.transpose(1, 2))


@pytest.mark.parametrize("name", list(CASES))
def test_own_hessians_equal_every_variable_product(name):
    """The colored products read the same numbers as V products (the band is exact, not an
    approximation: the same sums, up to rounding)."""
    p = problem_from_dict(CASES[name])
    objective = Objective(p, obstacle_smoothing=1e-3 if p.obstacles else 0.0)
    x = random_point(objective)
    colored, full = own_hessians(objective, x), every_product(objective, x)
    assert float(full.abs().max()) > 0.01  # something to compare
    assert torch.allclose(colored, full, rtol=0, atol=1e-12 * float(full.abs().max()))


def dense_hessian(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    with second_order():  # the kernels' twice differentiable form
        H = torch.autograd.functional.hessian(lambda v: objective.energies(v.reshape(x.shape))["objective"],
                                              x.reshape(-1))
    return 0.5 * (H + H.T).reshape(n, n)


def test_trajectory_system_factors_the_whole_hessian():
    """blockdiag(B_i) + J^T H_NE J is the autograd Hessian of the whole (smoothed) objective; the Schur
    complement solve equals a dense solve of H + mu M; factor() says "not positive definite" exactly
    when a dense Cholesky does."""
    p = problem_from_dict(scene())
    objective = Objective(p, obstacle_smoothing=1e-3)
    x = random_point(objective, seed=1)
    N, V = x.shape[0], x.numel() // x.shape[0]
    blocks, J, H_ne = separable_parts(objective, x)
    M = block_metric(blocks, 1e-10)[1]
    system = TrajectorySystem(blocks, J, H_ne, M)
    H = dense_hessian(objective, x)
    scale = float(H.abs().max())
    v = torch.randn(N, V, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # Hessian-vector products: two routes through the same float64 sums (1e-10 of the largest entry)
    assert torch.allclose(system.product(v).reshape(-1), H @ v.reshape(-1), rtol=0, atol=1e-10 * scale)
    Md = torch.block_diag(*M)
    lowest = float(torch.linalg.eigvalsh(torch.linalg.solve(torch.linalg.cholesky(Md), H)
                                         @ torch.linalg.inv(torch.linalg.cholesky(Md)).T).min())
    assert lowest < 0  # paths inside the obstacles and crossing: an indefinite Hessian
    for mu in (-1.5 * lowest, -0.5 * lowest):
        solve_mu = system.factor(mu)
        dense_ok = int(torch.linalg.cholesky_ex(H + mu * Md)[1]) == 0
        assert (solve_mu is not None) == dense_ok
        if solve_mu is not None:
            exact = torch.linalg.solve(H + mu * Md, v.reshape(-1))
            # a well-conditioned solve (mu 1.5x past the lowest eigenvalue): agreement to 1e-8 relative
            assert torch.allclose(solve_mu(v).reshape(-1), exact, rtol=0, atol=1e-8 * float(exact.abs().max()))
    assert system.factor(-1.5 * lowest) is not None and system.factor(-0.5 * lowest) is None


COUPLED = {
    "gaussian and quadratic interactions, disc, W3": scene(
        interaction=[{"kind": "gaussian", "strength": 0.5, "width": 0.3}, {"kind": "quadratic", "strength": 0.2}],
        obstacles=[{"center": [1.0, 0.05], "radius": 0.3}], obstacle_segments=False, p=3),
    "mean-field drift, potential": scene(dynamics={"kind": "velocity", "drift": {"kind": "mean_attraction",
                                                                                 "strength": 1.5}},
                                         obstacles=None, obstacle_segments=False,
                                         potential=[{"kind": "gaussian", "center": [1, 0], "height": 1, "width": 0.4}]),
    "linear system, gaussian interaction": scene(
        dynamics={"kind": "linear", "A": [[0.0, 1.0], [0.0, 0.0]], "B": [[0.0], [1.0]]}, obstacles=None,
        obstacle_segments=False, interaction=[{"kind": "gaussian", "strength": -0.3, "width": 0.5}]),
}


@pytest.mark.parametrize("name", list(COUPLED))
def test_the_hessian_of_coupled_particles_is_the_whole_autograd_hessian(name):
    """Interactions or a drift couple the particles: ``coupled_hessian`` (products for the O(N M) terms,
    the Gaussian pair sums in closed form) equals the autograd Hessian of the whole objective."""
    p = problem_from_dict(COUPLED[name])
    assert not p.separable
    objective = Objective(p, obstacle_smoothing=1e-3 if p.obstacles else 0.0)
    x = random_point(objective, seed=3)
    H, exact = hessian(objective, x), dense_hessian(objective, x)
    scale = float(exact.abs().max())
    # two routes through float64 sums of a few hundred terms each: 1e-12 of the largest entry
    assert torch.allclose(H, exact, rtol=0, atol=1e-12 * scale)
    if p.interactions and p.interactions[0].kind == "gaussian":  # the closed form is in play, and matters
        without = problem_from_dict(dict(COUPLED[name], interaction=COUPLED[name]["interaction"][1:]))
        other = hessian(Objective(without, obstacle_smoothing=objective.obstacle_smoothing), x)
        assert float((H - other).abs().max()) > 1e-6 * scale  # a million times the tolerance above


class CountingTrajectory(TrajectorySystem):
    factorizations = 0

    def factor(self, mu):
        CountingTrajectory.factorizations += 1
        return super().factor(mu)


def test_the_floor_is_the_least_shift_with_every_own_block_positive_definite():
    """``TrajectorySystem.floor``: paths inside an obstacle (the penalty's concave inside makes some
    particle's own block indefinite); just below the floor a Cholesky of some B_i + mu M_i fails, just
    above it none does. Where a metric block does not factor, no floor (0)."""
    p = problem_from_dict(scene())
    objective = Objective(p, obstacle_smoothing=1e-3)
    blocks, J, H_ne = separable_parts(objective, random_point(objective, seed=1))
    M = block_metric(blocks, 1e-10)[1]
    floor = TrajectorySystem(blocks, J, H_ne, M).floor
    assert floor > 0
    # the pencils' eigenvalues are accurate to ~1e-12 relative here: 1e-6 on either side is decisive
    assert bool((torch.linalg.cholesky_ex(blocks + floor * (1 - 1e-6) * M)[1] != 0).any())
    assert bool((torch.linalg.cholesky_ex(blocks + floor * (1 + 1e-6) * M)[1] == 0).all())
    # a metric block that does not factor (a non-finite Hessian's): no floor known, the search probes from 0
    broken = M.clone()
    broken[0] = float("nan")
    assert TrajectorySystem(blocks, J, H_ne, broken).floor == 0.0


@pytest.mark.parametrize("hard", [False, True], ids=["easy case", "hard case"])
def test_exact_steps_from_the_floor_reach_the_region_minimum_in_one_factorization(hard):
    """The exact step's shift search starts just above the floor (or at the last step's shift) instead
    of probing upward from 0: a random disc scene took 7,709 factorizations for 628 steps, 5,885 of them
    failing on a particle's block; from the floor 811. Here the region is wide, so the solution's shift
    lies just above the floor (easy case: g has components along the lowest eigenvectors) or the hard
    case holds (g M-orthogonal to them). Either way one factorization, a step on the boundary (to the
    accepted 10 %) and a model value at most the region minimum for 0.9 times the radius plus the hard
    case's allowance (1 % of mu radius^2, see the dense test above: in the easy case the completion's
    gap to the minimum is of the same order), where probing took more than 5 factorizations. The
    nonlocal energy's Hessian is left out (at this random point it is itself indefinite and the Schur
    complement fails up to mu ~ 41, where the search goes on as before): then H + mu M is positive
    definite exactly when every block is, and H is block diagonal, so the region minimum is known."""
    p = problem_from_dict(scene())
    objective = Objective(p, obstacle_smoothing=1e-3)
    x = random_point(objective, seed=1)
    blocks, J, H_ne = separable_parts(objective, x)
    N, V = blocks.shape[:2]
    M = block_metric(blocks, 1e-10)[1]
    system = CountingTrajectory(blocks, J, 0.0 * H_ne, M)
    g = torch.randn(N, V, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    # the model in coordinates q = L^T p (M = L L^T per block), where the region is a Euclidean ball
    L = torch.linalg.cholesky(M)
    Li = torch.linalg.inv(L)
    Hq = torch.block_diag(*(Li @ blocks @ Li.transpose(1, 2)))
    lam, Q = torch.linalg.eigh(0.5 * (Hq + Hq.T))
    assert float(lam[0]) == pytest.approx(-system.floor, rel=1e-9)
    if hard:  # remove g's components along the lowest eigenvectors (in q: g_q = L^-1 g)
        gq = (Li @ g[..., None]).reshape(-1)
        lowest = Q[:, lam < float(lam[0]) + 1e-9]
        gq = gq - lowest @ (lowest.T @ gq)
        g = (L @ gq.reshape(N, V, 1))[..., 0]
    gq = (Li @ g[..., None]).reshape(-1)
    radius = 1e3 * float(gq.norm())  # far wider than any step well above the floor
    CountingTrajectory.factorizations = 0
    step, boundary, mu = exact_step(system, g, M, radius)
    assert boundary and 0.9 * radius <= math.sqrt(float((step * (M @ step[..., None])[..., 0]).sum())) <= 1.1 * radius
    assert CountingTrajectory.factorizations == 1
    value = float((g * step).sum() + 0.5 * (step * system.product(step)).sum())
    assert value <= region_minimum(Hq, gq, 0.9 * radius) + 1e-2 * mu * radius ** 2
    probing = CountingTrajectory(blocks, J, 0.0 * H_ne, M)
    probing.floor = 0.0  # as if unknown: the search probes upward from mu = 0
    CountingTrajectory.factorizations = 0
    exact_step(probing, g, M, radius)
    assert CountingTrajectory.factorizations > 5


def region_minimum(H: torch.Tensor, g: torch.Tensor, radius: float) -> float:
    """The minimum of g.p + p.H p / 2 over |p| <= radius (Euclidean), from the eigendecomposition: the
    secular equation solved by bisection, the hard case completed along the lowest eigenvector."""
    lam, Q = torch.linalg.eigh(H)
    c = Q.T @ g

    def length(mu: float) -> float:
        return float(torch.sqrt(((c / (lam + mu)) ** 2).sum()))
    low = max(0.0, -float(lam[0]))
    if low == 0.0 and float(lam[0]) > 0 and length(0.0) <= radius:
        p = -Q @ (c / lam)
    elif length(low + 1e-14 * (1 + low)) < radius:  # hard case
        inside = torch.where(lam + low > 1e-12, -c / (lam + low), torch.zeros_like(c))
        inside[0] = (radius ** 2 - float((inside ** 2).sum())) ** 0.5
        p = Q @ inside
    else:
        lo, hi = low, low + 1.0
        while length(hi) > radius:
            hi *= 2.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if length(mid) > radius else (lo, mid)
        p = -Q @ (c / (lam + hi))
    return float(g @ p + 0.5 * p @ H @ p)


class Counting(DenseSystem):
    factorizations = 0

    def factor(self, mu):
        Counting.factorizations += 1
        return super().factor(mu)


@pytest.mark.parametrize("hard", [False, True], ids=["easy case", "hard case"])
def test_exact_step_reaches_the_region_minimum(hard):
    """An indefinite 40 x 40 model (identity metric). The step lies on the boundary to the accepted 10 %
    and its model value is at most the region minimum for 0.9 times the radius (the minimum falls as the
    radius grows); in the hard case (g orthogonal to the lowest eigenvector) too, where a plain Newton
    iteration on the shift stalls short of the boundary. Few factorizations either way."""
    gen = torch.Generator().manual_seed(3)
    Q = torch.linalg.qr(torch.randn(40, 40, generator=gen, dtype=torch.float64))[0]
    lam = torch.linspace(-2.0, 5.0, 40, dtype=torch.float64)
    H = Q @ torch.diag(lam) @ Q.T
    g = torch.randn(40, generator=gen, dtype=torch.float64)
    if hard:  # g orthogonal to the lowest eigenvector, and a region wider than |p| can get as mu -> 2
        g = g - (Q[:, 0] @ g) * Q[:, 0]
        radius = 2.0 * float(((Q[:, 1:].T @ g) / (lam[1:] + 2.0)).norm())
    else:
        radius = 0.5 * float(torch.linalg.norm(torch.linalg.solve(H + 2.5 * torch.eye(40, dtype=H.dtype), g)))
    M = torch.eye(2, dtype=H.dtype).expand(20, 2, 2).contiguous()
    Counting.factorizations = 0
    p, boundary, mu = exact_step(Counting(H, M), g.reshape(20, 2), M, radius)
    p = p.reshape(-1)
    assert boundary and 0.9 * radius <= float(p.norm()) <= 1.1 * radius
    assert mu >= 2.0 * (1 - 1e-2)  # H + mu I positive (semi)definite
    value = float(g @ p + 0.5 * p @ H @ p)
    # the hard case's shift is within 1 % of -lambda_min (HARD_CASE): that much of mu |p|^2 / 2 may be lost
    slack = 1e-2 * mu * radius ** 2 if hard else 1e-12
    assert value <= region_minimum(H, g, 0.9 * radius) + slack
    # doubling to the first positive definite shift, then a bracketed search (19 in the hard case here;
    # without the bracket the search ran into its limit of 60)
    assert Counting.factorizations <= 25


def test_the_hard_case_never_raises_the_model_above_the_interior_step():
    """The hard case completes an interior step p along the lowest eigenvector u to the region's
    boundary, for a lower model value. Where it is entered though H + mu M is far from singular (the
    Schur factorization counts a shift as too small while some particle's own block is indefinite, H
    itself positive definite there), p + tau u can lie uphill: H = diag(1, 2), g = (1, 0), p the
    shifted Newton step (-1/1.001, 0) inside a region of radius 5, u = e1; the boundary points (+-5, 0)
    have model values 17.5 and 7.5 against p's -0.4995. Such steps were rejected and their negative
    predicted decrease read as "converged" (Fig. 4, the three-disc and random disc scenes: at gradient
    norms 0.05-5). p itself must come back (exactly: it is one of the candidates)."""
    H = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    M = torch.eye(2, dtype=H.dtype)[None]
    g = torch.tensor([[1.0, 0.0]], dtype=H.dtype)
    system = DenseSystem(H, M)
    mu = 1e-3
    solve = system.factor(mu)
    p = solve(-g)
    step = _hard_case(system, g, M, 5.0, p, solve)

    def model(v: torch.Tensor) -> float:
        return float((g * v).sum() + 0.5 * (v.reshape(-1) @ H @ v.reshape(-1)))
    assert model(p) == pytest.approx(-0.5 / 1.001 * (2 - 1 / 1.001), rel=1e-12)
    assert torch.equal(step, p)
    # where the completion does lower the model (an indefinite H, the true hard case) it is taken
    H2 = torch.diag(torch.tensor([-1.0, 2.0], dtype=torch.float64))
    g2 = torch.tensor([[0.0, 1.0]], dtype=H.dtype)  # orthogonal to the lowest eigenvector e1
    system2 = DenseSystem(H2, M)
    solve2 = system2.factor(1.0 + 1e-3)
    p2 = solve2(-g2)
    step2 = _hard_case(system2, g2, M, 2.0, p2, solve2)
    value2 = float((g2 * step2).sum() + 0.5 * (step2.reshape(-1) @ H2 @ step2.reshape(-1)))
    assert float(step2.norm()) == pytest.approx(2.0, rel=1e-9) and value2 < -1.0


def test_structured_newton_solves_a_segment_scene_outside_the_obstacles():
    """The scene above (circle and polygon, segments on) is solved by trust-region Newton on the
    structured system (its phases say so), converged, with the paths outside to 1e-3."""
    p = problem_from_dict(scene(optimizer={"time_limit": 60}))
    result = solve(p)
    assert result.final.status == "converged"
    assert any("narrower" in h["phase"] for h in result.history)
    assert p.obstacles.path_depth(result.positions) < 1e-3


def test_adaptive_shifts_end_at_a_strict_minimum_with_one_factorization_per_step(monkeypatch):
    """150 samples in 2-D (300 terminal unknowns, above ``ADAPTIVE_MIN_VARS``) from the exact OT start,
    whose objective is W2^2 (straight lines onto the targets, nonlocal energy 0): trust-region Newton
    with adaptive shifts converges, below W2^2, at a point where the Hessian is positive definite (a
    strict local minimum), with one factorization per step after the first (which solves for the
    region's radius: at most 25, see above; measured 105 for 92 steps)."""
    import numpy as np
    import ot

    from solver import trust_region as tr
    from solver.init import OTStart
    from solver.reduced import ReducedObjective

    monkeypatch.setattr(tr, "DenseSystem", Counting)
    rng = np.random.default_rng(1)
    source, target = rng.uniform(0, 1, (150, 2)), rng.normal([2, 1], 0.3, (150, 2))
    p = problem_from_dict({"source": {"points": source.tolist()},
                           "target": {"kind": "particles", "points": target.tolist()}, "eps": 0.01, "M": 5})
    assert p.N * 2 > tr.ADAPTIVE_MIN_VARS
    full, work = Objective(p), ReducedObjective(p)
    Y = work.variables_from_positions(full.positions(OTStart(blob=False).variables(full, None)))
    w2 = ot.emd2(np.full(150, 1 / 150), np.full(150, 1 / 150), ot.dist(source, target))
    assert work.value_and_grad(Y)[0]["objective"] == pytest.approx(w2, rel=1e-12)  # the start is W2^2
    Counting.factorizations = 0
    for last in tr.trust_region(work, Y, p.optimizer, p.delta):
        pass
    # "converged": the gradient tolerance, or a model predicting less decrease than the objective's
    # rounding (4e-16 |E|), which the Hessian's smallest eigenvalue here (~0.005) reaches at per-particle
    # gradients near 1e-7 (measured: 2e-10 on one install, 2.6e-7 on a fresh one)
    assert last.status == "converged" and last.grad_norm <= 1e-6
    assert last.energies["objective"] < w2
    assert float(torch.linalg.eigvalsh(work.hessian(last.variables))[0]) > 0
    assert Counting.factorizations <= last.iterations + 25


def test_shifted_step_raises_the_shift_until_positive_definite_and_gives_up_on_a_broken_system():
    """An indefinite model (lowest eigenvalue -2): the shift is raised from 0.5 until H + mu M is
    positive definite and the step solves that system; a Hessian with a NaN gives no step after a
    bounded number of tries (mu = inf: the run then stops as stalled, no endless loop)."""
    from solver.trust_region import SHIFT_TRIES, shifted_step

    gen = torch.Generator().manual_seed(4)
    Q = torch.linalg.qr(torch.randn(8, 8, generator=gen, dtype=torch.float64))[0]
    H = Q @ torch.diag(torch.linspace(-2.0, 3.0, 8, dtype=torch.float64)) @ Q.T
    M = torch.eye(2, dtype=H.dtype).expand(4, 2, 2).contiguous()
    g = torch.randn(4, 2, generator=gen, dtype=torch.float64)
    p, mu = shifted_step(DenseSystem(H, M), g, 0.5)
    assert mu > 2.0  # 0.5 -> 2 (not yet positive definite) -> 8
    assert torch.allclose((H + mu * torch.eye(8, dtype=H.dtype)) @ p.reshape(-1), -g.reshape(-1))
    broken = H.clone()
    broken[0, 0] = float("nan")
    Counting.factorizations = 0
    p, mu = shifted_step(Counting(broken, M), g, 0.5)
    assert mu == math.inf and not bool(p.any()) and Counting.factorizations == SHIFT_TRIES


@pytest.mark.parametrize("single", [False, True], ids=["float64", "float32 refined"])
def test_dense_system_solves_the_shifted_system(single):
    """(H + mu M)^{-1} v against torch's dense solve, H indefinite (600 x 600, 2-D blocks), M block-diagonal
    and positive definite; H + mu M not positive definite gives None. Tolerances: float64 Cholesky, the
    condition number here (~1e3) times rounding, 1e-12; float32 with one refinement, (1e3 * 6e-8)^2 ~ 4e-9
    plus rounding, 1e-8."""
    gen = torch.Generator().manual_seed(4)
    n, D = 300, 2
    A = torch.randn(n * D, n * D, generator=gen, dtype=torch.float64)
    H = A @ A.T / (n * D) - 0.5 * torch.eye(n * D, dtype=torch.float64)
    B = torch.randn(n, D, D, generator=gen, dtype=torch.float64)
    M = B @ B.transpose(1, 2) + torch.eye(D, dtype=torch.float64)
    system = DenseSystem(H, M, single=single)
    assert system.factor(0.0) is None  # H has negative eigenvalues
    v = torch.randn(n, D, generator=gen, dtype=torch.float64)
    for mu in (1.0, 30.0):
        K = H.clone().view(n, D, n, D)
        K.diagonal(dim1=0, dim2=2).add_(M.permute(1, 2, 0), alpha=mu)
        want = torch.linalg.solve(K.reshape(n * D, n * D), v.reshape(-1)).reshape(n, D)
        got = system.factor(mu)(v)
        assert got.dtype == torch.float64
        assert float((got - want).norm() / want.norm()) < (1e-8 if single else 1e-12)


def test_block_metric_is_the_absolute_value_of_each_block():
    """(|B|^{-1}, |B|) for definite, indefinite, nearly and exactly singular blocks (22 x 22, as an obstacle
    scene's trajectory blocks), against the eigendecomposition of every block: definite blocks take the Cholesky
    path, the others the eigendecomposition, the same matrices to rounding (1e-10 relative: condition
    numbers up to ~1e4 here times float64 rounding); eigenvalues below the floor are raised to it."""
    gen = torch.Generator().manual_seed(7)
    A = torch.randn(12, 22, 22, generator=gen, dtype=torch.float64)
    blocks = A @ A.transpose(1, 2) / 22 + 0.1 * torch.eye(22, dtype=torch.float64)
    blocks[:3] -= 2.0 * torch.eye(22, dtype=torch.float64)  # indefinite
    Q = torch.linalg.qr(A[3])[0]
    blocks[3] = Q @ torch.diag(torch.logspace(-14, 0, 22, dtype=torch.float64)) @ Q.T  # below the floor
    # exactly singular, with an exact zero pivot (1 x 4 - 2 x 2) in Cholesky's partial factor, which
    # cholesky_inverse refused (a trajectory block under the piecewise cost, whose |u|/p has no
    # curvature along u, crashed a robust solve that way)
    blocks[4] = torch.eye(22, dtype=torch.float64)
    blocks[4, :2, :2] = torch.tensor([[1.0, 2.0], [2.0, 4.0]], dtype=torch.float64)
    blocks = 0.5 * (blocks + blocks.transpose(1, 2))  # exactly symmetric, as block_metric makes them
    floor = 1e-10
    P, M = block_metric(blocks, floor)
    lam, V = torch.linalg.eigh(blocks)
    lowest = floor * float(torch.linalg.matrix_norm(blocks).max())
    lam = lam.abs().clamp_min(lowest)
    want_M = V @ torch.diag_embed(lam) @ V.transpose(1, 2)
    want_P = V @ torch.diag_embed(1.0 / lam) @ V.transpose(1, 2)
    for got, want in ((M, want_M), (P, want_P)):
        scale = torch.linalg.matrix_norm(want)[:, None, None]
        assert float(((got - want).abs() / scale).max()) < 1e-10
    assert torch.allclose(M[5:], blocks[5:], rtol=0, atol=1e-15)  # definite blocks: B itself


def test_a_singular_trajectory_block_does_not_stop_a_solve():
    """Seven particles resting at their sources (init "source") under the piecewise cost with p = 1.5,
    past a disc with whole-path avoidance: a particle's trajectory block is singular there and the
    structured Newton's preconditioner raised LinAlgError (found by a fuzz of random problem files).
    Now converged, and L-BFGS to its own rule from the end gains at most 1e-6 relative (measured 3e-9)."""
    spec = {"M": 12, "eps": 0.001, "p": 1.5, "control_cost": "piecewise", "init": "source",
            "source": {"points": [[-0.827, -0.219], [-0.627, -0.237], [0.13, 0.909], [0.895, -0.382],
                                  [0.529, -0.082], [-0.797, -0.463], [-0.365, -0.206]]},
            "target": {"kind": "mixture", "components": [
                {"weight": 0.37, "mean": [2.37, 2.23], "cov": 0.05}, {"weight": 0.25, "mean": [1.7, 0.05], "cov": 0.01},
                {"weight": 0.79, "mean": [0.44, 1.4], "cov": 0.05}]},
            "obstacles": [{"center": [0.384, 0.363], "radius": 0.166}], "obstacle_segments": True}
    final = solve(problem_from_dict(spec)).final
    after = solve(problem_from_dict(dict(spec, init={"trajectories": final.states.tolist()},
                                         optimizer={"method": "lbfgs"}))).final
    assert final.status == "converged"
    assert (final.objective - after.objective) / final.objective <= 1e-6


def test_separable_problems_without_obstacles_finish_with_structured_newton():
    """Past a potential bump (no obstacle; 60 particles, 840 variables: beyond saddle-free Newton's
    size) the robust method finishes with trust-region Newton on the structured system, converged, at
    a stationary point (every particle's gradient below 1e-5 of the start's), and no higher than L-BFGS
    alone from the same problem. Control costs whose psi'' is unbounded (p = 1.5, piecewise) keep
    L-BFGS, and so do problems small enough for saddle-free Newton."""
    rng = torch.Generator().manual_seed(5)
    spec = {"source": {"points": torch.rand(60, 2, generator=rng, dtype=torch.float64).tolist()},
            "target": {"kind": "particles",
                       "points": (2.0 + 0.3 * torch.randn(60, 2, generator=rng, dtype=torch.float64)).tolist()},
            "potential": [{"kind": "gaussian", "center": [1.2, 1.0], "height": 1.0, "width": 0.2}],
            "eps": 0.01, "M": 8, "optimizer": {"time_limit": 60}}
    p = problem_from_dict(spec)
    result = solve(p)
    assert result.final.status == "converged"
    assert any(h["phase"].endswith("/newton") for h in result.history)
    objective = Objective(p)
    x = objective.variables_from_positions(torch.as_tensor(result.positions, dtype=torch.float64))
    _, g = objective.value_and_grad(x)
    x0 = torch.zeros_like(x) + x.mean((0, 1))  # every particle at one point: far from stationary
    _, g0 = objective.value_and_grad(x0)
    # 5e-6 of it here, where the plateau rule ended the solve; a margin of 20 for other sums' rounding
    assert float(g.norm(dim=-1).max()) < 1e-4 * float(g0.norm(dim=-1).max())
    lbfgs = solve(problem_from_dict(dict(spec, optimizer={"method": "lbfgs", "time_limit": 60})))
    # local minima differ (section 4.7); the multi-start Newton run keeps the lowest of its solves
    assert result.final.objective <= lbfgs.final.objective * (1 + 1e-9)
    assert _structured(objective)
    assert not _structured(Objective(problem_from_dict(dict(spec, p=1.5))))
    assert not _structured(Objective(problem_from_dict(dict(spec, control_cost="piecewise"))))
    assert not _structured(Objective(problem_from_dict(dict(spec, M=5))))  # 480 variables: saddle-free


@pytest.mark.parametrize("shape", [(50, 1), (300, 2), (300, 3), (40, 4), (30, 22)])
def test_compiled_block_products_equal_einsums(shape):
    """``blockwise.block_products`` (the preconditioner, metric and uncoupled Hessian blocks applied in
    every CG iteration) against the exact products (long double) and torch's einsum on random blocks:
    each entry is a sum of D float64 products, within D u sum_e |B_de v_e| (u = 2^-53) of the exact one
    (the standard bound for a recursive sum). Bitwise equality with einsum held on one machine and not
    on another (22 x 22 blocks on an AVX-512 CPU, 3.6e-15 apart: MKL's kernels sum in their own order)."""
    from solver.blockwise import block_products

    N, D = shape
    generator = torch.Generator().manual_seed(N + D)
    blocks = torch.randn(N, D, D, dtype=torch.float64, generator=generator)
    v = torch.randn(N, D, dtype=torch.float64, generator=generator)
    # expanded (stride 0) blocks too, as the control energy's constant ones are
    for B in (blocks, blocks[:1].expand(N, D, D)):
        exact = np.einsum("nde,ne->nd", B.numpy().astype(np.longdouble), v.numpy().astype(np.longdouble))
        bound = D * 2.0**-53 * np.einsum("nde,ne->nd", np.abs(B.numpy()), np.abs(v.numpy()))
        for result in (block_products(B, v), torch.einsum("nde,ne->nd", B, v)):
            assert np.all(np.abs(result.numpy() - exact) <= bound)


def test_exact_step_without_a_positive_definite_shift_is_no_step():
    """A Hessian with a NaN (a problem whose energies overflowed) is positive definite at no shift: the
    search gives up after its tries with no step and an infinite shift, which the run reports as
    stalled, instead of failing on a step it never computed."""
    H = torch.eye(4, dtype=torch.float64)
    H[0, 1] = H[1, 0] = math.nan
    M = torch.eye(2, dtype=H.dtype).expand(2, 2, 2).contiguous()
    g = torch.ones(2, 2, dtype=torch.float64)
    p, boundary, mu = exact_step(DenseSystem(H, M), g, M, 1.0)
    assert boundary and mu == math.inf and torch.equal(p, torch.zeros_like(g))
