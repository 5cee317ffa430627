"""The compiled vector kernels of the trust-region CG iteration (``trust_region.steihaug``).

``products``: N small blocks times N vectors, out_i = B_i v_i (B of shape (N, D, D), v of (N, D)).
The trust-region solves apply block-diagonal matrices several times per CG iteration: the
preconditioner and the metric (``trust_region.block_metric``) and the Hessian's uncoupled diagonal
blocks (``reduced.Curvature``). ``torch.einsum("nde,ne->nd", ...)`` did it in 18 us at N = 1,000 in
2-D, this compiled loop in 7 us (3-D 25 against 9 us; 10 x 10 blocks of 150 particles 20 against
7 us), the same to rounding (each entry sums its D products in order; einsum did too on one machine,
bitwise, while MKL's kernels for 22 x 22 blocks on an AVX-512 CPU sum in another order); at N = 1,000 a
CG iteration takes ~0.17 ms (its Hessian-vector product 0.10 ms), of which the three applications
had taken a quarter. ``dot``: the iteration's inner products, on the calling thread.
"""
from __future__ import annotations

import numba
import numpy as np

from .lazy import torch


@numba.njit(cache=True)
def products(blocks, v):
    """(N, D) numpy: row i is blocks[i] @ v[i] (C-contiguous float64 arrays)."""
    n, d = v.shape
    out = np.empty((n, blocks.shape[1]))
    for i in range(n):
        for j in range(blocks.shape[1]):
            acc = 0.0
            for e in range(d):
                acc += blocks[i, j, e] * v[i, e]
            out[i, j] = acc
    return out


@numba.njit(cache=True)
def dot(a, b):
    """sum_i a_i b_i over two arrays of one shape, on the calling thread. numpy's dot hands vectors of
    more than 10,000 entries to OpenBLAS's threads, which then contend with numba's (N = 10,000 in 2-D:
    a CG iteration took 12 ms instead of 1.6)."""
    x, y = a.ravel(), b.ravel()
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i] * y[i]
    return acc


def block_products(blocks: "torch.Tensor", v: "torch.Tensor") -> "torch.Tensor":
    """(N, D): row i is blocks[i] @ v[i] (float64 tensors, no gradient)."""
    return torch.from_numpy(products(np.ascontiguousarray(blocks.detach().numpy()),
                                     np.ascontiguousarray(v.detach().numpy())))
