"""Gaussian sums through the Fourier series of the kernel (non-uniform FFTs, FINUFFT): time
O((N + K) w^D + G log G) for G Fourier modes, whatever the width of the kernel against the cloud.

All points lie in a box of side L per dimension, padded so that the kernel's periodic images at
distance L are below tau (L >= extent + r_c, r_c = s sqrt(2 ln 1/tau)). On that period,

    phi(r) = exp(-|r|^2 / 2s^2) = sum_m c_m e^{i 2 pi m.r / L},  c_m = (2 pi s^2)^{D/2} L^{-D} e^{-2 pi^2 s^2 |m|^2 / L^2},

and c_m < tau c_0 once |m| > M = r_c L / (2 pi s^2) (where 2 pi^2 s^2 M^2 / L^2 = ln(1/tau)); the
series is cut there. With t = 2 pi (x - centre) / L,

    F_m = sum_k b_k e^{-i m.t(z_k)}                                  (one type-1 NUFFT)
    row_i = Re sum_m c_m F_m e^{i m.t(x_i)},  d row_i / dx_i = Re sum_m (i 2 pi m / L) c_m F_m e^{i m.t(x_i)}

(1 + D type-2 NUFFTs), and g_i = sum_k b_k phi_ik (x_i - z_k) = -s^2 d row_i / dx_i. Errors: tau from
the cut series and the periodic images, plus FINUFFT's relative tolerance ``TOL`` times sum_k |b_k|
(its bound, per output).
"""
from __future__ import annotations

import math

import finufft
import numpy as np

#: FINUFFT's requested relative accuracy.
TOL = 1e-13

_TYPE1 = {1: finufft.nufft1d1, 2: finufft.nufft2d1, 3: finufft.nufft3d1}
_TYPE2 = {1: finufft.nufft1d2, 2: finufft.nufft2d2, 3: finufft.nufft3d2}


def modes(extent: float, scale: float, cutoff: float) -> tuple[int, float]:
    """(number of modes per dimension, period L) for a cloud of the given extent."""
    L = extent + 2 * cutoff
    M = int(math.ceil(cutoff * L / (2 * math.pi * scale * scale)))
    return 2 * M + 1, L


def sums(x: np.ndarray, z: np.ndarray, b: np.ndarray, scale: float, cutoff: float,
         want_grad: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(row, g) as ``Cells.sums``: row_i = sum_k b_k phi(x_i - z_k), g_i = sum_k b_k phi_ik (x_i - z_k)."""
    d = x.shape[1]
    low = np.minimum(x.min(0), z.min(0))
    high = np.maximum(x.max(0), z.max(0))
    n, L = modes(float((high - low).max()), scale, cutoff)
    centre = 0.5 * (low + high)
    tz = [np.ascontiguousarray(2 * math.pi * (z[:, j] - centre[j]) / L) for j in range(d)]
    tx = [np.ascontiguousarray(2 * math.pi * (x[:, j] - centre[j]) / L) for j in range(d)]
    F = _TYPE1[d](*tz, b.astype(np.complex128), (n,) * d, eps=TOL, isign=-1)
    m = np.arange(-(n // 2), n // 2 + 1, dtype=np.float64)
    factor = 2 * math.pi**2 * scale**2 / L**2
    axes = np.meshgrid(*[m] * d, indexing="ij")
    msq = sum(a * a for a in axes)
    c = (2 * math.pi * scale**2) ** (d / 2) / L**d * np.exp(-factor * msq)
    coeff = c * F
    stack = [coeff] + ([(1j * 2 * math.pi / L) * a * coeff for a in axes] if want_grad else [])
    out = _TYPE2[d](*tx, np.ascontiguousarray(np.stack(stack)), eps=TOL, isign=1)
    row = out[0].real
    # d/dx_i of sum_k b_k phi(x_i - z_k) = -(1/s^2) g_i, so g_i = -s^2 (d row_i / d x_i)
    grad = -(scale**2) * np.stack([out[1 + j].real for j in range(d)], axis=1) if want_grad else np.zeros_like(x)
    return row, grad


def cost(n_points: int, d: int, extent: float, scale: float, cutoff: float) -> float:
    """Estimated seconds of one ``sums`` (spreading with w ~ 14 points per dimension, FFTs of the
    twice oversampled grid), from measurements on this project's 2-core machine."""
    n, _ = modes(extent, scale, cutoff)
    grid = (2 * n) ** d
    return (1 + d) * (n_points * 14**d * 2e-9 + grid * math.log2(max(grid, 2)) * 3e-9)
