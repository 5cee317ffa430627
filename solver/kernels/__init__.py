"""Gaussian kernel sums, the work of the nonlocal energy (eqs. 53, 55) and the congestion interaction:

    S(x, z) = sum_i sum_k a_i b_k phi(x_i - z_k),   phi(r) = exp(-|r|^2 / (2 s^2)),

with their gradients and, for Newton's method, second derivatives. Three backends compute them:

* ``dense`` (``kernels.dense``): torch row blocks, O(N K) time, exact to rounding: small clouds, and the
  reference for the others;
* ``cells`` (``kernels.cells``, numba): neighbour cells with a cutoff r_c = s sqrt(2 ln(1/tau)),
  tau = ``TRUNCATION``; time proportional to the pairs closer than r_c, O(N + K) memory; error at most
  tau sum|a| sum|b| in S (each left-out pair weighs less than tau);
* ``grid`` (``kernels.fourier``, FINUFFT): the Fourier series of phi on a period padded by r_c, cut
  where its coefficients fall below tau; time O((N + K) w^D + G log G) for G modes, whatever s; error
  tau plus FINUFFT's relative tolerance 1e-13 times sum|b|.

``"auto"`` (the default) estimates each backend's time for the clouds at hand and takes the fastest;
``with backend("cells"): ...`` forces one (tests, benchmarks). With a = b and x = z (the self term), one
pass gives the gradient of both arguments. Memory stays O(N + K) (plus 32 MB blocks for ``dense``).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from ..lazy import LazyModule, torch
from . import dense

cells = LazyModule("solver.kernels.cells")  # numba: compiled on first use
fourier = LazyModule("solver.kernels.fourier")  # FINUFFT
dense_hessian = LazyModule("solver.kernels.dense_hessian")  # numba: compiled on first use
augmenting = LazyModule("solver.augmenting")  # numba: compiled on first use
blockwise = LazyModule("solver.blockwise")  # numba: compiled on first use

BACKENDS = ("dense", "cells", "grid")
#: Pairs farther apart than the cutoff weigh less than this each (relative to a pair at distance 0).
TRUNCATION = 1e-16
#: Newton's Hessian-vector products of the self term (``self_curvature``) leave out the pairs with phi
#: below this instead: each left-out pair's Hessian is at most tau (r_c/s)^2 / s^2 = 3.7e-7 / s^2 (in
#: norm), so a product is off by at most 2 tau (r_c/s)^2 / s^2 max|v| sum|b| (measured: 4e-7 to 9e-7 of
#: its largest entry on 0.3-Gaussian clouds at delta auto), far below CG's forcing tolerance (1e-3 to
#: 0.5 of the residual): the steps change in their last digits, the values and gradients that judge
#: them not at all. A product's pairs lie within a radius 6.1 s instead of 8.6 s (measured per product,
#: 2-D N = 1,000 0.26 -> 0.19 ms, N = 10,000 2.7 -> 1.7 ms; 3-D N = 2,500 3.3 -> 1.8 ms).
PRODUCT_TRUNCATION = 1e-8
#: Up to this many pairs (N K) a sum is always dense: anything else costs more to set up than it saves.
DENSE_PAIRS = 2**18
#: The work of a cells sum is estimated from this many of the x (their neighbours counted exactly).
SAMPLE = 256
#: The pairs of a Newton step's Hessian-vector products are listed once up to this many bytes
#: (``self_curvature``; a partner's index and the kernel value, ``cells.PAIR_BYTES`` = 12 bytes: 11
#: million pairs; at delta auto a 0.3-Gaussian cloud of 10^4 points has 1.1 million in 2-D, 9.2 in 3-D).
PAIR_MEMORY = 2**27
#: Seconds per unit of work, measured on this project's 2-core machine: a dense pair, a cells candidate
#: pair (two threads; 1.6-2.1 ns in 2-D and 3-D since the cells' loops are vectorized, 4 ns before), a
#: point's share of the cell bookkeeping.
DENSE_PAIR_COST, CELL_PAIR_COST, CELL_POINT_COST = 1.2e-8, 2e-9, 3e-7

_BACKEND: contextvars.ContextVar[str] = contextvars.ContextVar("kernel_backend", default="auto")
_SECOND_ORDER: contextvars.ContextVar[bool] = contextvars.ContextVar("second_order", default=False)


def backend_name() -> str:
    """The backend the sums use in this context: "auto" unless ``backend`` forces one."""
    return _BACKEND.get()


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Within this block every kernel sum uses the backend ``name`` ("auto" to choose by cost)."""
    if name not in BACKENDS + ("auto",):
        raise ValueError(f"kernel backend must be one of auto, {', '.join(BACKENDS)} (got {name!r})")
    token = _BACKEND.set(name)
    try:
        yield
    finally:
        _BACKEND.reset(token)


@contextlib.contextmanager
def second_order() -> Iterator[None]:
    """Within this block, small pair sums are built from plain torch operations, differentiable twice
    (Hessians by automatic differentiation); outside it, the fused value-and-gradient kernels are used."""
    token = _SECOND_ORDER.set(True)
    try:
        yield
    finally:
        _SECOND_ORDER.reset(token)


def twice_differentiable() -> bool:
    """Whether the caller is inside ``second_order()``: terms with fused gradients (pair sums, disc
    penalties) then use plain expressions that automatic differentiation can differentiate twice."""
    return _SECOND_ORDER.get()


def cutoff(scale: float, truncation: float = TRUNCATION) -> float:
    """r_c with phi(r_c) = ``truncation``."""
    return scale * math.sqrt(2.0 * math.log(1.0 / truncation))


@dataclass
class Plan:
    """The backend chosen for a sum (and, for ``cells``, the sorted points, reused by the sum)."""

    name: str  # a backend, or "not finite" (a coordinate is NaN or infinite: every sum is NaN)
    grid: Any = None  # a cells.Cells for "cells"


#: Sorted cells of fixed point sets (a particle target's points), by the id of their tensor, kept
#: while the tensor lives (tensors compare elementwise, so they cannot be dictionary keys themselves).
_SORTED: dict[int, tuple[Any, Any]] = {}


def plan(x: np.ndarray, z: np.ndarray, scale: float, fixed: Any = None) -> Plan:
    """Choose the backend for sums of x against z: the forced one, else the cheapest by estimate.
    ``fixed``: the tensor z came from when it does not change between calls (its cells are reused)."""
    forced = backend_name()
    N, K = len(x), len(z)
    if forced == "dense" or (forced == "auto" and N * K <= DENSE_PAIRS):
        return Plan("dense")
    x_low, x_high = cells.bounds(x)
    z_low, z_high = (x_low, x_high) if z is x else cells.bounds(z)
    if not all(np.isfinite(b).all() for b in (x_low, x_high, z_low, z_high)):
        return Plan("not finite")  # cells and grid index by the coordinates: the sums are NaN
    if forced == "grid":
        return Plan("grid")
    rc = cutoff(scale)
    if forced == "auto" and not cells.fits(z_low, z_high, rc):
        # far-flung z (spanning 2^30 cutoffs in 2-D, 2^14 in 4-D): no cells (far x are clamped, ``Cells.cell_of``)
        return _cheapest(x, z, scale, rc, x_low, x_high, z_low, z_high, None)
    entry = _SORTED.get(id(fixed)) if fixed is not None else None
    if entry is not None and entry[0]() is fixed and entry[1].cutoff == rc:
        sorted_z = entry[1]
    else:
        sorted_z = cells.Cells(z, rc, (z_low, z_high))
        if fixed is not None:
            key = id(fixed)
            _SORTED[key] = (weakref.ref(fixed, lambda _: _SORTED.pop(key, None)), sorted_z)
    if forced == "cells":
        return Plan("cells", sorted_z)
    return _cheapest(x, z, scale, rc, x_low, x_high, z_low, z_high, sorted_z)


def _cheapest(x: np.ndarray, z: np.ndarray, scale: float, rc: float, x_low: np.ndarray, x_high: np.ndarray,
              z_low: np.ndarray, z_high: np.ndarray, sorted_z: Any) -> Plan:
    """The backend of least estimated cost: dense, cells (when ``sorted_z``, z's cells, is given) or, up to
    3-D, grid."""
    N, K = len(x), len(z)
    estimates = {"dense": N * K * DENSE_PAIR_COST}
    if sorted_z is not None:
        sample = x[:: max(1, N // SAMPLE)]
        pairs = sorted_z.pairs_within(sample) * (N / len(sample))
        estimates["cells"] = pairs * CELL_PAIR_COST + (N + K) * CELL_POINT_COST
    if x.shape[1] <= 3:
        extent = float((np.maximum(x_high, z_high) - np.minimum(x_low, z_low)).max())
        estimates["grid"] = fourier.cost(N + K, x.shape[1], extent, scale, rc)
    best = min(estimates, key=estimates.get)
    return Plan(best, sorted_z if best == "cells" else None)


def sums(x: "torch.Tensor", z: "torch.Tensor", b: "torch.Tensor", scale: float,
         want_grad: bool = True) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(row, g): row_i = sum_k b_k phi(x_i - z_k), g_i = sum_k b_k phi(x_i - z_k) (x_i - z_k), by the
    chosen backend (torch tensors in and out). A z that does not require gradients is taken as fixed
    (a target's points): its cells are sorted once."""
    xn = x.detach().numpy()
    zn = xn if z is x else z.detach().numpy()
    chosen = plan(xn, zn, scale, fixed=None if z.requires_grad or z is x else z)
    if chosen.name == "dense":
        return dense.sums(x.detach(), z.detach(), b.detach(), scale, want_grad)
    if chosen.name == "not finite":
        return torch.full(x.shape[:1], math.nan, dtype=x.dtype), torch.full(x.shape, math.nan, dtype=x.dtype)
    bn = np.ascontiguousarray(b.detach().numpy())
    if chosen.name == "cells":
        row, g = chosen.grid.sums(np.ascontiguousarray(xn), bn, scale, want_grad)
    else:
        row, g = fourier.sums(np.ascontiguousarray(xn), np.ascontiguousarray(zn), bn, scale, cutoff(scale), want_grad)
    return torch.from_numpy(row), torch.from_numpy(g)


@functools.cache
def _pair_sum_function() -> type:
    """S with its gradients as a torch.autograd.Function (value and gradients in one pass; built on
    first use: this module is imported before torch is loaded, see ``solver.lazy``)."""

    class GaussianPairSum(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, z, a, b, scale):  # type: ignore[override]
            inv = 1.0 / (scale * scale)
            need_x, need_z = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
            row, g = sums(x, z, b, scale, want_grad=need_x or need_z)
            gx = -inv * a[:, None] * g if need_x else None
            if not need_z:
                gz = None
            elif x is z and a is b:  # the self term: dS/dz = dS/dx by symmetry
                gz = gx
            else:
                gz = -inv * b[:, None] * sums(z, x, a, scale)[1]
            ctx.save_for_backward(*(t for t in (gx, gz) if t is not None))
            ctx.flags = (need_x, need_z)
            return a @ row

        @staticmethod
        def backward(ctx, grad_out):  # type: ignore[override]
            saved = list(ctx.saved_tensors)
            need_x, need_z = ctx.flags
            gx = saved.pop(0) * grad_out if need_x else None
            gz = saved.pop(0) * grad_out if need_z else None
            return gx, gz, None, None, None

    return GaussianPairSum


def gaussian_pair_sum(x: "torch.Tensor", z: "torch.Tensor", a: "torch.Tensor", b: "torch.Tensor",
                      scale: float) -> "torch.Tensor":
    """Unnormalized Gaussian double sum ``sum_ik a_i b_k exp(-|x_i - z_k|^2 / (2 scale^2))``.

    ``x`` (N x D) and ``z`` (K x D) may both require gradients, and may be the same tensor (the
    self-interaction term): autograd then adds both contributions, which is the exact gradient.
    Inside ``second_order()`` and below ``dense.MEMORY_BUDGET`` pairs it is one dense expression that
    autograd can differentiate twice."""
    if _SECOND_ORDER.get() and x.shape[0] * z.shape[0] * x.shape[1] <= dense.MEMORY_BUDGET:
        return dense.twice_differentiable(x, z, a, b, float(scale))
    return _pair_sum_function().apply(x, z, a, b, float(scale))


@functools.cache
def _self_sums_function() -> type:
    """``gaussian_self_sums`` with its gradient as a torch.autograd.Function (``dense.batched_self_sums``:
    value and gradient in one pass)."""

    class GaussianSelfSums(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, a, scale):  # type: ignore[override]
            row, g = dense.batched_self_sums(x.detach().transpose(0, 1), a.detach(), scale)
            # d/dx_ti of sum_ik a_i a_k phi(x_ti - x_tk): both arguments' shares, 2 a_i g_ti (-1/s^2)
            ctx.save_for_backward((-2.0 / (scale * scale)) * a[:, None, None] * g.transpose(0, 1))
            return (a[None, :] * row).sum()

        @staticmethod
        def backward(ctx, grad_out):  # type: ignore[override]
            (gx,) = ctx.saved_tensors
            return gx * grad_out, None, None

    return GaussianSelfSums


def gaussian_self_sums(x: "torch.Tensor", a: "torch.Tensor", scale: float) -> "torch.Tensor":
    """``sum_t sum_ik a_i a_k exp(-|x_it - x_kt|^2 / (2 scale^2))`` for x (N, T, D): the self term of T
    clouds at once (a pairwise interaction at every time point). While T N^2 (D + 1) fits
    ``dense.MEMORY_BUDGET``, one batched dense pass; beyond it, and inside ``second_order()`` (where
    each is the plain expression autograd can differentiate twice), one ``gaussian_pair_sum`` per cloud."""
    N, T, D = x.shape
    if T * N * N * (D + 1) > dense.MEMORY_BUDGET or _SECOND_ORDER.get():
        return sum(gaussian_pair_sum(x[:, t], x[:, t], a, a, scale) for t in range(T))
    return _self_sums_function().apply(x, a, float(scale))


def gaussian_normalizer(scale: float, dim: int) -> float:
    """(2 pi scale^2)^(-dim/2): the constant of the Gaussian mollifier K_delta of eq. (54)."""
    return (2.0 * math.pi * scale * scale) ** (-0.5 * dim)


def mollifier_pair_sum(x: "torch.Tensor", z: "torch.Tensor", a: "torch.Tensor", b: "torch.Tensor",
                       delta: float) -> "torch.Tensor":
    """``sum_ik a_i b_k K_delta(x_i - z_k)`` with K_delta the normalized Gaussian of eq. (54)."""
    return gaussian_normalizer(delta, x.shape[1]) * gaussian_pair_sum(x, z, a, b, delta)


def gaussian_row_sums(x: "torch.Tensor", z: "torch.Tensor", b: "torch.Tensor", scale: float,
                      normalized: bool = False) -> "torch.Tensor":
    """``r_i = sum_k b_k phi(x_i - z_k)`` for every row of x (times the mollifier's constant when
    ``normalized``: then r = (K_scale * sum_k b_k delta_{z_k})(x_i)); no gradient."""
    row, _ = sums(x, z, b, scale, want_grad=False)
    return row * gaussian_normalizer(scale, x.shape[1]) if normalized else row


def gaussian_self_hessian(x: "torch.Tensor", a: "torch.Tensor", scale: float, factor: float = 1.0
                          ) -> "torch.Tensor":
    """``factor`` times the dense Hessian (N, D, N, D) of sum_ik a_i a_k phi(x_i - x_k) (``dense_hessian``,
    exactly symmetric; pairs with phi below ``TRUNCATION`` left out, as the cells leave them out)."""
    return torch.from_numpy(dense_hessian.self_hessian(x.detach().numpy(), a.detach().numpy(), scale,
                                                       math.log(1.0 / TRUNCATION), factor))


def hessian_blocks(x: "torch.Tensor", z: "torch.Tensor", b: "torch.Tensor", scale: float) -> "torch.Tensor":
    """(N, D, D): sum_k b_k Hess phi(x_i - z_k), Hess phi(r) = phi(r) (r r^T / s^4 - I / s^2)."""
    xn, zn = x.detach().numpy(), z.detach().numpy()
    chosen = plan(xn, zn, scale)
    if chosen.name == "not finite":
        return torch.full((*x.shape, x.shape[1]), math.nan, dtype=x.dtype)
    if chosen.name != "cells":
        return dense.blocks(x.detach(), z.detach(), b.detach(), scale)
    return torch.from_numpy(chosen.grid.blocks(np.ascontiguousarray(xn), np.ascontiguousarray(b.numpy()), scale))


def self_curvature(x: "torch.Tensor", b: "torch.Tensor", scale: float
                   ) -> tuple[Callable[["torch.Tensor"], "torch.Tensor"], "torch.Tensor"]:
    """The self term's second derivatives at the fixed points x, for all the products of a Newton step:
    (v -> (N, D): sum_k b_k Hess phi(x_i - x_k) (v_i - v_k), the off-diagonal part of a Hessian-vector
    product of the self term; that operator's diagonal blocks (N, D, D), sum_{k != i} b_k Hess
    phi(x_i - x_k)). The points are sorted into cells and their pairs with phi above
    ``PRODUCT_TRUNCATION`` listed once (``Cells.self_curvature``; error bound at ``PRODUCT_TRUNCATION``,
    for the blocks' entries the same bound without the factor 2 max|v|), by the cells backend whatever a
    single sum would choose (a sum is planned for one pass; here dozens follow: at N = 500, where a sum
    is dense, a solve by CG took 76 s with dense products, 6.6 s so), unless the dense backend is forced
    (then exact to rounding)."""
    xn = x.detach().numpy()
    N, D = x.shape
    if not np.isfinite(xn).all():
        return (lambda v: torch.full(x.shape, math.nan, dtype=x.dtype)), torch.full((N, D, D), math.nan, dtype=x.dtype)
    rc, box = cutoff(scale, PRODUCT_TRUNCATION), cells.bounds(xn)
    if backend_name() == "dense" or not cells.fits(*box, rc):  # far-flung points: no cells
        own = (b.detach() / (scale * scale))[:, None, None] * torch.eye(D, dtype=x.dtype)  # less the k = i terms
        return ((lambda v: dense.self_products(x.detach(), b.detach(), scale, v.detach())),
                dense.blocks(x.detach(), x.detach(), b.detach(), scale) + own)
    grid = cells.Cells(xn, rc, box)
    product, blocks = grid.self_curvature(np.ascontiguousarray(b.detach().numpy()), scale, PAIR_MEMORY)

    def apply(v: "torch.Tensor") -> "torch.Tensor":
        vn = v.detach().numpy()
        if not np.isfinite(vn).all():
            return torch.full(x.shape, math.nan, dtype=x.dtype)
        return torch.from_numpy(product(vn))
    return apply, torch.from_numpy(blocks)


def compile_kernels() -> None:
    """Compile the numba kernels, the cells', ``dense_hessian``'s, the assignments'
    (``solver.augmenting``) and CG's block products and dots (``solver.blockwise``), or load them from
    numba's disk cache, on a small cloud. The first compile takes seconds (2.6 s measured inside a first
    N = 1,000 solve; the assignments' 1.6 s), which the first solve after an install would otherwise
    wait for; ``make install`` calls this."""
    z = np.random.default_rng(0).uniform(0.0, 1.0, (16, 2))
    grid = cells.Cells(z, 0.5)
    grid.sums(z, np.ones(16), 0.1)
    grid.sums(z + 0.0, np.ones(16), 0.1)
    grid.blocks(z, np.ones(16), 0.1)
    for memory in (PAIR_MEMORY, 0):  # listed and searched
        grid.self_curvature(np.ones(16), 0.1, memory)[0](z)
    load_dense_hessian()
    augmenting.repaired_permutation(z, z[::-1].copy())
    blockwise.block_products(torch.ones(16, 2, 2, dtype=torch.float64), torch.from_numpy(z))
    blockwise.dot(z, z)


@functools.cache
def load_dense_hessian() -> None:
    """Load ``dense_hessian``'s compiled kernel now (from numba's disk cache: ~0.3 s in a fresh process),
    once per process: solves call this before their clock starts, as they load torch and POT."""
    for n in (2, math.isqrt(dense_hessian.PARALLEL_PAIRS)):  # on the calling thread, and in parallel
        dense_hessian.self_hessian(np.zeros((n, 1)), np.ones(n), 1.0, math.log(1.0 / TRUNCATION))
