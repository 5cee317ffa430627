"""Trust-region Newton-CG on chains of springs (block-diagonal preconditioners far from exact): the
region after steps cut to the per-particle cap must follow the steps taken, not double per step while
the cap decides their length; a CG run's kept path must answer retries at smaller radii exactly."""
from __future__ import annotations

import pytest
import torch

import solver.trust_region as trust_region_module
from solver.problem import OptimizerSpec
from solver.trust_region import DENSE_VARS, CGPath, steihaug, trust_region


class SpringChain:
    """f(x) = a/2 sum_i |x_i|^2 + c/2 sum_i |x_{i+1} - x_i|^2 for N particles in 2-D: the Hessian's
    diagonal blocks are (a + 2c) I (c at the ends), its coupling a path graph's Laplacian."""

    def __init__(self, N: int, a: float = 1e-3, c: float = 1.0) -> None:
        self.N, self.a, self.c = N, a, c
        self.problem = type("P", (), {"N": N, "dynamics": type("D", (), {"state_dim": 2})()})()

    def product(self, v: torch.Tensor) -> torch.Tensor:
        out = self.a * v
        d = v[1:] - v[:-1]
        out[1:] += self.c * d
        out[:-1] -= self.c * d
        return out

    def value_and_grad(self, x: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        g = self.product(x)
        return {"objective": 0.5 * float((x * g).sum())}, g

    def curvature(self, x: torch.Tensor):
        diag = torch.full((self.N,), self.a + 2 * self.c, dtype=x.dtype)
        diag[[0, -1]] -= self.c
        chain = self

        class Curvature:
            blocks = diag[:, None, None] * torch.eye(2, dtype=x.dtype)

            def __call__(self, v: torch.Tensor) -> torch.Tensor:
                return chain.product(v)
        return Curvature()


def test_after_capped_steps_cg_stops_at_a_region_near_their_length():
    """40 iterations from far away (every step cut to the cap 0.01, every one accepted): CG spends
    about one Hessian-vector product per step (measured 43 in all). When the region doubled after each
    of these steps, CG ran on to its own tolerance inside a region the cap made moot: 842 products."""
    N = 1300
    assert 2 * N > DENSE_VARS  # solved by CG, not by dense factorizations
    x0 = 5 * torch.linspace(-1, 1, N, dtype=torch.float64)[:, None].repeat(1, 2)
    for k, step in enumerate(trust_region(SpringChain(N), x0, OptimizerSpec(plateau=0.0), 0.01, "cg"), 1):
        assert abs(step.step_size - 0.01) < 1e-12  # cut to the cap, and accepted
        if k == 40:
            break
    products = step.evaluations - 1 - 2 * 40  # the start's evaluation, then value and gradient per step
    assert products <= 4 * 40


class DoubleWellChain(SpringChain):
    """f(x) = SpringChain's f with a < 0 plus b/4 sum_i |x_i|^4: indefinite near 0 (negative curvature
    along slow chain modes), quartic far out, so the quadratic model overshoots and steps get rejected."""

    def __init__(self, N: int, a: float = -0.05, c: float = 1.0, b: float = 1.0) -> None:
        super().__init__(N, a, c)
        self.b = b

    def value_and_grad(self, x: torch.Tensor) -> tuple[dict[str, float], torch.Tensor]:
        sq = (x * x).sum(1, keepdim=True)
        g = self.product(x) + self.b * sq * x
        return {"objective": 0.5 * float((x * self.product(x)).sum()) + 0.25 * self.b * float((sq * sq).sum())}, g

    def curvature(self, x: torch.Tensor):
        base = super().curvature(x)
        sq = (x * x).sum(1)
        eye = torch.eye(2, dtype=x.dtype)
        own = self.b * (sq[:, None, None] * eye + 2 * x[:, :, None] * x[:, None, :])
        chain = self

        class Curvature:
            blocks = base.blocks + own

            def __call__(self, v: torch.Tensor) -> torch.Tensor:
                return chain.product(v) + torch.einsum("nde,ne->nd", own, v)
        return Curvature()


def _system(kind: str, N: int = 60):
    """(Hessian-vector product, g, P, M) of a spring chain: positive definite, or shifted to be
    indefinite (CG then meets negative curvature)."""
    gen = torch.Generator().manual_seed(1)
    chain = SpringChain(N, a=1e-2 if kind == "definite" else -5e-3)
    g = torch.randn(N, 2, generator=gen, dtype=torch.float64)
    blocks = chain.curvature(g).blocks.abs()
    return chain.product, g, torch.linalg.inv(blocks), blocks


@pytest.mark.parametrize("kind", ["definite", "indefinite"])
def test_a_kept_cg_path_gives_what_a_new_run_at_a_smaller_radius_returns(kind):
    """CG's iterates do not depend on the radius, so a run's kept path answers every smaller radius
    bitwise as a new run would (the retry after a rejected step), without Hessian-vector products."""
    hv, g, P, M = _system(kind)
    big, boundary, products, path = steihaug(hv, g, P, M, 1e6, 1e-8)
    assert products > 5 and boundary == (kind == "indefinite")  # ends at convergence / negative curvature
    for radius in (1e3, 10.0, 3.0, 1.0, 0.3, 0.01, 1e-5):
        expected, on_boundary, _, _ = steihaug(hv, g, P, M, radius, 1e-8)
        assert path.step(radius) is not None
        p, kept_boundary = path.step(radius)
        assert torch.equal(p, expected) and kept_boundary == on_boundary


def test_a_path_cut_by_the_memory_bound_answers_only_the_radii_it_reaches(monkeypatch):
    hv, g, P, M = _system("definite")
    monkeypatch.setattr(trust_region_module, "KEPT_BYTES", 3 * 2 * g.numel() * g.element_size())
    _, _, products, path = steihaug(hv, g, P, M, 1e6, 1e-8)
    assert products > 3 and len(path.segments) == 3
    reached = path.segments[-1][2]  # the third segment ends this far out
    for radius in (0.5 * reached, reached):
        expected, _, _, _ = steihaug(hv, g, P, M, radius, 1e-8)
        assert torch.equal(path.step(radius)[0], expected)
    assert path.step(1.01 * reached) is None  # beyond the kept part: CG must run again
    assert path.step(1e6) is None


def test_retries_after_rejected_steps_replay_the_path_and_change_nothing(monkeypatch):
    """Trust-region Newton-CG on an indefinite, quartic chain (steps overshoot and are rejected): the
    iterates with kept paths are bitwise those of new CG runs per retry, with fewer products."""
    N = 1300
    x0 = 0.01 * torch.randn(N, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spec = OptimizerSpec(plateau=0.0, gtol=1e-6)

    def run():
        return list(trust_region(DoubleWellChain(N), x0, spec, 10.0, "cg", 0, 0))
    kept = run()
    monkeypatch.setattr(CGPath, "step", lambda self, radius: None)  # every retry runs CG anew
    fresh = run()
    rejected = sum(s.step_size == 0.0 for s in kept)
    assert rejected >= 3 and kept[-1].status == "converged"
    assert len(kept) == len(fresh)
    assert all(torch.equal(a.variables, b.variables) for a, b in zip(kept, fresh))
    assert kept[-1].evaluations < fresh[-1].evaluations
