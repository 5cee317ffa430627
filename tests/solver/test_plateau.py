"""The plateau rule of the robust method's local solves (``optimizer.plateau``) and the single-precision
factorization that goes with it: a large solve ends once 10 Newton iterations (or a reassignment round)
gain less than plateau |E|, close to where descent to ``gtol`` ends; small problems and far starts are
not cut short."""
from __future__ import annotations

import pytest
import torch

from solver import ProblemError, problem_from_dict, solve
from solver.run import solve_iter
from solver.reduced import ReducedObjective
import solver.trust_region as trust_region_module
from solver.trust_region import PLATEAU_MIN_VARS, PLATEAU_WINDOW, DenseSystem, block_metric, trust_region
from tests.problems import gaussian_samples


def samples(N: int, **optimizer) -> dict:
    """``gaussian_samples`` (the scale benchmark's cases) with a 120 s limit and ``optimizer``."""
    return gaussian_samples(N, optimizer=dict({"time_limit": 120}, **optimizer))


def test_the_single_precision_factor_solves_to_float64_accuracy():
    """H + mu M factored in float32 and refined once against the float64 system: the solve agrees with a
    float64 solve to 1e-9 relative (float32 alone: ~cond * 6e-8 ~ 1e-5 here; one refinement squares
    that); an indefinite shift is refused as in float64."""
    gen = torch.Generator().manual_seed(3)
    N, D = 300, 2
    A = torch.randn(N * D, N * D, generator=gen, dtype=torch.float64)
    H = 0.5 * (A + A.T) / (N * D) ** 0.5  # eigenvalues in about [-2, 2]
    blocks = H.reshape(N, D, N, D)[torch.arange(N), :, torch.arange(N), :]
    M = block_metric(blocks + 3.0 * torch.eye(D, dtype=torch.float64), 1e-10)[1]
    Md = torch.block_diag(*M)
    lowest = float(torch.linalg.eigvalsh(torch.linalg.solve(torch.linalg.cholesky(Md), H)
                                         @ torch.linalg.inv(torch.linalg.cholesky(Md)).T).min())
    single, double = DenseSystem(H, M, single=True), DenseSystem(H, M)
    v = torch.randn(N, D, generator=gen, dtype=torch.float64)
    mu = -1.05 * lowest  # just past the lowest eigenvalue: condition number ~1e2-1e3
    exact = torch.linalg.solve(H + mu * Md, v.reshape(-1)).reshape(N, D)
    got = single.factor(mu)(v)
    assert got.dtype == torch.float64
    assert float((got - exact).norm() / exact.norm()) < 1e-9
    assert float((double.factor(mu)(v) - exact).norm() / exact.norm()) < 1e-12
    assert single.factor(-0.5 * lowest) is None and double.factor(-0.5 * lowest) is None


def test_the_plateau_ends_a_large_solve_early_and_close_to_the_full_solve():
    """N = 520 in 2-D (1,040 terminal unknowns, above PLATEAU_MIN_VARS): with the default plateau the
    run says converged in fewer than 60 % of the iterations of the solve to gtol, at an objective at
    most 2e-5 relative above it (measured: N = 501, 1.2e-6 above in 53 against 207 iterations;
    N = 1,000 2.5e-6 above in 72 against 407)."""
    assert 520 * 2 > PLATEAU_MIN_VARS
    full = solve(problem_from_dict(samples(520, plateau=0.0))).final
    short = solve(problem_from_dict(samples(520))).final
    assert full.status == short.status == "converged"
    assert short.iteration < 0.6 * full.iteration
    assert full.objective <= short.objective <= full.objective * (1 + 2e-5)


def test_small_problems_are_solved_to_gtol_whatever_the_plateau():
    """At or below PLATEAU_MIN_VARS unknowns the last digits cost little: a huge plateau changes
    nothing (the same iterations and objective, to the last bit)."""
    a = solve(problem_from_dict(samples(120, plateau=0.0))).final
    b = solve(problem_from_dict(samples(120, plateau=0.5))).final
    assert (a.iteration, a.objective) == (b.iteration, b.objective)
    assert a.status == "converged"


def test_the_plateau_does_not_end_a_solve_from_a_far_start():
    """From terminal states at the sources (objective ~200 against ~2.5 at the end) the Newton steps
    move particles by up to the cap (delta) and gain 0.3-4 % per 10 iterations: a loose plateau of 1e-2
    without the rule's limit on moves (PLATEAU_MOVE) said "converged" at iteration 50, at 184."""
    p = problem_from_dict(samples(600, plateau=1e-2))
    objective = ReducedObjective(p)
    start = torch.as_tensor(p.source, dtype=torch.float64)
    steps = []
    for step in trust_region(objective, start, p.optimizer, p.delta, "newton"):
        steps.append(step)
        if len(steps) == 7 * PLATEAU_WINDOW:
            break
    assert all(s.status is None for s in steps)
    assert steps[-1].energies["objective"] > 100.0  # still far: the rule had something to refuse


def test_a_negative_plateau_is_refused_naming_the_field():
    with pytest.raises(ProblemError, match="optimizer.plateau"):
        problem_from_dict(samples(10, plateau=-1.0))


def test_reassignment_rounds_go_on_only_while_a_round_gains_more_than_the_plateau():
    """N = 1,200 samples: each round (a reassignment and its local solve) that was followed by another
    gained more than plateau |E| over the round before; the last gained at most that (or nothing). Without
    the rule on rounds this run went on to 5 rounds (12 s instead of 8 s, 7e-7 lower): every
    reassignment still found a little."""
    p = problem_from_dict(samples(1200))
    ends: dict[str, float] = {}
    for snap in solve_iter(p, every=10**9):
        if snap.status is None and "newton" in snap.phase:
            ends[snap.phase] = snap.objective  # insertion order: the rounds in turn
    assert snap.status == "converged"
    rounds = list(ends.values())
    assert len(rounds) >= 2  # at least one reassignment round to judge
    tolerance = p.optimizer.plateau
    for before, after in zip(rounds[:-2], rounds[1:-1]):
        assert before - after > tolerance * abs(after)
    assert rounds[-2] - rounds[-1] <= tolerance * abs(rounds[-1])


def test_solves_to_gtol_from_single_vars_factor_in_float32_and_end_where_float64_does(monkeypatch):
    """N = 300 samples (600 unknowns, at or above SINGLE_VARS, below PLATEAU_MIN_VARS: solved to gtol)
    with float32-refined factorizations ends converged on the objective the float64 ones reach, to 1e-9
    relative (measured: 1.5e-14, 144 against 148 iterations; where the two paths part, as on stiffer
    problems, the ends can lie in neighbouring minima: up to 6.3e-8 apart at eps = 1e-5)."""
    p = problem_from_dict(samples(300))
    assert PLATEAU_MIN_VARS >= 600 >= trust_region_module.SINGLE_VARS
    made: list[bool] = []
    original = DenseSystem.__init__

    def recording(self, H, M, single=False):
        made.append(single)
        original(self, H, M, single)
    monkeypatch.setattr(DenseSystem, "__init__", recording)
    single = solve(p).final
    assert made and all(made)  # every exact step factored in float32
    made.clear()
    monkeypatch.setattr(trust_region_module, "SINGLE_VARS", 10**9)
    double = solve(p).final
    assert made and not any(made)
    assert single.status == double.status == "converged"
    assert abs(single.objective - double.objective) <= 1e-9 * abs(double.objective)
