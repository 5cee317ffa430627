"""Gaussian kernel sums in bounded memory.

The nonlocal energy (eqs. 53, 55) and the congestion interaction need double sums

    S(x, z) = sum_i sum_k a_i b_k exp(-|x_i - z_k|^2 / (2 s^2)),

over N x K pairs. A dense N x K matrix costs 8 N K bytes (3.2 GB at N = K = 20,000), so the sum is
computed in row blocks whose size keeps each block under ``MEMORY_BUDGET`` elements. Value and
gradient are computed in the same pass (every optimizer here needs both), so the exponentials are
evaluated once per call; the backward pass only rescales the stored gradients.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from typing import Iterator

from .lazy import torch

#: Largest number of kernel entries held at once (2**22 float64 entries = 32 MB per temporary).
MEMORY_BUDGET = 2**22


def _block_rows(n_cols: int) -> int:
    return max(1, MEMORY_BUDGET // max(n_cols, 1))


@functools.cache
def _fused_pair_sum() -> type:
    """The fused value-and-gradient kernel as a torch.autograd.Function (built on first use: this
    module is imported before torch is loaded, see ``solver.lazy``)."""

    class _GaussianPairSum(torch.autograd.Function):
        """S = sum_ik a_i b_k exp(-|x_i - z_k|^2 / (2 s^2)) with gradients in x and z."""

        @staticmethod
        def forward(ctx, x, z, a, b, scale):  # type: ignore[override]
            inv = 1.0 / (scale * scale)
            need_x, need_z = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
            # Work in coordinates centred on z: differences are unchanged, and the products below
            # (x_i * row_i - (E z)_i) then do not cancel digits of large coordinates.
            shift = z.mean(0)
            xc, zc = x - shift, z - shift
            total = x.new_zeros(())
            gx = torch.zeros_like(x) if need_x else None
            gz = torch.zeros_like(z) if need_z else None
            step = _block_rows(z.shape[0])
            for start in range(0, x.shape[0], step):
                xs, As = xc[start:start + step], a[start:start + step]
                # |x_i - z_k|^2 from coordinate differences (not |x|^2 + |z|^2 - 2 x.z, which loses
                # ~1e-12 of relative accuracy to cancellation and makes the objective noisy)
                d2 = torch.zeros(xs.shape[0], zc.shape[0], dtype=x.dtype)
                for k in range(x.shape[1]):
                    diff = xs[:, k, None] - zc[None, :, k]
                    d2.addcmul_(diff, diff)
                # E_ik = b_k exp(-|x_i - z_k|^2 / 2s^2); exponents are floored at -600 because exp of
                # lower values is subnormal, which is 100x slower on x86 and changes nothing (e^-600 ~ 1e-261)
                E = torch.exp_(d2.mul_(-0.5 * inv).clamp_(min=-600.0)).mul_(b[None, :])
                row = E.sum(1)
                total = total + As @ row
                if need_x:  # dS/dx_i = -(a_i/s^2) sum_k E_ik (x_i - z_k)
                    gx[start:start + step] = -(inv * As)[:, None] * (xs * row[:, None] - E @ zc)
                if need_z:  # dS/dz_k = (1/s^2) sum_i a_i E_ik (x_i - z_k)
                    Ea = E.T @ As
                    gz += inv * (E.T @ (As[:, None] * xs) - zc * Ea[:, None])
            ctx.save_for_backward(*(g for g in (gx, gz) if g is not None))
            ctx.flags = (need_x, need_z)
            return total

        @staticmethod
        def backward(ctx, grad_out):  # type: ignore[override]
            saved = list(ctx.saved_tensors)
            need_x, need_z = ctx.flags
            gx = saved.pop(0) * grad_out if need_x else None
            gz = saved.pop(0) * grad_out if need_z else None
            return gx, gz, None, None, None

    return _GaussianPairSum


_SECOND_ORDER = contextvars.ContextVar("second_order", default=False)


@contextlib.contextmanager
def second_order() -> Iterator[None]:
    """Within this block, pair sums are built from plain torch operations, differentiable twice
    (Hessians); outside it, the faster fused value-and-gradient kernel is used."""
    token = _SECOND_ORDER.set(True)
    try:
        yield
    finally:
        _SECOND_ORDER.reset(token)


def _dense_pair_sum(x: torch.Tensor, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                    scale: float) -> torch.Tensor:
    """The same sum with plain torch operations: differentiable to any order (Hessians, torch.func)."""
    shift = z.detach().mean(0)
    diff = (x - shift)[:, None, :] - (z - shift)[None, :, :]
    d2 = (diff * diff).sum(-1)
    return a @ torch.exp((-0.5 / (scale * scale)) * d2).clamp_min(1e-261) @ b


def gaussian_pair_sum(x: torch.Tensor, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                      scale: float) -> torch.Tensor:
    """Unnormalized Gaussian double sum ``sum_ik a_i b_k exp(-|x_i - z_k|^2 / (2 scale^2))``.

    ``x`` (N x D) and ``z`` (K x D) may both require gradients, and may be the same tensor (the
    self-interaction term): autograd then adds both contributions, which is the exact gradient.
    The sum runs in row blocks with memory O(MEMORY_BUDGET + N + K), never O(N K); inside
    ``second_order()`` and below MEMORY_BUDGET pairs it is one dense expression that autograd can
    differentiate twice.
    """
    if _SECOND_ORDER.get() and x.shape[0] * z.shape[0] * x.shape[1] <= MEMORY_BUDGET:
        return _dense_pair_sum(x, z, a, b, float(scale))
    return _fused_pair_sum().apply(x, z, a, b, float(scale))


def gaussian_self_hessian(x: torch.Tensor, a: torch.Tensor, scale: float) -> torch.Tensor:
    """Hessian (N, D, N, D) of S(x) = sum_ik a_i a_k phi(x_i - x_k), phi(r) = exp(-|r|^2 / 2s^2).

    With T_ik = a_i a_k Hess phi(x_i - x_k) = a_i a_k phi (r r^T / s^4 - I / s^2), r = x_i - x_k:
    d^2S / dx_i dx_j = -2 T_ij (i != j) and d^2S / dx_i^2 = 2 sum_{k != i} T_ik. Closed form, so
    Newton steps need no second pass of automatic differentiation through N^2 pairs."""
    inv = 1.0 / (scale * scale)
    diff = x[:, None, :] - x[None, :, :]
    E = (a[:, None] * a[None, :]) * torch.exp(-0.5 * inv * (diff * diff).sum(-1))
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    T = E[..., None, None] * (inv * inv * diff[..., :, None] * diff[..., None, :] - inv * eye)
    idx = torch.arange(x.shape[0])
    T[idx, idx] = 0.0
    H = -2.0 * T
    H[idx, idx] = 2.0 * T.sum(1)
    return H.permute(0, 2, 1, 3)


def gaussian_normalizer(scale: float, dim: int) -> float:
    """(2 pi scale^2)^(-dim/2): the constant of the Gaussian mollifier K_delta of eq. (54)."""
    return (2.0 * math.pi * scale * scale) ** (-0.5 * dim)


def mollifier_pair_sum(x: torch.Tensor, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                       delta: float) -> torch.Tensor:
    """``sum_ik a_i b_k K_delta(x_i - z_k)`` with K_delta the normalized Gaussian of eq. (54)."""
    return gaussian_normalizer(delta, x.shape[1]) * gaussian_pair_sum(x, z, a, b, delta)


def gaussian_row_sums(x: torch.Tensor, z: torch.Tensor, b: torch.Tensor, scale: float,
                      normalized: bool = False) -> torch.Tensor:
    """``r_i = sum_k b_k exp(-|x_i - z_k|^2 / (2 scale^2))`` for every row of x (times the mollifier's
    constant when ``normalized``: then r = (K_scale * sum_k b_k delta_{z_k})(x_i)), in row blocks."""
    step = _block_rows(z.shape[0])
    rows = []
    for start in range(0, x.shape[0], step):
        diff = x[start:start + step, None, :] - z[None, :, :]
        rows.append(torch.exp((-0.5 / (scale * scale)) * (diff * diff).sum(-1)) @ b)
    out = torch.cat(rows) if rows else x.new_zeros(0)
    return out * gaussian_normalizer(scale, x.shape[1]) if normalized else out
