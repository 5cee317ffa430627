"""Trust-region Newton-CG's region after steps cut to the per-particle cap, on a quadratic whose
block-diagonal preconditioner is far from exact (a chain of springs): the region must follow the steps
taken, not double per step while the cap decides their length."""
from __future__ import annotations

import torch

from solver.problem import OptimizerSpec
from solver.trust_region import DENSE_VARS, trust_region


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
