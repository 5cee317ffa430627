"""Gaussian sums as dense blocks of torch operations: exact to rounding, O(N K) time, memory bounded by
``MEMORY_BUDGET`` entries per block. The reference the other backends are tested against, and the
fastest for small clouds. Also second derivatives by row blocks (the self term's dense Hessian is
``dense_hessian``'s, compiled).
"""
from __future__ import annotations

from ..lazy import torch
from ..short_sums import inner

#: Largest number of kernel entries held at once (2**22 float64 entries = 32 MB per temporary).
MEMORY_BUDGET = 2**22


#: Exponents of the Gaussian are floored here before exp: exp of lower values is subnormal or underflows
#: through the subnormals, which x86 computes slowly (torch's exp over 4,000 entries near -720: 81 us
#: against 6.3 us in the normal range, measured), and the floor changes nothing: e^-600 ~ 1e-261.
EXP_FLOOR = -600.0


def floored_exp_(exponent: "torch.Tensor") -> "torch.Tensor":
    """exp(max(exponent, ``EXP_FLOOR``)), in place."""
    return torch.exp_(exponent.clamp_(min=EXP_FLOOR))


def block_rows(n_cols: int) -> int:
    return max(1, MEMORY_BUDGET // max(n_cols, 1))


def sums(x: "torch.Tensor", z: "torch.Tensor", b: "torch.Tensor", scale: float,
         want_grad: bool = True) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(row, g): row_i = sum_k b_k phi(x_i - z_k), g_i = sum_k b_k phi(x_i - z_k) (x_i - z_k), with
    phi(r) = exp(-|r|^2 / 2 s^2), in row blocks."""
    inv = 1.0 / (scale * scale)
    # Coordinates centred on z: differences are unchanged, and x_i row_i - (E z)_i below then does not
    # cancel the digits of large coordinates.
    shift = z.mean(0)
    xc, zc = x - shift, z - shift
    row = torch.empty(x.shape[0], dtype=x.dtype)
    g = torch.empty_like(x)
    step = block_rows(z.shape[0])
    for start in range(0, x.shape[0], step):
        xs = xc[start:start + step]
        # |x_i - z_k|^2 from coordinate differences (not |x|^2 + |z|^2 - 2 x.z, which loses ~1e-12 of
        # relative accuracy to cancellation and makes the objective noisy)
        d2 = torch.zeros(xs.shape[0], zc.shape[0], dtype=x.dtype)
        for k in range(x.shape[1]):
            diff = xs[:, k, None] - zc[None, :, k]
            d2.addcmul_(diff, diff)
        E = floored_exp_(d2.mul_(-0.5 * inv)).mul_(b[None, :])
        r = E.sum(1)
        row[start:start + step] = r
        if want_grad:
            g[start:start + step] = xs * r[:, None] - E @ zc
    return row, g


def batched_self_sums(x: "torch.Tensor", a: "torch.Tensor", scale: float) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(row, g) of the self term for a batch of clouds x (T, N, D), all at once: row_ti = sum_k a_k
    phi(x_ti - x_tk), g_ti = sum_k a_k phi(x_ti - x_tk) (x_ti - x_tk). One set of torch operations for the
    whole batch (an interaction's time points: T separate ``sums`` cost T times their ~0.1 ms of
    overhead, which dominated small interaction problems); the caller keeps T N N (D + 1) within
    ``MEMORY_BUDGET``. Each cloud is centred on its own mean, as ``sums`` centres on z."""
    inv = 1.0 / (scale * scale)
    xc = x - x.mean(1, keepdim=True)
    d2 = torch.zeros(x.shape[0], x.shape[1], x.shape[1], dtype=x.dtype)
    for k in range(x.shape[2]):
        diff = xc[:, :, None, k] - xc[:, None, :, k]
        d2.addcmul_(diff, diff)
    E = floored_exp_(d2.mul_(-0.5 * inv)).mul_(a[None, None, :])
    row = E.sum(2)
    return row, xc * row[..., None] - torch.bmm(E, xc)


def twice_differentiable(x: "torch.Tensor", z: "torch.Tensor", a: "torch.Tensor", b: "torch.Tensor",
                         scale: float) -> "torch.Tensor":
    """sum_ik a_i b_k phi(x_i - z_k) as one plain torch expression, differentiable to any order."""
    shift = z.detach().mean(0)
    diff = (x - shift)[:, None, :] - (z - shift)[None, :, :]
    d2 = inner(diff, diff)
    return a @ torch.exp((-0.5 / (scale * scale)) * d2).clamp_min(1e-261) @ b


def blocks(x: "torch.Tensor", z: "torch.Tensor", b: "torch.Tensor", scale: float) -> "torch.Tensor":
    """(N, D, D) blocks sum_k b_k Hess phi(x_i - z_k), in row blocks, one coordinate pair at a time
    (exactly symmetric)."""
    inv = 1.0 / (scale * scale)
    N, D = x.shape
    out = torch.empty(N, D, D, dtype=x.dtype)
    step = block_rows(z.shape[0])
    for start in range(0, N, step):
        diff = [x[start:start + step, None, k] - z[None, :, k] for k in range(D)]
        d2 = torch.zeros(diff[0].shape, dtype=x.dtype)
        for dk in diff:
            d2.addcmul_(dk, dk)
        E = floored_exp_(d2.mul_(-0.5 * inv)).mul_(b[None, :])
        total = E.sum(1)
        for p in range(D):
            for q in range(p, D):
                entry = (diff[p] * diff[q]).mul_(E).sum(1).mul_(inv * inv)
                if p == q:
                    entry.sub_(total, alpha=inv)
                out[start:start + step, p, q] = entry
                out[start:start + step, q, p] = entry
    return out


def self_products(x: "torch.Tensor", b: "torch.Tensor", scale: float, v: "torch.Tensor") -> "torch.Tensor":
    """sum_k b_k Hess phi(x_i - x_k) (v_i - v_k), in row blocks."""
    inv = 1.0 / (scale * scale)
    out = torch.empty_like(x)
    step = block_rows(x.shape[0])
    for start in range(0, x.shape[0], step):
        r = x[start:start + step, None, :] - x[None, :, :]
        dv = v[start:start + step, None, :] - v[None, :, :]
        E = b * floored_exp_(-0.5 * inv * inner(r, r))
        out[start:start + step] = inv * inv * ((E * inner(r, dv))[..., None] * r).sum(1) - inv * (E[..., None] * dv).sum(1)
    return out
