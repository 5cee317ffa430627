"""Every kernel backend against the dense sum on small random clouds (1-D, 2-D, 3-D; the cells also in
4-D and 5-D, the states of acceleration control in the plane and beyond): values, gradients in both
arguments, the self term, second derivatives; the automatic choice; clouds too far-flung for the cells'
keys."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from solver import kernels

# cells leave out pairs weighing < 1e-16 each, grid adds FINUFFT's 1e-13 relative error: against sums
# of O(1) terms both stay far below 1e-10 relative (measured: < 1e-12)
TOL = {"dense": 1e-12, "cells": 1e-10, "grid": 1e-10}


def clouds(dim: int, seed: int, n: int = 300, k: int = 200):
    gen = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.randn(n, dim, dtype=torch.float64, generator=gen)
    z = 0.4 * torch.randn(k, dim, dtype=torch.float64, generator=gen) + 0.2
    a = torch.rand(n, dtype=torch.float64, generator=gen) / n
    b = torch.rand(k, dtype=torch.float64, generator=gen) / k
    return x, z, a, b


def reference(x, z, a, b, s):
    """The plain dense expression and its autograd gradients."""
    x, z = x.clone().requires_grad_(True), z.clone().requires_grad_(True)
    value = kernels.dense.twice_differentiable(x, z, a, b, s)
    gx, gz = torch.autograd.grad(value, (x, z))
    return float(value.detach()), gx, gz


@pytest.mark.parametrize("name,dim", [(name, dim) for name in kernels.BACKENDS for dim in (1, 2, 3)]
                         + [(name, dim) for name in ("dense", "cells") for dim in (4, 5)])
@pytest.mark.parametrize("scale", [0.1, 0.4])
def test_backend_matches_the_dense_sum(name, dim, scale):
    x, z, a, b = clouds(dim, seed=dim)
    value, gx, gz = reference(x, z, a, b, scale)
    xg, zg = x.clone().requires_grad_(True), z.clone().requires_grad_(True)
    with kernels.backend(name):
        got = kernels.gaussian_pair_sum(xg, zg, a, b, scale)
        hx, hz = torch.autograd.grad(got, (xg, zg))
    assert float(got.detach()) == pytest.approx(value, rel=TOL[name])
    for mine, want in ((hx, gx), (hz, gz)):
        assert float((mine - want).abs().max()) <= TOL[name] * float(want.abs().max())


@pytest.mark.parametrize("name", kernels.BACKENDS)
def test_self_term_gradient_counts_both_arguments(name):
    x, _, a, _ = clouds(2, seed=7)
    value, gx, gz = reference(x, x, a, a, 0.3)
    y = x.clone().requires_grad_(True)
    with kernels.backend(name):
        got = kernels.gaussian_pair_sum(y, y, a, a, 0.3)
        (g,) = torch.autograd.grad(got, y)
    assert float(got.detach()) == pytest.approx(value, rel=TOL[name])
    assert float((g - (gx + gz)).abs().max()) <= TOL[name] * float(g.abs().max())


@pytest.mark.parametrize("name", ["dense", "cells"])
@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_second_derivatives_match_autograd(name, dim):
    """hessian_blocks (the cross term's blocks) and self_curvature (the self term's Hessian-vector
    product and that product's diagonal blocks) against the Hessian of the dense expression. s = 0.5
    against clouds of spread 0.5 (0.7 in 4-D, whose pairs lie up to 3.7 apart): every pair lies within
    the product cutoff (6.1 s), so both backends agree with autograd to rounding."""
    x, z, a, b = clouds(dim, seed=11 + dim, n=40, k=30)
    s = 0.5 if dim <= 3 else 0.7
    assert float(torch.cdist(x, x).max()) < kernels.cutoff(s, kernels.PRODUCT_TRUNCATION)
    H = torch.autograd.functional.hessian(lambda y: kernels.dense.twice_differentiable(y, z, a[:1].expand(len(y)) * 0 + 1, b, s), x)
    want_blocks = torch.stack([H[i, :, i, :] for i in range(len(x))])
    v = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    Hs = torch.autograd.functional.hessian(lambda y: kernels.dense.twice_differentiable(y, y, a, a, s), x)
    with kernels.backend(name):
        blocks = kernels.hessian_blocks(x, z, b, s)
        product, own = kernels.self_curvature(x, a, s)
        products = product(v)
    assert torch.allclose(blocks, want_blocks, rtol=1e-10, atol=1e-13)
    # (Hs v)_i = 2 a_i sum_k a_k Hess phi(x_i - x_k) (v_i - v_k); its diagonal blocks 2 a_i sum_{k != i} ...
    want = torch.einsum("idke,ke->id", Hs, v)
    assert torch.allclose(2 * a[:, None] * products, want, rtol=1e-9, atol=1e-13)
    want_own = torch.stack([Hs[i, :, i, :] for i in range(len(x))])
    assert torch.allclose(2 * a[:, None, None] * own, want_own, rtol=1e-9, atol=1e-13)
    assert torch.equal(own, own.transpose(1, 2))  # exactly symmetric (each entry computed once)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_the_work_estimate_counts_the_pairs_in_neighbouring_cells(dim):
    """``Cells.pairs_within`` (the backend choice's estimate of a cells sum's work) counts the (x_i, z_k)
    whose cells differ by at most one in every coordinate: against the count over all pairs. And the
    half stencil visits each neighbouring pair of cells once: it, its mirror and the cell itself make
    the whole stencil."""
    x, z, _, _ = clouds(dim, seed=30 + dim, n=400, k=500)
    grid = kernels.cells.Cells(z.numpy(), 0.3)  # cells of side 0.3 over clouds of spread 0.4-0.5
    cx, cz = grid.cell_of(x.numpy()), grid.cell_of(z.numpy())
    want = int((np.abs(cx[:, None, :] - cz[None, :, :]).max(2) <= 1).sum())
    assert grid.pairs_within(x.numpy()) == want
    stencil, half = kernels.cells.stencils(dim)
    whole = {tuple(o) for o in half} | {tuple(-o) for o in half} | {(0,) * dim}
    assert len(half) == (3**dim - 1) // 2 and whole == {tuple(o) for o in stencil}


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_listed_pairs_give_the_products_and_blocks_of_the_cells_and_of_the_dense_sum(dim):
    """``Cells.self_curvature`` lists the pairs within the cutoff once (its own cell's later points and the
    cells half a stencil away) and reads them for every product and for the blocks: on a cloud spread
    over many cells, the products and blocks equal the dense expression's and those of the unlisted
    kernels (no memory for the list) to rounding (sums of O(100) terms: 1e-12 relative)."""
    x, _, a, _ = clouds(dim, seed=20 + dim, n=700)
    s = 0.05  # cells of side 0.43 over a cloud of spread 0.5: dozens of cells, pairs across their faces
    v = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    grid = kernels.cells.Cells(x.numpy(), kernels.cutoff(s))
    assert len(grid.keys) >= 7  # 7 cells on the line, dozens in the plane and in space (and in 4-D)
    (listing, listed_blocks), (searching, searched_blocks) = (grid.self_curvature(a.numpy(), s, memory)
                                                              for memory in (kernels.PAIR_MEMORY, 0))
    assert (listing.__name__, searching.__name__) == ("listed", "product")
    listed, unlisted = listing(v.numpy()), searching(v.numpy())
    want = kernels.dense.self_products(x, a, s, v).numpy()
    scale = np.abs(want).max()
    assert np.abs(listed - want).max() <= 1e-12 * scale and np.abs(unlisted - want).max() <= 1e-12 * scale
    # the blocks sum_{k != i} a_k Hess phi(x_i - x_k): the dense cross blocks less the k = i term -a_i I / s^2
    want_blocks = (kernels.dense.blocks(x, x, a, s) + (a / s**2)[:, None, None] * torch.eye(dim, dtype=x.dtype)).numpy()
    scale = np.abs(want_blocks).max()
    for got in (listed_blocks, searched_blocks):
        assert np.abs(got - want_blocks).max() <= 1e-12 * scale


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_newtons_products_leave_out_only_what_their_bound_allows(dim):
    """Newton's Hessian-vector products (``kernels.self_curvature``) leave out the pairs with phi below
    ``PRODUCT_TRUNCATION``: on a cloud whose pairs run far past that cutoff, they differ from the dense
    product by at most the stated bound 2 tau (r_c/s)^2 / s^2 max|v| sum|b| (each left-out pair's Hessian
    is at most tau (r_c/s)^2 / s^2 in norm, its v_i - v_k at most 2 max|v|), and by more than rounding
    (the truncation is in effect: against the full cutoff they agree to 1e-12)."""
    x, _, a, _ = clouds(dim, seed=40 + dim, n=600)
    s = 0.06  # the product cutoff 0.36 and the full one 0.51 against a cloud of spread 0.5
    v = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    want = kernels.dense.self_products(x, a, s, v).numpy()
    with kernels.backend("cells"):
        product, own = kernels.self_curvature(x, a, s)
        got = product(v).numpy()
    full, full_own = kernels.cells.Cells(x.numpy(), kernels.cutoff(s)).self_curvature(a.numpy(), s, kernels.PAIR_MEMORY)
    full = full(v.numpy())
    tau = kernels.PRODUCT_TRUNCATION
    bound = 2 * tau * (kernels.cutoff(s, tau) / s) ** 2 / s**2 * float(v.abs().max()) * float(a.sum())
    error, scale = np.abs(got - want).max(), np.abs(want).max()
    assert error <= bound
    assert error > 1e-12 * scale and np.abs(full - want).max() <= 1e-12 * scale
    # the blocks (the preconditioner's and the region's metric) leave out the same pairs: each entry is
    # off by at most tau (r_c/s)^2 / s^2 sum|b| (the bound above without v_i - v_k)
    want_own = (kernels.dense.blocks(x, x, a, s) + (a / s**2)[:, None, None] * torch.eye(dim, dtype=x.dtype)).numpy()
    error, scale = np.abs(own.numpy() - want_own).max(), np.abs(want_own).max()
    assert error <= tau * (kernels.cutoff(s, tau) / s) ** 2 / s**2 * float(a.sum())
    assert error > 1e-12 * scale and np.abs(full_own - want_own).max() <= 1e-12 * scale


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_self_hessian_matches_autograd_and_is_exactly_symmetric(dim):
    """The self term's dense Hessian (Newton's method on small problems) against the Hessian of the dense
    expression, and bitwise symmetric (its Cholesky factorizations read one triangle, its products all),
    also when scaled by a factor (as the nonlocal energy's 1/eps and normalizer scale it)."""
    x, _, a, _ = clouds(dim, seed=5 + dim, n=40, k=30)
    s = 0.5
    want = torch.autograd.functional.hessian(lambda y: kernels.dense.twice_differentiable(y, y, a, a, s), x)
    for factor in (1.0, 37.5):
        got = kernels.gaussian_self_hessian(x, a, s, factor)
        assert torch.allclose(got, factor * want, rtol=1e-10, atol=1e-13 * factor)
        flat = got.reshape(40 * dim, 40 * dim)
        assert torch.equal(flat, flat.T)


def test_the_self_hessian_is_the_same_on_one_thread_and_in_parallel():
    """Small clouds are built on the calling thread, large ones in parallel: the same rows by the same
    operations, bitwise."""
    from solver.kernels import cells, dense_hessian

    x = np.ascontiguousarray(np.random.default_rng(3).normal(size=(2, 300)) * 0.3)
    a = np.full(300, 1 / 300)
    c, limit = 0.5 / 0.05**2, math.log(1.0 / kernels.TRUNCATION)
    args = (x, a, 2.5, c, limit / c, cells.exp_table(limit), 8)
    assert np.array_equal(dense_hessian._self_hessian(*args), dense_hessian._self_hessian_serial(*args))


def test_automatic_choice():
    """Small sums are dense; a large cloud with a narrow kernel goes to cells; with a kernel as wide
    as the cloud, to the grid."""
    rng = np.random.default_rng(0)
    small = rng.normal(size=(50, 2))
    big = rng.normal(size=(20000, 2))
    assert kernels.plan(small, small, 0.1).name == "dense"
    assert kernels.plan(big, big, 20000 ** (-0.495)).name == "cells"
    assert kernels.plan(big, big, 0.5).name == "grid"
    with kernels.backend("dense"):
        assert kernels.plan(big, big, 0.5).name == "dense"
    with pytest.raises(ValueError, match="backend must be one of"):
        with kernels.backend("magic"):
            pass


@pytest.mark.parametrize("dim", [1, 2, 3, 4])
def test_the_install_step_compiles_what_solves_call(dim):
    """``kernels.compile_kernels`` (run by ``make install``) compiles every signature the cells backend's
    sums, Hessian blocks and Hessian-vector products call with, and the trust region CG's block products
    and dots: a later solve compiles nothing (a compile costs seconds inside a first solve)."""
    from solver import blockwise
    from solver.kernels import cells, dense_hessian

    kernels.compile_kernels()
    kernels_used = (cells._cross_pairs, cells._self_pairs, cells._partners, cells._partner_products, cells._partner_blocks,
                    cells._summed,
                    dense_hessian._self_hessian, dense_hessian._self_hessian_serial, blockwise.products,
                    blockwise.dot)
    compiled = {kernel: len(kernel.signatures) for kernel in kernels_used}
    x, z, a, b = clouds(dim, 7)
    s = 0.3
    with kernels.backend("cells"):
        kernels.sums(x, z, b, s)
        kernels.sums(x, x, a, s, want_grad=False)
        kernels.hessian_blocks(x, z, b, s)
        kernels.self_curvature(x, a, s)[0](torch.ones_like(x))
    blockwise.block_products(torch.ones(7, dim, dim, dtype=torch.float64), x)
    blockwise.dot(x.numpy(), x.numpy())
    kernels.gaussian_self_hessian(x, a, s)
    big = torch.rand(600, dim, dtype=torch.float64)  # 600^2 pairs: the parallel kernel
    kernels.gaussian_self_hessian(big, torch.full((600,), 1 / 600, dtype=torch.float64), s)
    assert {kernel: len(kernel.signatures) for kernel in compiled} == compiled


def test_fast_exp_is_accurate_to_a_few_ulp_over_its_whole_range():
    """The cells' vectorizable exp (a table of 2^(-n/64) and a degree-5 polynomial) against numpy's exp
    on [-ln(1/tau), 0], every argument the kernels give it. Bound 4 ulp: the table's entries and the
    final product are rounded once each (1/2 ulp), the polynomial in Horner's form ~1 ulp, the argument
    reduction loses < 1e-20 (measured: 1.8 ulp; 7 ulp when ln2 / 64 was one rounded constant)."""
    import numba

    from solver.kernels import cells

    limit = math.log(1.0 / kernels.TRUNCATION)
    table = cells.exp_table(limit)

    @numba.njit
    def evaluate(xs, table):
        out = np.empty_like(xs)
        for i in range(xs.shape[0]):
            out[i] = cells.fast_exp(xs[i], table)
        return out

    xs = np.concatenate([-np.linspace(0.0, limit, 400_001), -np.random.default_rng(0).uniform(0.0, limit, 200_000)])
    relative = np.abs(evaluate(xs, table) - np.exp(xs)) / np.exp(xs)
    assert relative.max() <= 4 * 2.0**-52


@pytest.mark.parametrize("name", ["auto", "cells", "grid"])
def test_a_coordinate_that_is_not_finite_gives_nan_sums(name):
    """A diverging iterate (NaN or infinite coordinates) must give NaN sums, which the solver reports as
    divergence, not crash the process: cells and grid place points by their coordinates (a NaN
    coordinate made an index), so such sums are NaN without running them."""
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.normal(size=(800, 2)) * 0.3)  # 800^2 pairs: above the dense-only size
    x[5, 0], x[9, 1] = float("nan"), float("inf")
    a = torch.full((800,), 1.0 / 800, dtype=torch.float64)
    with kernels.backend(name):
        row, g = kernels.sums(x, x, a, 0.02)
        assert torch.isnan(row).all() and torch.isnan(g).all()
        if name != "grid":
            assert torch.isnan(kernels.hessian_blocks(x, x, a, 0.02)).all()
            product, own = kernels.self_curvature(x, a, 0.02)
            assert torch.isnan(product(torch.ones_like(x))).all() and torch.isnan(own).all()


def test_clouds_too_far_flung_for_the_cells_keys_are_summed_otherwise():
    """A cell key holds each coordinate in KEY_BITS // D bits (2^30 cells a side in 2-D). Stored points
    that span more (one point 10^12 away, cutoff 0.086) are never given to the cells by the automatic choice,
    and forcing them raises, naming the backends that can sum it; Newton's products there come from the
    dense sum. Within the keys' range, an x far beyond the stored points' cells (clamped to the outer
    ones) sums as the dense sum does."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (2000, 2))
    far = x.copy()
    far[0] = [1e12, 0.5]
    assert not kernels.cells.fits(*kernels.cells.bounds(far), kernels.cutoff(0.01))
    assert kernels.plan(far, far, 0.01).name != "cells"
    assert kernels.plan(x, x, 0.01).name == "cells"  # the same cloud without the far point
    assert kernels.plan(far, x, 0.01).name == "cells"  # a far x against it: clamped, the keys hold
    with kernels.backend("cells"), pytest.raises(ValueError, match="use dense or grid"):
        kernels.plan(far, far, 0.01)
    a = torch.ones(2000, dtype=torch.float64) / 2000
    v = torch.as_tensor(rng.standard_normal((2000, 2)))
    product, blocks = kernels.self_curvature(torch.as_tensor(far), a, 0.01)
    want = kernels.dense.self_products(torch.as_tensor(far), a, 0.01, v)
    assert float((product(v) - want).abs().max()) <= 1e-12 * float(want.abs().max())
    # x up to 10^6 cutoffs from the stored points: clamped into the outer cells, summed exactly
    z = torch.as_tensor(x)
    xs = torch.as_tensor(np.concatenate([x[:100], [[-5e4, 0.3], [0.5, 7e4], [1.0 + 0.05, 0.5]]]))
    with kernels.backend("cells"):
        row, g = kernels.sums(xs, z, a, 0.01)
    with kernels.backend("dense"):
        row_d, g_d = kernels.sums(xs, z, a, 0.01)
    assert float((row - row_d).abs().max()) <= 1e-12 * float(row_d.abs().max())
    assert float((g - g_d).abs().max()) <= 1e-10 * float(g_d.abs().max())
    assert float(row[-3]) == float(row[-2]) == 0.0 and float(row[-1]) > 0.0


def test_the_objective_of_acceleration_control_in_the_plane_is_the_dense_sums():
    """Acceleration control in the plane has 4-D states (position, velocity); with 700 particles its
    nonlocal sums go to the cells (700 x 700 pairs), whose keys overflowed 64 bits in 4-D: the objective
    came out wrong. Value and gradient by the automatic choice against the dense backend, to 1e-12."""
    from solver import problem_from_dict
    from solver.objective import Objective
    rng = np.random.default_rng(2)
    N = 700
    p = problem_from_dict({"source": {"points": rng.uniform(0, 1, (N, 2)).tolist()}, "M": 4,
                           "target": {"kind": "particles", "points": rng.normal(2, 0.3, (N, 2)).tolist()},
                           "dynamics": {"kind": "acceleration"}})
    objective = Objective(p)
    terminal = torch.as_tensor(p.target.points) + 0.05 * torch.as_tensor(rng.standard_normal((N, 4)))
    assert terminal.shape[1] == 4 and kernels.plan(terminal.numpy(), terminal.numpy(), p.delta).name == "cells"
    y = terminal.clone().requires_grad_(True)
    auto = objective.nonlocal_energy(y)
    (g_auto,) = torch.autograd.grad(auto, y)
    with kernels.backend("dense"):
        y = terminal.clone().requires_grad_(True)
        dense = objective.nonlocal_energy(y)
        (g_dense,) = torch.autograd.grad(dense, y)
    assert float(auto.detach()) == pytest.approx(float(dense.detach()), rel=1e-12)
    assert float((g_auto - g_dense).abs().max()) <= 1e-10 * float(g_dense.abs().max())
